/* The probe on the network: the smallest IPv4 a host-side test can talk to. One receive and one
 * transmit buffer at a time, polled; Ethernet, ARP replies, a DHCP discover, UDP without
 * checksums (allowed over IPv4). */
#include "net.h"
#include "serial.h"
#include "virtio.h"

#define HDR 12         /* struct virtio_net_hdr_v1 before every frame */
#define BUF_LEN 2048   /* a frame of the 1500-byte MTU and the header fit */
#define ETH_IP 0x0800
#define ETH_ARP 0x0806
#define DHCP_CLIENT 68
#define DHCP_SERVER 67

struct net {
    struct virtq rx, tx;
    u64 rxbuf, txbuf;
    u8 mac[6];
    u8 ip[4];       /* from the DHCP offer */
    u8 router[4];
    u8 router_mac[6]; /* the server's, learnt from the offer */
};

static void put16(u8 *p, u16 v)
{
    p[0] = (u8)(v >> 8);
    p[1] = (u8)v;
}

static u16 get16(const u8 *p)
{
    return (u16)((p[0] << 8) | p[1]);
}

static void copy(u8 *to, const u8 *from, int n)
{
    for (int i = 0; i < n; i++)
        to[i] = from[i];
}

static int same(const u8 *a, const u8 *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static void print_ip(const u8 *ip)
{
    for (int i = 0; i < 4; i++) {
        if (i)
            serial_putc('.');
        serial_put_dec(ip[i]);
    }
}

static u16 ip_checksum(const u8 *header)
{
    u32 sum = 0;
    for (int i = 0; i < 20; i += 2)
        sum += get16(header + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (u16)~sum;
}

/* Sends the frame of `len` bytes already in txbuf (after the header). */
static void transmit(struct net *n, int len)
{
    u8 *hdr = (u8 *)n->txbuf;
    for (int i = 0; i < HDR; i++)
        hdr[i] = 0;
    struct vbuf buf = {n->txbuf, (u32)(HDR + len), 0};
    virtio_request(&n->tx, &buf, 1);
}

/* Writes Ethernet, IPv4 and UDP headers into txbuf for `payload` bytes already at offset 42
 * of the frame; returns the frame's length. */
static int udp_frame(struct net *n, const u8 *dst_mac, const u8 *src_ip, const u8 *dst_ip,
                     u16 sport, u16 dport, int payload)
{
    u8 *f = (u8 *)n->txbuf + HDR;
    copy(f, dst_mac, 6);
    copy(f + 6, n->mac, 6);
    put16(f + 12, ETH_IP);
    u8 *ip = f + 14;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (u16)(20 + 8 + payload));
    put16(ip + 4, 0);
    put16(ip + 6, 0x4000); /* don't fragment */
    ip[8] = 64;
    ip[9] = 17;
    put16(ip + 10, 0);
    copy(ip + 12, src_ip, 4);
    copy(ip + 16, dst_ip, 4);
    put16(ip + 10, ip_checksum(ip));
    u8 *udp = ip + 20;
    put16(udp, sport);
    put16(udp + 2, dport);
    put16(udp + 4, (u16)(8 + payload));
    put16(udp + 6, 0);
    return 14 + 20 + 8 + payload;
}

/* Waits for the next frame (up to `spins` rounds, < 0 forever); its length, or -1. */
static int receive(struct net *n, long spins)
{
    if (n->rx.used_seen == n->rx.avail_idx) {
        struct vbuf buf = {n->rxbuf, BUF_LEN, 1};
        virtio_post(&n->rx, &buf, 1);
    }
    long used = virtio_wait(&n->rx, spins);
    if (used < HDR)
        return -1;
    return (int)(used - HDR);
}

/* Answers an ARP request for our address; whether the frame was one. */
static int answer_arp(struct net *n, const u8 *f, int len)
{
    if (len < 42 || get16(f + 12) != ETH_ARP || get16(f + 20) != 1 || !same(f + 38, n->ip, 4))
        return 0;
    u8 *r = (u8 *)n->txbuf + HDR;
    copy(r, f + 6, 6);
    copy(r + 6, n->mac, 6);
    put16(r + 12, ETH_ARP);
    copy(r + 14, f + 14, 6); /* hardware and protocol types and sizes */
    put16(r + 20, 2);        /* reply */
    copy(r + 22, n->mac, 6);
    copy(r + 28, n->ip, 4);
    copy(r + 32, f + 22, 10); /* the asker's MAC and IP */
    transmit(n, 42);
    return 1;
}

/* The UDP payload of frame `f` if it is an IPv4 UDP datagram to `port`, else 0. */
static const u8 *udp_to(const u8 *f, int len, u16 port, int *payload_len)
{
    if (len < 42 || get16(f + 12) != ETH_IP || f[23] != 17)
        return 0;
    int ihl = (f[14] & 15) * 4;
    const u8 *udp = f + 14 + ihl;
    if (14 + ihl + 8 > len || get16(udp + 2) != port)
        return 0;
    int ulen = get16(udp + 4) - 8;
    if (ulen < 0 || 14 + ihl + 8 + ulen > len)
        return 0;
    *payload_len = ulen;
    return udp + 8;
}

static int dhcp_discover(struct net *n)
{
    static const u8 broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const u8 zero[4] = {0, 0, 0, 0};
    static const u8 everyone[4] = {255, 255, 255, 255};
    for (int attempt = 0; attempt < 5; attempt++) {
        u8 *b = (u8 *)n->txbuf + HDR + 42;
        for (int i = 0; i < 300; i++)
            b[i] = 0;
        b[0] = 1; /* BOOTREQUEST */
        b[1] = 1; /* Ethernet */
        b[2] = 6;
        put16(b + 4, 0x4265); /* xid "Be" "rt" */
        put16(b + 6, 0x7274);
        put16(b + 10, 0x8000); /* answer by broadcast: we have no address yet */
        copy(b + 28, n->mac, 6);
        b[236] = 99, b[237] = 130, b[238] = 83, b[239] = 99; /* magic cookie */
        b[240] = 53, b[241] = 1, b[242] = 1;                 /* DHCPDISCOVER */
        b[243] = 255;
        int len = udp_frame(n, broadcast, zero, everyone, DHCP_CLIENT, DHCP_SERVER, 244);
        transmit(n, len);
        for (int frames = 0; frames < 16; frames++) {
            int flen = receive(n, 4000000);
            if (flen < 0)
                break;
            const u8 *f = (const u8 *)n->rxbuf + HDR;
            int plen;
            const u8 *p = udp_to(f, flen, DHCP_CLIENT, &plen);
            if (!p || plen < 240 || p[0] != 2 || get16(p + 4) != 0x4265)
                continue;
            copy(n->ip, p + 16, 4);
            copy(n->router_mac, f + 6, 6);
            int mtu = 0, type = 0;
            for (int i = 240; i + 1 < plen && p[i] != 255;) {
                if (p[i] == 0) {
                    i++;
                    continue;
                }
                int olen = p[i + 1];
                if (i + 2 + olen > plen)
                    break;
                if (p[i] == 53 && olen >= 1)
                    type = p[i + 2];
                if (p[i] == 3 && olen >= 4)
                    copy(n->router, p + i + 2, 4);
                if (p[i] == 26 && olen >= 2)
                    mtu = get16(p + i + 2);
                i += 2 + olen;
            }
            serial_puts("BERTH-PROBE: net offer type ");
            serial_put_dec((u64)type);
            serial_puts(" address ");
            print_ip(n->ip);
            serial_puts(" router ");
            print_ip(n->router);
            serial_puts(" mtu ");
            serial_put_dec((u64)mtu);
            serial_putc('\n');
            return 0;
        }
    }
    serial_puts("BERTH-PROBE: net no DHCP offer\n");
    return -1;
}

/* The probe's own UDP port for the greeting: 40000 and its card's last two bytes (so its
 * name's), below 60000: VMs of other names greet from other ports, so the host side of one's
 * flow (passt and pasta keep the guest's port) is never another's still open. */
static u16 greeting_port(const struct net *n)
{
    return (u16)(40000 + ((n->mac[4] << 8) | n->mac[5]) % 20000);
}

static void greet_host(struct net *n)
{
    static const char hello[] = "hello from the probe";
    u8 *payload = (u8 *)n->txbuf + HDR + 42;
    int len = 0;
    for (; hello[len]; len++)
        payload[len] = (u8)hello[len];
    int flen = udp_frame(n, n->router_mac, n->ip, n->router, greeting_port(n), PROBE_NET_HOST_PORT, len);
    transmit(n, flen);
    for (int frames = 0; frames < 32; frames++) {
        int rlen = receive(n, 20000000);
        if (rlen < 0)
            break;
        const u8 *f = (const u8 *)n->rxbuf + HDR;
        if (answer_arp(n, f, rlen))
            continue;
        int plen;
        const u8 *p = udp_to(f, rlen, greeting_port(n), &plen);
        if (!p)
            continue;
        serial_puts("BERTH-PROBE: net reply ");
        for (int i = 0; i < plen && i < 64; i++)
            serial_putc((char)p[i]);
        serial_putc('\n');
        return;
    }
    serial_puts("BERTH-PROBE: net no reply from the host\n");
}

/* Sends every datagram to the echo port back where it came from. */
static void echo(struct net *n, int echoes)
{
    serial_puts("BERTH-PROBE: net echo ready\n");
    while (echoes > 0) {
        int len = receive(n, -1);
        if (len < 0)
            continue;
        const u8 *f = (const u8 *)n->rxbuf + HDR;
        if (answer_arp(n, f, len))
            continue;
        int plen;
        const u8 *p = udp_to(f, len, PROBE_NET_ECHO_PORT, &plen);
        if (!p || plen > 1400)
            continue;
        int ihl = (f[14] & 15) * 4;
        const u8 *ip = f + 14;
        const u8 *udp = ip + ihl;
        copy((u8 *)n->txbuf + HDR + 42, p, plen);
        int flen = udp_frame(n, f + 6, ip + 16, ip + 12, get16(udp + 2), get16(udp), plen);
        transmit(n, flen);
        serial_puts("BERTH-PROBE: net echoed ");
        serial_put_dec((u64)plen);
        serial_puts(" bytes from ");
        print_ip(ip + 12);
        serial_putc('\n');
        echoes--;
    }
}

void net_probe(u64 base, u64 scratch, int echoes)
{
    static struct net n;
    int err = virtio_init2(&n.rx, &n.tx, base, 1, scratch, scratch + 0x3000);
    if (err) {
        serial_puts("BERTH-PROBE: net init failed at step ");
        serial_put_dec((u64)-err);
        serial_putc('\n');
        return;
    }
    n.rxbuf = scratch + 0x8000;
    n.txbuf = scratch + 0x9000;
    for (int i = 0; i < 6; i++)
        n.mac[i] = *(volatile u8 *)(base + 0x100 + (u64)i);
    u16 status = *(volatile u16 *)(base + 0x106);
    serial_puts("BERTH-PROBE: net mac ");
    for (int i = 0; i < 6; i++) {
        if (i)
            serial_putc(':');
        serial_put_hex(n.mac[i], 2);
    }
    serial_puts(status & 1 ? " link up\n" : " link down\n");
    if (dhcp_discover(&n))
        return;
    greet_host(&n);
    echo(&n, echoes);
}
