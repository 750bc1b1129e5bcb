/* Ending the VM the ways a guest OS does. */
#ifndef PROBE_POWER_H
#define PROBE_POWER_H

/* ACPI S5 through the hardware-reduced sleep control register. */
__attribute__((noreturn)) void power_off(void);
/* The i8042 "pulse reset line" command. */
__attribute__((noreturn)) void reset_i8042(void);
/* The ACPI reset register. */
__attribute__((noreturn)) void reset_acpi(void);
/* An exception with no IDT: #UD, then #GP, #DF, and the CPU shuts down. */
__attribute__((noreturn)) void triple_fault(void);

#endif
