/* The probe's virtio-input scenario: read the device's name through the select/subsel config
 * space, then take the events the host queued before the run. */
#ifndef PROBE_INPUT_H
#define PROBE_INPUT_H

#include "io.h"

/* Drives the virtio-input device at `base` (event queue rings at `rings`), printing its name and
 * `events` events on COM1. */
void input_read(u64 base, u64 rings, int events);

#endif
