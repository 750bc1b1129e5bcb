#include "gpu.h"
#include "serial.h"
#include "virtio.h"

#define WIDTH 64
#define HEIGHT 48
#define FORMAT_B8G8R8X8 2
#define RESOURCE 1
/* Request and response buffers, and the resource's backing (64 * 48 * 4 = 12 KiB). */
#define REQ 0x320000UL
#define RESP 0x321000UL
#define PIXELS 0x330000UL

/* Writes a request: the 24-byte header of `type` then `n` 32-bit fields; returns its length. */
static u32 request(u32 type, const u32 *fields, int n)
{
    volatile u32 *r = (volatile u32 *)REQ;
    r[0] = type;
    for (int i = 1; i < 6; i++)
        r[i] = 0;
    for (int i = 0; i < n; i++)
        r[6 + i] = fields[i];
    return 24 + 4 * (u32)n;
}

/* Sends the request at REQ and prints "gpu <what> used <len> type 0x<type>". */
static void send(struct virtq *q, const char *what, u32 len, u32 resp_len)
{
    *(volatile u32 *)RESP = 0;
    struct vbuf bufs[2] = {{REQ, len, 0}, {RESP, resp_len, 1}};
    long used = virtio_request(q, bufs, 2);
    serial_puts("BERTH-PROBE: gpu ");
    serial_puts(what);
    serial_puts(" used ");
    serial_put_dec((u64)used);
    serial_puts(" type 0x");
    serial_put_hex(*(volatile u32 *)RESP, 4);
    serial_putc('\n');
}

/* The control queue, kept for gpu_invert once gpu_draw has set it up, and the display's mode. */
static struct virtq q;
static int ready;
static u32 mode_width, mode_height;
/* The device's registers (its configuration space at 0x100: events_read, events_clear). */
static u64 gpu_base;

void gpu_draw(u64 base, u64 rings)
{
    gpu_base = base;
    int err = virtio_init(&q, base, 16, rings);
    if (err) {
        serial_puts("BERTH-PROBE: gpu init failed at step ");
        serial_put_dec((u64)-err);
        serial_putc('\n');
        return;
    }
    send(&q, "display-info", request(0x0100, (const u32 *)0, 0), 24 + 16 * 24);
    volatile u32 *info = (volatile u32 *)RESP;
    serial_puts("BERTH-PROBE: gpu mode ");
    serial_put_dec(info[8]);
    serial_putc('x');
    serial_put_dec(info[9]);
    serial_puts(" enabled ");
    serial_put_dec(info[10]);
    serial_putc('\n');
    mode_width = info[8];
    mode_height = info[9];

    u32 create[4] = {RESOURCE, FORMAT_B8G8R8X8, WIDTH, HEIGHT};
    send(&q, "create", request(0x0101, create, 4), 24);
    /* One backing entry: address (low, high), length, padding. */
    u32 attach[6] = {RESOURCE, 1, (u32)PIXELS, 0, WIDTH * HEIGHT * 4, 0};
    send(&q, "attach", request(0x0106, attach, 6), 24);

    volatile u32 *pixels = (volatile u32 *)PIXELS;
    for (u32 y = 0; y < HEIGHT; y++)
        for (u32 x = 0; x < WIDTH; x++)
            pixels[y * WIDTH + x] = gpu_pattern(x, y);

    /* rect, offset (low, high), resource, padding */
    u32 transfer[8] = {0, 0, WIDTH, HEIGHT, 0, 0, RESOURCE, 0};
    send(&q, "transfer", request(0x0105, transfer, 8), 24);
    /* rect, scanout id, resource */
    u32 scanout[6] = {0, 0, WIDTH, HEIGHT, 0, RESOURCE};
    send(&q, "scanout", request(0x0103, scanout, 6), 24);
    /* rect, resource, padding */
    u32 flush[6] = {0, 0, WIDTH, HEIGHT, RESOURCE, 0};
    send(&q, "flush", request(0x0104, flush, 6), 24);
    /* A bad request gets an error: an unknown resource. */
    u32 bad[6] = {0, 0, WIDTH, HEIGHT, 77, 0};
    send(&q, "bad-flush", request(0x0104, bad, 6), 24);
    ready = 1;
}

void gpu_invert(void)
{
    if (!ready)
        return;
    volatile u32 *pixels = (volatile u32 *)PIXELS;
    for (u32 i = 0; i < WIDTH * HEIGHT; i++)
        pixels[i] = pixels[i] ^ 0x00ffffffu;
    u32 transfer[8] = {0, 0, WIDTH, HEIGHT, 0, 0, RESOURCE, 0};
    send(&q, "transfer", request(0x0105, transfer, 8), 24);
    u32 flush[6] = {0, 0, WIDTH, HEIGHT, RESOURCE, 0};
    send(&q, "flush", request(0x0104, flush, 6), 24);
}

/* The resource of the display's whole mode (gpu_show_mode, gpu_animate): its backing at 16 MiB
 * (a 4095x4095 frame fits below 80 MiB). A new one for each mode the host asks for. */
static u32 mode_resource = 2;
#define MODE_RESOURCE mode_resource
#define MODE_PIXELS 0x1000000UL

/* Creates the whole-mode resource and points the scanout at it: a mode change for the host. */
static int show_mode_resource(void)
{
    if (!ready || mode_width < 64 || mode_height < 48)
        return 0;
    u32 w = mode_width, h = mode_height;
    u32 create[4] = {MODE_RESOURCE, FORMAT_B8G8R8X8, w, h};
    send(&q, "create", request(0x0101, create, 4), 24);
    u32 attach[6] = {MODE_RESOURCE, 1, (u32)MODE_PIXELS, 0, w * h * 4, 0};
    send(&q, "attach", request(0x0106, attach, 6), 24);
    u32 scanout[6] = {0, 0, w, h, 0, MODE_RESOURCE};
    send(&q, "scanout", request(0x0103, scanout, 6), 24);
    return 1;
}

void gpu_show_mode(void)
{
    if (!show_mode_resource())
        return;
    u32 w = mode_width, h = mode_height;
    volatile u32 *pixels = (volatile u32 *)MODE_PIXELS;
    for (u32 y = 0; y < HEIGHT; y++)
        for (u32 x = 0; x < WIDTH; x++)
            pixels[y * w + x] = gpu_pattern(x, y);
    u32 transfer[8] = {0, 0, w, h, 0, 0, MODE_RESOURCE, 0};
    send(&q, "transfer", request(0x0105, transfer, 8), 24);
    u32 flush[6] = {0, 0, w, h, MODE_RESOURCE, 0};
    send(&q, "flush", request(0x0104, flush, 6), 24);
}

int gpu_display_changed(void)
{
    if (!ready)
        return 0;
    volatile u32 *config = (volatile u32 *)(gpu_base + 0x100);
    u32 events = config[0];
    if (!(events & 1))
        return 0;
    config[1] = events; /* events_clear */
    send(&q, "display-info", request(0x0100, (const u32 *)0, 0), 24 + 16 * 24);
    volatile u32 *info = (volatile u32 *)RESP;
    mode_width = info[8];
    mode_height = info[9];
    serial_puts("BERTH-PROBE: gpu display changed to ");
    serial_put_dec(mode_width);
    serial_putc('x');
    serial_put_dec(mode_height);
    serial_putc('\n');
    mode_resource++;
    gpu_show_mode();
    serial_puts("BERTH-PROBE: display size followed\n");
    return 1;
}

#ifdef PROBE_GPU_ANIMATE
#include "timer.h"

#define ANIM_RESOURCE MODE_RESOURCE
#define ANIM_PIXELS MODE_PIXELS
#define BLOCK 32

void gpu_animate(void)
{
    if (!show_mode_resource())
        return;
    u32 w = mode_width, h = mode_height;
    serial_puts("BERTH-PROBE: animating\n");
    volatile u32 *pixels = (volatile u32 *)ANIM_PIXELS;
    /* A frame every 1/60 s, as a guest's compositor at 60 Hz: idle between frames. */
    timer_start(60);
    u32 across = w / BLOCK, down = h / BLOCK;
    for (u64 n = 1;; n++) {
        /* A block moves across the screen, leaving a trail of changing colours: a thousand
         * stores a frame (the probe may run in KVM's instruction emulator), while every frame
         * is transferred and flushed whole, which is what the host's path is measured on. */
        u32 bx = (u32)(n % across) * BLOCK, by = (u32)((n / across) % down) * BLOCK;
        u32 colour = gpu_pattern((u32)n, (u32)(n >> 3));
        for (u32 y = by; y < by + BLOCK; y++)
            for (u32 x = bx; x < bx + BLOCK; x++)
                pixels[y * w + x] = colour;
        u32 transfer[8] = {0, 0, w, h, 0, 0, ANIM_RESOURCE, 0};
        u32 flush[6] = {0, 0, w, h, ANIM_RESOURCE, 0};
        struct vbuf t[2] = {{REQ, request(0x0105, transfer, 8), 0}, {RESP, 24, 1}};
        virtio_request(&q, t, 2);
        struct vbuf f[2] = {{REQ, request(0x0104, flush, 6), 0}, {RESP, 24, 1}};
        virtio_request(&q, f, 2);
        timer_wait();
        if (n % 600 == 0) {
            serial_puts("BERTH-PROBE: animated ");
            serial_put_dec(n);
            serial_puts(" frames\n");
        }
    }
}
#endif
