/* The Berth probe guest: a freestanding x86-64 program the test suite builds with the host's
 * gcc and runs on /dev/kvm as a flat image (vmm-backend BootSource::Flat). It reports on COM1
 * what it saw and ends the VM the way the build chose:
 *   default               ACPI S5 power-off
 *   -DPROBE_FINISH_RESET  i8042 reset
 *   -DPROBE_FINISH_ACPI_RESET  ACPI reset register
 *   -DPROBE_FINISH_CRASH  triple fault
 *
 * Every vCPU enters probe_main(index, count). They take turns printing (no atomics needed: each
 * waits until a shared counter equals its index), then vCPU 0 finishes the run.
 *
 * Keep it to simple integer instructions: on machines without hardware virtualisation KVM runs
 * it in its instruction emulator. */
#include "io.h"
#include "power.h"
#include "serial.h"

/* A scratch device the tests place on the MMIO bus (in the 32-bit MMIO hole, identity-mapped):
 * the probe writes a word to it and prints the word it reads back at offset 4. */
#define PROBE_MMIO_SCRATCH 0xd0000000UL
#define PROBE_MMIO_MAGIC 0x600dcafe

/* Whose turn it is to print. In .bss: zero when the VM starts. */
static volatile u64 turn;

static void wait_turn(u64 mine)
{
    while (turn != mine)
        cpu_relax();
}

/* Echoes what the host fed into COM1 before the run (polled: the probe sets up no interrupts). */
static void echo_input(void)
{
    int c = serial_getc_nowait();
    if (c < 0)
        return;
    serial_puts("BERTH-PROBE: input ");
    for (int n = 0; c >= 0 && n < 64; n++, c = serial_getc_nowait())
        serial_putc((char)c);
    serial_putc('\n');
}

static void check_mmio(void)
{
    mmio_write32(PROBE_MMIO_SCRATCH, PROBE_MMIO_MAGIC);
    serial_puts("BERTH-PROBE: mmio read 0x");
    serial_put_hex(mmio_read32(PROBE_MMIO_SCRATCH + 4), 8);
    serial_putc('\n');
}

__attribute__((noreturn)) void probe_main(u64 cpu, u64 cpus)
{
    wait_turn(cpu);
    if (cpu == 0) {
        serial_init();
        check_mmio();
        echo_input();
    }
    serial_puts("BERTH-PROBE: hello from vcpu ");
    serial_put_dec(cpu);
    serial_puts(" of ");
    serial_put_dec(cpus);
    serial_puts(", apic id ");
    serial_put_dec(cpu_apic_id());
    serial_putc('\n');
    turn = cpu + 1;

    if (cpu != 0)
        halt_forever();

    wait_turn(cpus);
    serial_puts("BERTH-PROBE: all vcpus reported\n");
#if defined(PROBE_FINISH_RESET)
    reset_i8042();
#elif defined(PROBE_FINISH_ACPI_RESET)
    reset_acpi();
#elif defined(PROBE_FINISH_CRASH)
    triple_fault();
#else
    power_off();
#endif
}
