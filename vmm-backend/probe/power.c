#include "io.h"
#include "power.h"
#include "serial.h"

/* Must match vmm-backend's devices::legacy::acpi_pm (and, later, the FADT). */
#define ACPI_SLEEP_CONTROL_PORT 0x600
#define SLP_TYP_S5 5
#define SLP_EN (1 << 5)

#define ACPI_RESET_PORT 0x602
#define ACPI_RESET_VALUE 0x0f

#define I8042_COMMAND_PORT 0x64
#define I8042_PULSE_RESET 0xfe

void power_off(void)
{
    outb(ACPI_SLEEP_CONTROL_PORT, (SLP_TYP_S5 << 2) | SLP_EN);
    /* Only reached if the VMM ignored the request: say so, the test sees it on serial. */
    serial_puts("BERTH-PROBE: still running after ACPI S5\n");
    halt_forever();
}

void reset_i8042(void)
{
    outb(I8042_COMMAND_PORT, I8042_PULSE_RESET);
    serial_puts("BERTH-PROBE: still running after i8042 reset\n");
    halt_forever();
}

void reset_acpi(void)
{
    outb(ACPI_RESET_PORT, ACPI_RESET_VALUE);
    serial_puts("BERTH-PROBE: still running after ACPI reset\n");
    halt_forever();
}

void triple_fault(void)
{
    __asm__ volatile("ud2");
    serial_puts("BERTH-PROBE: still running after ud2\n");
    halt_forever();
}
