/* The Berth probe guest: a freestanding x86-64 program the test suite builds with the host's
 * gcc and runs on /dev/kvm as a flat image (vmm-backend BootSource::Flat). It reports on COM1
 * what it saw and ends the VM the way the build chose:
 *   default               ACPI S5 power-off
 *   -DPROBE_FINISH_RESET  i8042 reset
 *   -DPROBE_FINISH_ACPI_RESET  ACPI reset register
 *   -DPROBE_FINISH_CRASH  triple fault
 *   -DPROBE_INTERACTIVE   stay up: echo each line typed on COM1, power off on "poweroff"
 *   -DPROBE_GPU_ANIMATE   with PROBE_GPU: redraw the display's whole mode forever (benchmarks)
 *   -DPROBE_HALT          stay up, halted: with PROBE_GPU a still screen (idle benchmarks)
 * and, with -DPROBE_VIRTIO / -DPROBE_GPU / -DPROBE_INPUT / -DPROBE_NET, drives virtio-blk and
 * virtio-rng / virtio-gpu / virtio-input / virtio-net first.
 *
 * Every vCPU enters probe_main(index, count). They take turns printing (no atomics needed: each
 * waits until a shared counter equals its index), then vCPU 0 finishes the run.
 *
 * Keep it to simple integer instructions: on machines without hardware virtualisation KVM runs
 * it in its instruction emulator. */
#include "io.h"
#include "power.h"
#include "serial.h"
#ifdef PROBE_VIRTIO
#include "virtio.h"
#endif
#ifdef PROBE_GPU
#include "gpu.h"
/* Where the GPU test places the device, and its rings. */
#define PROBE_VIRTIO_GPU 0xd0003000UL
#define RINGS_GPU 0x308000UL
#endif
#ifdef PROBE_INPUT
#include "input.h"
/* Where the input test places a keyboard (-DPROBE_VIRTIO_INPUT=... reads another input
 * device, e.g. berth-vmm's tablet after it), its rings, and how many events the host queued. */
#ifndef PROBE_VIRTIO_INPUT
#define PROBE_VIRTIO_INPUT 0xd0004000UL
#endif
#define RINGS_INPUT 0x30c000UL
#ifndef PROBE_INPUT_EVENTS
#define PROBE_INPUT_EVENTS 4
#endif
#endif

#ifdef PROBE_NET
#include "net.h"
/* Where berth-vmm puts the network card of a flat image with a display (berthd always gives
 * one): after the GPU, keyboard and tablet. Then the scratch RAM of its rings and buffers, and
 * how many datagrams to echo before powering off. */
#ifndef PROBE_VIRTIO_NET
#define PROBE_VIRTIO_NET 0xd0006000UL
#endif
#define SCRATCH_NET 0x330000UL
#ifndef PROBE_NET_ECHOES
#define PROBE_NET_ECHOES 1
#endif
#endif

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

#ifdef PROBE_VIRTIO
/* Where the tests place the devices, and scratch RAM for rings and buffers (above the image). */
#define PROBE_VIRTIO_BLK 0xd0001000UL
#define PROBE_VIRTIO_RNG 0xd0002000UL
#define RINGS_BLK 0x300000UL
#define RINGS_RNG 0x304000UL
#define HEADER 0x310000UL
#define DATA 0x311000UL
#define STATUS 0x312000UL

static void print_status(const char *what, long used, u8 status)
{
    serial_puts("BERTH-PROBE: blk ");
    serial_puts(what);
    serial_puts(" used ");
    serial_put_dec((u64)used);
    serial_puts(" status ");
    serial_put_dec(status);
    serial_putc('\n');
}

/* One virtio-blk request: header, optional data buffer, status byte. */
static long blk_request(struct virtq *q, u32 type, u64 sector, u32 data_len, int device_writes)
{
    volatile u32 *header = (volatile u32 *)HEADER;
    header[0] = type;
    header[1] = 0;
    *(volatile u64 *)(HEADER + 8) = sector;
    *(volatile u8 *)STATUS = 0xff;
    struct vbuf bufs[3] = {{HEADER, 16, 0}, {DATA, data_len, device_writes}, {STATUS, 1, 1}};
    if (data_len == 0) {
        bufs[1] = bufs[2];
        return virtio_request(q, bufs, 2);
    }
    return virtio_request(q, bufs, 3);
}

static void check_virtio(void)
{
    struct virtq blk, rng;
    int err = virtio_init(&blk, PROBE_VIRTIO_BLK, 2, RINGS_BLK);
    if (err) {
        serial_puts("BERTH-PROBE: blk init failed at step ");
        serial_put_dec((u64)-err);
        serial_putc('\n');
        return;
    }
    /* Read sector 1 and print its text. */
    long used = blk_request(&blk, 0, 1, 512, 1);
    print_status("read", used, *(volatile u8 *)STATUS);
    serial_puts("BERTH-PROBE: blk sector 1: ");
    for (int i = 0; i < 64; i++) {
        char c = *(volatile char *)(DATA + (u64)i);
        if (c == 0)
            break;
        serial_putc(c);
    }
    serial_putc('\n');
    /* Write sector 2 with a known line, then flush. */
    const char *line = "written by the probe through virtio-blk";
    volatile char *data = (volatile char *)DATA;
    for (int i = 0; i < 512; i++)
        data[i] = 0;
    for (int i = 0; line[i]; i++)
        data[i] = line[i];
    used = blk_request(&blk, 1, 2, 512, 0);
    print_status("write", used, *(volatile u8 *)STATUS);
    used = blk_request(&blk, 4, 0, 0, 0);
    print_status("flush", used, *(volatile u8 *)STATUS);

    err = virtio_init(&rng, PROBE_VIRTIO_RNG, 4, RINGS_RNG);
    if (err) {
        serial_puts("BERTH-PROBE: rng init failed\n");
        return;
    }
    struct vbuf buf = {DATA, 16, 1};
    for (int i = 0; i < 16; i++)
        data[i] = 0;
    used = virtio_request(&rng, &buf, 1);
    serial_puts("BERTH-PROBE: rng used ");
    serial_put_dec((u64)used);
    serial_puts(" bytes ");
    for (int i = 0; i < 16; i++)
        serial_put_hex((u8)data[i], 2);
    serial_putc('\n');
}
#endif

#ifdef PROBE_INTERACTIVE
static int is_poweroff(const char *line, int len)
{
    const char *word = "poweroff";
    for (int i = 0; i < 8; i++)
        if (i >= len || line[i] != word[i])
            return 0;
    return len == 8;
}

/* A console a test can talk to: each line typed is echoed back, "poweroff" ends the VM, and
 * with PROBE_GPU "invert" inverts the colours on the screen and "big" switches it to the
 * display's whole mode (the pattern in its corner), as a new preferred size from the host does
 * by itself. Polls
 * COM1 (no interrupts are set up), so it keeps one host CPU busy while it waits. */
static void interact(void)
{
    char line[80];
    int len = 0;
    serial_puts("BERTH-PROBE: ready for input\n");
    for (;;) {
        int c = serial_getc_nowait();
        if (c < 0) {
#ifdef PROBE_GPU
            /* A display size the host prefers now (a register read: not on every turn). */
            static u32 turns;
            if (++turns % 1024 == 0)
                gpu_display_changed();
#endif
            cpu_relax();
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (len == 0)
                continue;
            if (is_poweroff(line, len))
                return;
#ifdef PROBE_GPU
            if (len == 6 && line[0] == 'i' && line[1] == 'n' && line[2] == 'v' && line[3] == 'e' &&
                line[4] == 'r' && line[5] == 't') {
                gpu_invert();
                serial_puts("BERTH-PROBE: inverted\n");
                len = 0;
                continue;
            }
            if (len == 3 && line[0] == 'b' && line[1] == 'i' && line[2] == 'g') {
                gpu_show_mode();
                serial_puts("BERTH-PROBE: mode shown\n");
                len = 0;
                continue;
            }
#endif
            serial_puts("BERTH-PROBE: echo ");
            for (int i = 0; i < len; i++)
                serial_putc(line[i]);
            serial_putc('\n');
            len = 0;
        } else if (len < (int)sizeof(line)) {
            line[len++] = (char)c;
        }
    }
}
#endif

__attribute__((noreturn)) void probe_main(u64 cpu, u64 cpus)
{
    wait_turn(cpu);
    if (cpu == 0) {
        serial_init();
        check_mmio();
        echo_input();
#ifdef PROBE_VIRTIO
        check_virtio();
#endif
#ifdef PROBE_GPU
        gpu_draw(PROBE_VIRTIO_GPU, RINGS_GPU);
#endif
#ifdef PROBE_INPUT
        input_read(PROBE_VIRTIO_INPUT, RINGS_INPUT, PROBE_INPUT_EVENTS);
#endif
#ifdef PROBE_NET
        net_probe(PROBE_VIRTIO_NET, SCRATCH_NET, PROBE_NET_ECHOES);
#endif
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
#if defined(PROBE_GPU_ANIMATE)
    gpu_animate();
#endif
#if defined(PROBE_HALT)
    /* Stay up with a still screen and an idle vCPU (halted, interrupts off). */
    halt_forever();
#endif
#if defined(PROBE_INTERACTIVE)
    interact();
#endif
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
