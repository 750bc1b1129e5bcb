/* A minimal virtio-mmio (version 2) driver for the probe: one split queue per device, requests
 * posted one at a time and polled for completion (the probe sets up no interrupts). */
#ifndef PROBE_VIRTIO_H
#define PROBE_VIRTIO_H

#include "io.h"

struct virtq {
    u64 base;  /* the device's register window */
    u32 index; /* the queue's index in the device */
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

/* virtio_init for a device of two queues (virtio-net's receive and transmit queues): queue 0
 * on `q0` with its rings at `rings0`, queue 1 on `q1` at `rings1`. */
int virtio_init2(struct virtq *q0, struct virtq *q1, u64 base, u32 type, u64 rings0, u64 rings1);

/* Post one chain of `n` buffers, notify, and wait for the device to use it. Returns the used
 * length, or -1 if the device did not answer. */
long virtio_request(struct virtq *q, const struct vbuf *bufs, int n);

/* The two halves of virtio_request: post a chain and notify; wait up to `spins` rounds (< 0:
 * forever) for the device to use it. */
void virtio_post(struct virtq *q, const struct vbuf *bufs, int n);
long virtio_wait(struct virtq *q, long spins);

#endif
