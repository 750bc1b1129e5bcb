/* A minimal virtio-mmio (version 2) driver for the probe: one split queue per device, requests
 * posted one at a time and polled for completion (the probe sets up no interrupts). */
#ifndef PROBE_VIRTIO_H
#define PROBE_VIRTIO_H

#include "io.h"

struct virtq {
    u64 base;  /* the device's register window */
    u64 desc;  /* descriptor table, available and used rings in guest RAM */
    u64 avail;
    u64 used;
    u16 avail_idx;
    u16 used_seen;
};

struct vbuf {
    u64 addr;
    u32 len;
    int device_writes; /* 1: the device writes it (VIRTQ_DESC_F_WRITE) */
};

/* Initialise the device at `base`, expecting virtio device id `type`, with its queue 0 in the
 * 12 KiB at `rings`. Returns 0, or a negative step number on failure. */
int virtio_init(struct virtq *q, u64 base, u32 type, u64 rings);

/* Post one chain of `n` buffers, notify, and wait for the device to use it. Returns the used
 * length, or -1 if the device did not answer. */
long virtio_request(struct virtq *q, const struct vbuf *bufs, int n);

#endif
