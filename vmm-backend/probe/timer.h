/* A periodic tick from the local APIC timer, so the probe can wait (hlt) between frames instead
 * of spinning: a guest that redraws at 60 Hz, as a real one does, leaves the host its CPU. */
#ifndef PROBE_TIMER_H
#define PROBE_TIMER_H

#include "io.h"

/* Loads an IDT whose every vector acknowledges and returns, masks the 8259s, and starts the
 * LAPIC timer `hz` times a second. */
void timer_start(u32 hz);

/* Waits for the next tick (interrupts on only while halted). */
static inline void timer_wait(void)
{
    __asm__ volatile("sti; hlt; cli" ::: "memory");
}

#endif
