#include "virtio.h"

#define QSIZE 8
#define F_NEXT 1
#define F_WRITE 2

struct desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

static void barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

static void reg_write(struct virtq *q, u32 offset, u32 value)
{
    mmio_write32(q->base + offset, value);
}

static u32 reg_read(struct virtq *q, u32 offset)
{
    return mmio_read32(q->base + offset);
}

static void queue_rings(struct virtq *q, u64 base, u32 index, u64 rings)
{
    q->base = base;
    q->index = index;
    q->desc = rings;
    q->avail = rings + 0x1000;
    q->used = rings + 0x2000;
    q->avail_idx = 0;
    q->used_seen = 0;
}

/* Reset, negotiate VERSION_1 only. Returns 0 or a negative step. */
static int begin(struct virtq *q, u32 type)
{
    if (reg_read(q, 0x00) != 0x74726976 || reg_read(q, 0x04) != 2 || reg_read(q, 0x08) != type)
        return -1;
    reg_write(q, 0x70, 0);         /* reset */
    reg_write(q, 0x70, 1);         /* ACKNOWLEDGE */
    reg_write(q, 0x70, 1 | 2);     /* DRIVER */
    reg_write(q, 0x24, 1);         /* driver features, high word: VERSION_1 (bit 32) */
    reg_write(q, 0x20, 1);
    reg_write(q, 0x24, 0);
    reg_write(q, 0x20, 0);
    reg_write(q, 0x70, 1 | 2 | 8); /* FEATURES_OK */
    if (!(reg_read(q, 0x70) & 8))
        return -2;
    return 0;
}

static int setup_queue(struct virtq *q)
{
    reg_write(q, 0x30, q->index);
    if (reg_read(q, 0x34) < QSIZE)
        return -3;
    reg_write(q, 0x38, QSIZE);
    reg_write(q, 0x80, (u32)q->desc);
    reg_write(q, 0x84, (u32)(q->desc >> 32));
    reg_write(q, 0x90, (u32)q->avail);
    reg_write(q, 0x94, (u32)(q->avail >> 32));
    reg_write(q, 0xa0, (u32)q->used);
    reg_write(q, 0xa4, (u32)(q->used >> 32));
    reg_write(q, 0x44, 1);
    if (reg_read(q, 0x44) != 1)
        return -4;
    return 0;
}

int virtio_init(struct virtq *q, u64 base, u32 type, u64 rings)
{
    queue_rings(q, base, 0, rings);
    int err = begin(q, type);
    if (!err)
        err = setup_queue(q);
    if (err)
        return err;
    reg_write(q, 0x70, 1 | 2 | 8 | 4); /* DRIVER_OK */
    return 0;
}

int virtio_init2(struct virtq *q0, struct virtq *q1, u64 base, u32 type, u64 rings0, u64 rings1)
{
    queue_rings(q0, base, 0, rings0);
    queue_rings(q1, base, 1, rings1);
    int err = begin(q0, type);
    if (!err)
        err = setup_queue(q0);
    if (!err)
        err = setup_queue(q1);
    if (err)
        return err;
    reg_write(q0, 0x70, 1 | 2 | 8 | 4); /* DRIVER_OK */
    return 0;
}

void virtio_post(struct virtq *q, const struct vbuf *bufs, int n)
{
    volatile struct desc *table = (volatile struct desc *)q->desc;
    for (int i = 0; i < n; i++) {
        table[i].addr = bufs[i].addr;
        table[i].len = bufs[i].len;
        table[i].flags = (u16)((bufs[i].device_writes ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0));
        table[i].next = (u16)(i + 1);
    }
    volatile u16 *avail = (volatile u16 *)q->avail;
    avail[2 + q->avail_idx % QSIZE] = 0; /* the chain starts at descriptor 0 */
    barrier();
    q->avail_idx++;
    avail[1] = q->avail_idx;
    barrier();
    reg_write(q, 0x50, q->index); /* QueueNotify */
}

long virtio_wait(struct virtq *q, long spins)
{
    volatile u16 *used_idx = (volatile u16 *)(q->used + 2);
    for (long spin = 0; *used_idx == q->used_seen; spin++) {
        if (spins >= 0 && spin > spins)
            return -1;
        cpu_relax();
    }
    volatile u32 *elem = (volatile u32 *)(q->used + 4 + (u64)(q->used_seen % QSIZE) * 8);
    q->used_seen++;
    return (long)elem[1];
}

long virtio_request(struct virtq *q, const struct vbuf *bufs, int n)
{
    virtio_post(q, bufs, n);
    return virtio_wait(q, 1000000);
}
