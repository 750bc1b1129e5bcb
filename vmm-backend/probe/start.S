/* Entry of the probe on every vCPU. The VMM enters here in 64-bit mode with paging on
 * (identity map of the first 4 GiB), interrupts off, rsp = this vCPU's boot stack,
 * rdi = vCPU index and rsi = vCPU count: already the arguments of probe_main. */
    .section .text.start, "ax"
    .globl _start
_start:
    cld
    call probe_main
    /* probe_main does not return; if it does, park the vCPU. */
1:  cli
    hlt
    jmp 1b

/* Every interrupt vector of the probe's IDT (timer.c) lands here: acknowledge the local APIC
 * (a write to its EOI register) and return. Nothing else is expected: only the LAPIC timer is
 * enabled, and only while the animate variant waits for its next frame. */
    .globl probe_isr
probe_isr:
    pushq %rax
    movl $0xfee000b0, %eax
    movl $0, (%rax)
    popq %rax
    iretq
