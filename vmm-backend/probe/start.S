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
