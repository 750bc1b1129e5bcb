/* -DPROBE_NET: the probe on the network through virtio-net (and, in the tests, passt). */
#ifndef PROBE_NET_H
#define PROBE_NET_H

#include "io.h"

/* The UDP port on the host's loopback the probe sends a greeting to (through the gateway's
 * address, which passt maps to the host), and the guest port it echoes datagrams on. */
#define PROBE_NET_HOST_PORT 47001
#define PROBE_NET_ECHO_PORT 7

/* Drive the card at `base` (rings and buffers in the 64 KiB at `scratch`): DHCP discover and
 * print the offer; greet the host and print its answer; then echo `echoes` datagrams that
 * reach the echo port. Every step prints a `BERTH-PROBE: net ...` line. */
void net_probe(u64 base, u64 scratch, int echoes);

#endif
