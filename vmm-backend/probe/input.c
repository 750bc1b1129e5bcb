#include "input.h"
#include "serial.h"
#include "virtio.h"

#define EVENT 0x322000UL

/* The host may type later than virtio_request's patience: keep polling the used ring (the
 * buffer stays posted) for up to 50 more rounds of its wait, or for as long as it takes with
 * -DPROBE_INPUT_WAIT_FOREVER (the end-to-end tests type after the VM is up; their own timeout
 * ends a probe that waits in vain). */
#ifdef PROBE_INPUT_WAIT_FOREVER
#define WAIT_LONGER -1
#else
#define WAIT_LONGER 50000000
#endif

void input_read(u64 base, u64 rings, int events)
{
    struct virtq q;
    int err = virtio_init(&q, base, 18, rings);
    if (err) {
        serial_puts("BERTH-PROBE: input init failed at step ");
        serial_put_dec((u64)-err);
        serial_putc('\n');
        return;
    }
    /* select = ID_NAME, subsel = 0, one byte each as Linux writes them; then size and name. */
    *(volatile u8 *)(base + 0x100) = 0x01;
    *(volatile u8 *)(base + 0x101) = 0;
    u32 size = *(volatile u8 *)(base + 0x102);
    serial_puts("BERTH-PROBE: input name ");
    for (u32 i = 0; i < size && i < 64; i++)
        serial_putc(*(volatile char *)(base + 0x108 + i));
    serial_putc('\n');

    for (int n = 0; n < events; n++) {
        volatile u16 *e = (volatile u16 *)EVENT;
        e[0] = e[1] = e[2] = e[3] = 0xffff;
        struct vbuf buf = {EVENT, 8, 1};
        long used = virtio_request(&q, &buf, 1);
        if (used < 0)
            used = virtio_wait(&q, WAIT_LONGER);
        serial_puts("BERTH-PROBE: input event used ");
        serial_put_dec((u64)used);
        serial_putc(' ');
        serial_put_hex(e[0], 4);
        serial_putc(' ');
        serial_put_hex(e[1], 4);
        serial_putc(' ');
        serial_put_hex(*(volatile u32 *)(EVENT + 4), 8);
        serial_putc('\n');
    }
}
