/* Port I/O and MMIO accessors: every device the probe talks to is reached through these. */
#ifndef PROBE_IO_H
#define PROBE_IO_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

static inline void outb(u16 port, u8 value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline u8 inb(u16 port)
{
    u8 value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

/* Volatile so the compiler neither merges nor drops accesses: each one is a register access. */
static inline void mmio_write32(u64 addr, u32 value)
{
    *(volatile u32 *)addr = value;
}

static inline u32 mmio_read32(u64 addr)
{
    return *(volatile u32 *)addr;
}

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}

/* The initial APIC id of the running CPU (CPUID leaf 1, EBX bits 31-24), as the VMM set it. */
static inline u32 cpu_apic_id(void)
{
    u32 eax = 1, ebx, ecx = 0, edx;
    __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    return ebx >> 24;
}

/* Stops this vCPU for good: interrupts off, so nothing wakes it. */
static inline __attribute__((noreturn)) void halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}

#endif
