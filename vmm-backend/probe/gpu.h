/* The probe's virtio-gpu scenario: set up a 64x48 scanout, draw a known pattern, flush. */
#ifndef PROBE_GPU_H
#define PROBE_GPU_H

#include "io.h"

/* Drives the virtio-gpu device at `base` (queue 0 rings at `rings`), printing each response
 * type on COM1. */
void gpu_draw(u64 base, u64 rings);

/* Inverts every colour of the pattern drawn by gpu_draw and flushes it (a changed screen). */
void gpu_invert(void);

/* Shows a resource of the display's whole mode (a mode change from 64x48): black, with the
 * pattern in its top-left 64x48 corner. */
void gpu_show_mode(void);

/* When the host changed the display's preferred size (events_read has
 * VIRTIO_GPU_EVENT_DISPLAY): clears the event, reads the new size and shows a resource of it
 * (the pattern in its corner), printing "gpu display changed to WxH" before and "display size
 * followed" after; returns 1. Else 0. */
int gpu_display_changed(void);

/* With PROBE_GPU_ANIMATE: shows a resource of the display's whole mode and redraws a part of it
 * 60 times a second (LAPIC timer), transferring and flushing the whole frame, forever. */
void gpu_animate(void);

/* The pattern's pixel at x, y (B8G8R8X8 as a little-endian u32); the test computes the same. */
static inline u32 gpu_pattern(u32 x, u32 y)
{
    return (x * 4) | ((y * 5) << 8) | ((((x + y) * 3) & 0xff) << 16) | 0xff000000u;
}

#endif
