#include "timer.h"

#define LAPIC 0xfee00000UL
#define LAPIC_SVR 0xf0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_DIVIDE 0x3e0
#define TIMER_VECTOR 0x40
#define TIMER_PERIODIC (1u << 17)
/* KVM's local APIC timer counts at 1 GHz (its APIC bus cycle is 1 ns) with divide-by-1. */
#define LAPIC_TIMER_HZ 1000000000u

extern void probe_isr(void);

struct gate {
    u16 offset_low;
    u16 selector;
    u8 ist;
    u8 type;
    u16 offset_mid;
    u32 offset_high;
    u32 reserved;
} __attribute__((packed));

struct idtr {
    u16 limit;
    u64 base;
} __attribute__((packed));

static struct gate idt[256] __attribute__((aligned(16)));

void timer_start(u32 hz)
{
    u16 cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    u64 isr = (u64)probe_isr;
    for (int v = 0; v < 256; v++) {
        idt[v].offset_low = (u16)isr;
        idt[v].selector = cs;
        idt[v].ist = 0;
        idt[v].type = 0x8e; /* present, ring 0, 64-bit interrupt gate */
        idt[v].offset_mid = (u16)(isr >> 16);
        idt[v].offset_high = (u32)(isr >> 32);
        idt[v].reserved = 0;
    }
    struct idtr idtr = {sizeof(idt) - 1, (u64)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
    /* Mask every 8259 line: only the LAPIC timer may interrupt. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    /* Software-enable the APIC (spurious vector 0xff), then a periodic timer. */
    mmio_write32(LAPIC + LAPIC_SVR, 0x1ff);
    mmio_write32(LAPIC + LAPIC_TIMER_DIVIDE, 0xb);
    mmio_write32(LAPIC + LAPIC_LVT_TIMER, TIMER_VECTOR | TIMER_PERIODIC);
    mmio_write32(LAPIC + LAPIC_TIMER_INITIAL, LAPIC_TIMER_HZ / hz);
}
