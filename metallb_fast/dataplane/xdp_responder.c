/* XDP ARP/NDP responder for metallb-fast (bcc C).
 *
 * Answers ARP requests and IPv6 Neighbor Solicitations for the addresses this node owns, in the driver, by
 * rewriting the request in place and bouncing it with XDP_TX; reflects data-path heartbeat requests
 * (metallb_fast/dataplane/heartbeat.py) on the interfaces that serve them, the same way and under the same liveness
 * gate. Everything else is XDP_PASS, so the kernel stack still sees every frame we decline (a request over its
 * source's flood limit too, unless the limit's action is drop). The decision order and the output frames are
 * specified byte for byte in docs/fastpath.md; metallb_fast/dataplane/packets.py is the oracle this program is tested
 * against (with floodlimit.py for the flood limit).
 *
 * The loader (metallb_fast/dataplane/xdp.py, through its child process xdp_loader.py) passes on the command line:
 *   the wire contract       wire.cflags(), metallb_fast/dataplane/wire.py: VERDICT_<NAME>=<index> for every member
 *                           of base.Verdict and VERDICT_COUNT, the frame lengths and offsets (ETH_LEN, NS_LEN,
 *                           MAX_NS_LEN, ...), the heartbeat layout (HB_*), the config slots (CONFIG_*). They are
 *                           defined there only, shared with packets.py and ext/ring.pyx; none of them is defined here;
 *   MAX_VIPS                the capacity of the address maps;
 *   FLOOD_SOURCES           the capacity of the flood limit's per-source buckets (floodlimit.DEFAULT_SOURCES);
 *   PIN_DIR (optional)      a directory on a bpf filesystem: the maps declared with MLBF_PINNED are pinned there
 *                           (bcc re-uses a map already pinned under its name), so a restarted loader adopts them.
 */
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>

#if !defined(VERDICT_COUNT) || !defined(NA_FRAME_LEN) || !defined(HB_UDP_LEN) || !defined(CONFIG_SIZE)
#error "the loader must pass the wire contract (metallb_fast/dataplane/wire.py: wire.cflags())"
#endif
#ifndef MAX_VIPS
#define MAX_VIPS 4096
#endif
#ifndef FLOOD_SOURCES
#define FLOOD_SOURCES 16384
#endif
#ifndef MAX_HEARTBEAT_IFACES
#define MAX_HEARTBEAT_IFACES 256
#endif

/* The map structs below are packed in Python by metallb_fast/dataplane/xdp_maps.py, byte for byte: change both
 * (the loader refuses a map whose key or value size differs from its packer's).
 *
 * Key ifindex 0 marks "owned on some interface of this node": a miss on the ingress ifindex that hits the
 * marker is WRONG_INTERFACE rather than NOT_OWNED. */
struct vip4_key {
    __be32 addr;
    __u32 ifindex;
};

struct vip6_key {
    struct in6_addr addr;
    __u32 ifindex;
};

struct vip_value {
    __u8 mac[6];
    __u8 pad[2];
};

struct vip_counters {
    __u64 requests; /* reached the target lookup and matched this key */
    __u64 replies;  /* answered */
};

/* A table that outlives the loader when PIN_DIR is given (the state a restart must keep answering from). */
#ifdef PIN_DIR
#define MLBF_PINNED(_type, _key, _leaf, _name, _max) \
    BPF_TABLE_PINNED(_type, _key, _leaf, _name, _max, PIN_DIR "/" #_name)
#else
#define MLBF_PINNED(_type, _key, _leaf, _name, _max) BPF_TABLE(_type, _key, _leaf, _name, _max)
#endif

MLBF_PINNED("hash", struct vip4_key, struct vip_value, vips_v4, MAX_VIPS);
MLBF_PINNED("hash", struct vip6_key, struct vip_value, vips_v6, MAX_VIPS);
MLBF_PINNED("percpu_hash", struct vip4_key, struct vip_counters, counters_v4, MAX_VIPS);
MLBF_PINNED("percpu_hash", struct vip6_key, struct vip_counters, counters_v6, MAX_VIPS);
MLBF_PINNED("percpu_array", int, __u64, verdicts, VERDICT_COUNT);
/* config[CONFIG_DEADLINE]: liveness deadline, CLOCK_MONOTONIC ns (bpf_ktime_get_ns); 0 = no deadline.
 * config[CONFIG_HEARTBEAT_PORT]: UDP port heartbeats are reflected on; 0 = off. */
MLBF_PINNED("array", int, __u64, config, CONFIG_SIZE);

/* The interfaces that reflect heartbeats (by ingress ifindex), with the Ethernet address a request must be sent to:
 * the interface's own, so frames for another host that reach us anyway (a bridge flooding unknown unicast, a
 * promiscuous NIC) are not answered on that host's behalf. */
struct heartbeat_iface {
    __u8 mac[6];
    __u8 pad[2];
};
MLBF_PINNED("hash", __u32, struct heartbeat_iface, heartbeat_ifaces, MAX_HEARTBEAT_IFACES);

/* Flood protection (metallb_fast/dataplane/floodlimit.py is the model, docs/fastpath.md the rule): one GCRA bucket
 * per source, its theoretical arrival time in bpf_ktime_get_ns nanoseconds. Not pinned: the limit is set again by
 * every run, and buckets that start full after a restart only forgive a flood for one burst; unpinned, these maps
 * leave the pinned layout (and so a hitless restart) unchanged. */
struct flood_key {
    __u8 mac[6];      /* Ethernet source */
    __u8 family;      /* 4: ARP, addr = sender IP then zeros; 6: NS, addr = IPv6 source */
    __u8 pad;
    __u8 addr[16];
};

/* flood_config[0], written by the loader; interval_ns 0 = off (then nothing else is read). */
struct flood_config {
    __u64 interval_ns;   /* T = 1e9 / rate */
    __u64 tolerance_ns;  /* tau = (burst - 1) * T */
    __u64 action;        /* XDP_PASS or XDP_DROP, for frames over the limit */
};

BPF_TABLE("array", int, struct flood_config, flood_config, 1);
BPF_TABLE("lru_hash", struct flood_key, __u64, flood_buckets, FLOOD_SOURCES);

static __always_inline int finish(int verdict, int action)
{
    __u32 index = verdict;
    __u64 *count = verdicts.lookup(&index);
    if (count)
        *count += 1; /* per-CPU slot: no atomics needed */
    return action;
}

static __always_inline int decline(int verdict)
{
    return finish(verdict, XDP_PASS);
}

static __always_inline int alive(void)
{
    __u32 index = CONFIG_DEADLINE;
    __u64 *deadline = config.lookup(&index);
    if (!deadline || *deadline == 0)
        return 1;
    return bpf_ktime_get_ns() <= *deadline;
}

/* 0 when a frame from this source may be answered (its bucket charged), else the action for a frame over the limit.
 * Checked last, right before the reply: only frames this node would answer cost a bucket (floodlimit.py says why).
 * Two CPUs updating one source's bucket at once may both conform: at worst a frame or two more than the limit. */
static __always_inline int over_flood_limit(const __u8 *eth_src, __u8 family, const void *addr, int addr_len)
{
    __u32 zero = 0;
    struct flood_config *cfg = flood_config.lookup(&zero);
    if (!cfg || cfg->interval_ns == 0)
        return 0;
    struct flood_key key = {};
    __builtin_memcpy(key.mac, eth_src, 6);
    key.family = family;
    if (addr_len == 16)
        __builtin_memcpy(key.addr, addr, 16);
    else
        __builtin_memcpy(key.addr, addr, 4);
    __u64 now = bpf_ktime_get_ns();
    __u64 *tat = flood_buckets.lookup(&key);
    if (!tat) {
        __u64 next = now + cfg->interval_ns; /* a new source: a full bucket, this frame charged */
        flood_buckets.update(&key, &next);
        return 0;
    }
    __u64 start = *tat > now ? *tat : now;
    if (start - now > cfg->tolerance_ns)
        return cfg->action == XDP_DROP ? XDP_DROP : XDP_PASS;
    *tat = start + cfg->interval_ns;
    return 0;
}

/* The I/G bit: a group (multicast or broadcast) address, never a station's source. */
static __always_inline int is_group(const __u8 *mac)
{
    return mac[0] & 1;
}

static __always_inline int is_broadcast(const __u8 *mac)
{
    return (mac[0] & mac[1] & mac[2] & mac[3] & mac[4] & mac[5]) == 0xff;
}

static __always_inline int same_mac(const __u8 *a, const __u8 *b)
{
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline void copy_mac(__u8 *dst, const __u8 *src)
{
    __builtin_memcpy(dst, src, 6);
}

#define ANSWER -1 /* decline_owned(): not declined (every XDP action is >= 0) */

/* The shared end of both decisions once the target matched on the ingress interface (packets._lookup, then the
 * flood limit): a request of the address; addressed to us (the owned MAC, or dst_ok: broadcast / multicast)? alive?
 * within its source's limit? ANSWER, or the action for the frame with its verdict counted. */
static __always_inline int decline_owned(const __u8 *data, const struct vip_value *vip, struct vip_counters *counters,
                                         int dst_ok, __u8 family, const void *sender, int sender_len)
{
    if (counters)
        counters->requests += 1;
    if (!dst_ok && !same_mac(data, vip->mac))
        return decline(VERDICT_OTHER_ETH_DST);
    if (!alive())
        return decline(VERDICT_LIVENESS_EXPIRED);
    int limited = over_flood_limit(data + 6, family, sender, sender_len);
    if (limited)
        return finish(VERDICT_RATE_LIMITED, limited);
    return ANSWER;
}

static __always_inline int handle_arp(struct xdp_md *ctx, __u8 *data, __u8 *data_end)
{
    if (data + ARP_FRAME_LEN > data_end)
        return decline(VERDICT_MALFORMED);
    __u8 *arp = data + ETH_LEN;
    /* htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4 */
    if (arp[0] != 0 || arp[1] != 1 || arp[2] != 0x08 || arp[3] != 0x00 || arp[4] != 6 || arp[5] != 4)
        return decline(VERDICT_MALFORMED);
    if (arp[6] != 0 || arp[7] != 1)
        return decline(VERDICT_NOT_REQUEST);

    __u8 *sha = arp + 8;
    __u8 *spa = arp + 14;
    __u8 *tha = arp + 18;
    __u8 *tpa = arp + 24;
    __be32 sender, target;
    __builtin_memcpy(&sender, spa, 4);
    __builtin_memcpy(&target, tpa, 4);
    if (sender == target)
        return decline(VERDICT_GRATUITOUS);
    if (is_group(data + 6) || sender == 0xffffffff) /* sender IP 0.0.0.0 (an RFC 5227 probe) is answered */
        return decline(VERDICT_BAD_SOURCE);

    struct vip4_key key = {.addr = target, .ifindex = ctx->ingress_ifindex};
    struct vip_value *vip = vips_v4.lookup(&key);
    if (!vip) {
        key.ifindex = 0;
        return decline(vips_v4.lookup(&key) ? VERDICT_WRONG_INTERFACE : VERDICT_NOT_OWNED);
    }
    struct vip_counters *counters = counters_v4.lookup(&key);
    int declined = decline_owned(data, vip, counters, is_broadcast(data), 4, &sender, 4);
    if (declined != ANSWER)
        return declined;

    /* Rewrite in place; the frame keeps its length (and any trailing padding). */
    __u8 mac[6];
    copy_mac(mac, vip->mac);
    copy_mac(data, data + 6);   /* eth dst = request eth src */
    copy_mac(data + 6, mac);    /* eth src = owned MAC */
    arp[7] = 2;                 /* op = reply */
    copy_mac(tha, sha);         /* tha = request sha */
    __builtin_memcpy(tpa, &sender, 4);
    copy_mac(sha, mac);
    __builtin_memcpy(spa, &target, 4);
    if (counters)
        counters->replies += 1;
    return finish(VERDICT_ANSWERED, XDP_TX);
}

/* Sum of the 16-bit big-endian words of an IPv6 address, for the ICMPv6 checksum. */
static __always_inline __u32 sum_in6(const struct in6_addr *addr)
{
    __u32 sum = 0;
#pragma unroll
    for (int i = 0; i < 8; i++)
        sum += bpf_ntohs(addr->s6_addr16[i]);
    return sum;
}

/* ---------------------------------------------------------------------------------------------- heartbeats */

#define SWAP_BYTES(a, b, n)                 \
    do {                                    \
        __u8 tmp_[n];                       \
        __builtin_memcpy(tmp_, (a), n);     \
        __builtin_memcpy((a), (b), n);      \
        __builtin_memcpy((b), tmp_, n);     \
    } while (0)

static __always_inline __u16 be16(const __u8 *p)
{
    return ((__u16)p[0] << 8) | p[1];
}

/* The UDP port heartbeats are reflected on; 0 = off. */
static __always_inline __u16 heartbeat_port(void)
{
    __u32 index = CONFIG_HEARTBEAT_PORT;
    __u64 *port = config.lookup(&index);
    return port ? (__u16)*port : 0;
}

static __always_inline __u16 fold(__u32 sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    return (sum & 0xffff) + (sum >> 16);
}

/* Sum of the UDP pseudo-header's words (RFC 768 / RFC 8200 8.1): addresses, protocol, the UDP length (HB_UDP_LEN). */
static __always_inline __u32 pseudo_header_sum(const __u8 *data, int ipv4)
{
    __u32 sum = IPPROTO_UDP_ + HB_UDP_LEN;
    if (ipv4) {
#pragma unroll
        for (int i = 0; i < 8; i += 2)
            sum += be16(data + ETH_LEN + 12 + i);
    } else {
#pragma unroll
        for (int i = 0; i < 32; i += 2)
            sum += be16(data + ETH_LEN + 8 + i);
    }
    return sum;
}

static __always_inline struct heartbeat_iface *heartbeat_iface(struct xdp_md *ctx)
{
    __u32 ifindex = ctx->ingress_ifindex;
    return heartbeat_ifaces.lookup(&ifindex);
}

/* The shared end of both heartbeat decisions (packets._reflect): a version-1 request sent to the interface's MAC,
 * still alive? Then reflect it in place. `udp` is the UDP header, HB_UDP_LEN bytes of it checked to be in the frame. */
static __always_inline int reflect(__u8 *data, __u8 *udp, const struct heartbeat_iface *iface, int ipv4)
{
    if (be16(udp + 4) != HB_UDP_LEN)
        return decline(VERDICT_MALFORMED_HEARTBEAT);
    __u8 *hb = udp + 8;
    if (hb[0] != 'M' || hb[1] != 'L' || hb[2] != 'B' || hb[3] != 'F' || hb[4] != HB_VERSION)
        return decline(VERDICT_MALFORMED_HEARTBEAT);
    if (hb[5] == HB_REPLY)
        return decline(VERDICT_NOT_REQUEST); /* a reflection on its way back to a sender on this node */
    if (hb[5] != HB_REQUEST)
        return decline(VERDICT_MALFORMED_HEARTBEAT);
    if (!same_mac(data, iface->mac))
        return decline(VERDICT_OTHER_ETH_DST);
    if (!alive())
        return decline(VERDICT_LIVENESS_EXPIRED);

    SWAP_BYTES(data, data + 6, 6);
    if (ipv4)
        SWAP_BYTES(data + ETH_LEN + 12, data + ETH_LEN + 16, 4);  /* TTL and header checksum unchanged */
    else
        SWAP_BYTES(data + ETH_LEN + 8, data + ETH_LEN + 24, 16);  /* hop limit unchanged */
    SWAP_BYTES(udp, udp + 2, 2);
    hb[5] = HB_REPLY;
    /* The swaps leave the one's complement sum alone; only the word (version, kind) changes. RFC 1624 eqn. 3:
     * HC' = ~(~HC + ~m + m'). An IPv4 checksum of 0 means "none" and stays; a result of 0 is sent as 0xffff.
     * A checksum equal to the pseudo-header sum is what a sender's kernel leaves for checksum offload to finish
     * (CHECKSUM_PARTIAL: the request came over veth, or from this host): there is nothing to update; compute it. */
    __u16 csum = be16(udp + 6);
    if (csum == fold(pseudo_header_sum(data, ipv4))) {
        __u32 sum = pseudo_header_sum(data, ipv4);
#pragma unroll
        for (int i = 0; i < HB_UDP_LEN; i += 2)
            if (i != 6)
                sum += be16(udp + i);
        csum = ~fold(sum) & 0xffff;
        if (csum == 0)
            csum = 0xffff;
        udp[6] = csum >> 8;
        udp[7] = csum & 0xff;
    } else if (!ipv4 || csum != 0) {
        __u32 sum = (__u16)~csum + (__u16)~((HB_VERSION << 8) | HB_REQUEST) + ((HB_VERSION << 8) | HB_REPLY);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        csum = ~sum & 0xffff;
        if (csum == 0)
            csum = 0xffff;
        udp[6] = csum >> 8;
        udp[7] = csum & 0xff;
    }
    return finish(VERDICT_HEARTBEAT, XDP_TX);
}

static __always_inline int handle_ipv4(struct xdp_md *ctx, __u8 *data, __u8 *data_end)
{
    __u16 port = heartbeat_port();
    if (!port || data + IP4_FRAME_LEN > data_end)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    __u8 *ip = data + ETH_LEN;
    __u32 ihl = ip[0] & 0x0f;
    if ((ip[0] >> 4) != 4 || ihl < 5 || ip[9] != IPPROTO_UDP_)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    __u16 fragment = be16(ip + 6);
    if (fragment & IP4_FRAG_OFFSET)
        return decline(VERDICT_NOT_ARP_OR_NDP); /* a later fragment: no UDP header to be addressed by */
    __u8 *udp = data + ETH_LEN + ihl * 4;
    if (udp + 8 > data_end || be16(udp + 2) != port)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    struct heartbeat_iface *iface = heartbeat_iface(ctx);
    if (!iface)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    /* Addressed to our heartbeat port from here on. */
    if (ihl != 5 || (fragment & IP4_MF) || be16(ip + 2) != 20 + HB_UDP_LEN)
        return decline(VERDICT_MALFORMED_HEARTBEAT); /* options, a first fragment, or not 52 bytes of IPv4 */
    if (data + HB4_FRAME_LEN > data_end)
        return decline(VERDICT_MALFORMED_HEARTBEAT);
    return reflect(data, data + IP4_FRAME_LEN, iface, 1);
}

/* IPv6 whose next header is not ICMPv6 (the header itself checked to be in the frame). A heartbeat behind one
 * extension header (hop-by-hop, routing, destination options, a first fragment) is recognised, then declined. */
static __always_inline int handle_heartbeat_v6(struct xdp_md *ctx, __u8 *data, __u8 *data_end)
{
    __u16 port = heartbeat_port();
    if (!port)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    __u8 *ip6 = data + ETH_LEN;
    __u8 *ext = data + IP6_FRAME_LEN;
    __u8 next_header = ip6[6];
    __u32 udp_off = IP6_FRAME_LEN;
    int behind_extension = 0;
    if ((next_header == 0 || next_header == 43 || next_header == 60) && ext + 2 <= data_end) {
        next_header = ext[0];
        udp_off += ((__u32)ext[1] + 1) * 8;
        behind_extension = 1;
    } else if (next_header == 44 && ext + 8 <= data_end && (be16(ext + 2) & 0xfff8) == 0) {
        next_header = ext[0];
        udp_off += 8;
        behind_extension = 1;
    }
    if (next_header != IPPROTO_UDP_)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    __u8 *udp = data + udp_off;
    if (udp + 8 > data_end || be16(udp + 2) != port)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    struct heartbeat_iface *iface = heartbeat_iface(ctx);
    if (!iface)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    if (behind_extension || be16(ip6 + 4) != HB_UDP_LEN || data + HB6_FRAME_LEN > data_end)
        return decline(VERDICT_MALFORMED_HEARTBEAT);
    return reflect(data, data + IP6_FRAME_LEN, iface, 0);
}

/* ------------------------------------------------------------------------------------------------- ARP/NDP */

static __always_inline int is_loopback(const struct in6_addr *addr)
{
    return (addr->s6_addr32[0] | addr->s6_addr32[1] | addr->s6_addr32[2]) == 0 && addr->s6_addr32[3] == bpf_htonl(1);
}

/* RFC 4443 2.3 over the received message, checksum field included: verifies when the folded sum is 0xffff.
 * payload_len bytes of it are in the frame (checked by the caller); the loop's fixed bound is for the verifier, and
 * each read is checked against data_end again because the verifier does not carry the caller's proof. */
static __always_inline int ns_checksum_ok(__u8 *data, __u8 *data_end, __u32 payload_len)
{
    if (payload_len > MAX_NS_LEN)
        return 0; /* the caller declined it already: this keeps the offsets below bounded for the verifier */
    struct in6_addr *ip6 = (struct in6_addr *)(data + ETH_LEN + 8);
    __u32 sum = sum_in6(&ip6[0]) + sum_in6(&ip6[1]) + payload_len + NEXT_HEADER_ICMP6; /* the pseudo-header */
    for (__u32 off = 0; off < MAX_NS_LEN; off += 2) {
        if (off + 2 > payload_len)
            break;
        __u8 *word = data + IP6_FRAME_LEN + off;
        if (word + 2 > data_end)
            return 0;
        sum += be16(word);
    }
    if (payload_len & 1) {
        __u8 *last = data + IP6_FRAME_LEN + payload_len - 1;
        if (last + 1 > data_end)
            return 0;
        sum += (__u32)last[0] << 8;
    }
    return fold(sum) == 0xffff;
}

static __always_inline int handle_ipv6(struct xdp_md *ctx, __u8 *data, __u8 *data_end)
{
    if (data + IP6_FRAME_LEN > data_end)
        return decline(VERDICT_MALFORMED);
    __u8 *ip6 = data + ETH_LEN;
    if ((ip6[0] >> 4) != 6)
        return decline(VERDICT_MALFORMED);
    if (ip6[6] != NEXT_HEADER_ICMP6)
        return handle_heartbeat_v6(ctx, data, data_end);
    __u32 payload_len = ((__u32)ip6[4] << 8) | ip6[5];
    __u32 frame_len = data_end - data;
    if (payload_len < NS_LEN || IP6_FRAME_LEN + payload_len > frame_len)
        return decline(VERDICT_MALFORMED);
    /* payload_len >= 24 and fits: the NS header is in the frame, but the verifier wants to see it. */
    if (data + IP6_FRAME_LEN + NS_LEN > data_end)
        return decline(VERDICT_MALFORMED);
    __u8 *icmp = data + IP6_FRAME_LEN;
    if (icmp[0] == ICMP6_NA)
        return decline(VERDICT_NOT_REQUEST);
    if (icmp[0] != ICMP6_NS)
        return decline(VERDICT_NOT_ARP_OR_NDP);
    if (icmp[1] != 0)
        return decline(VERDICT_MALFORMED);
    if (ip6[7] != 255)
        return decline(VERDICT_BAD_HOP_LIMIT);
    struct in6_addr target, source;
    __builtin_memcpy(&target, icmp + 8, 16);
    __builtin_memcpy(&source, ip6 + 8, 16);
    if (target.s6_addr[0] == 0xff)
        return decline(VERDICT_MALFORMED);
    if (is_group(data + 6) || source.s6_addr[0] == 0xff || is_loopback(&source))
        return decline(VERDICT_BAD_SOURCE);
    if ((source.s6_addr32[0] | source.s6_addr32[1] | source.s6_addr32[2] | source.s6_addr32[3]) == 0)
        return decline(VERDICT_GRATUITOUS);

    /* Options: type, length in units of 8 bytes. Bounded scan. */
    __u32 end = IP6_FRAME_LEN + payload_len;
    __u32 off = IP6_FRAME_LEN + NS_LEN;
    int has_source_lladdr = 0;
    for (int i = 0; i < MAX_ND_OPTIONS; i++) {
        if (off >= end)
            break;
        if (off + 2 > end)
            return decline(VERDICT_MALFORMED);
        /* off <= 78 + 8 * 2040: the verifier needs the explicit bound on the packet offset. */
        if (off > 0x7fff)
            return decline(VERDICT_MALFORMED);
        __u8 *opt = data + off;
        if (opt + 2 > data_end)
            return decline(VERDICT_MALFORMED);
        __u32 opt_len = (__u32)opt[1] * 8;
        if (opt_len == 0 || off + opt_len > end)
            return decline(VERDICT_MALFORMED);
        if (opt[0] == 1 && opt[1] == 1) {
            has_source_lladdr = 1; /* the scan stops at the first one (packets.py does the same) */
            break;
        }
        off += opt_len;
    }
    if (!has_source_lladdr)
        return decline(VERDICT_NO_SOURCE_LLADDR);
    if (payload_len > MAX_NS_LEN)
        return decline(VERDICT_MALFORMED);
    if (!ns_checksum_ok(data, data_end, payload_len))
        return decline(VERDICT_BAD_CHECKSUM);

    struct vip6_key key = {};
    key.addr = target;
    key.ifindex = ctx->ingress_ifindex;
    struct vip_value *vip = vips_v6.lookup(&key);
    if (!vip) {
        key.ifindex = 0;
        return decline(vips_v6.lookup(&key) ? VERDICT_WRONG_INTERFACE : VERDICT_NOT_OWNED);
    }
    struct vip_counters *counters = counters_v6.lookup(&key);
    int declined = decline_owned(data, vip, counters, is_group(data), 6, &source, 16);
    if (declined != ANSWER)
        return declined;

    __u8 mac[6], peer_mac[6];
    copy_mac(mac, vip->mac);
    copy_mac(peer_mac, data + 6);
    /* An answered NS carries an 8-byte option inside its payload, so the frame is at least 86 bytes. */
    if (frame_len > NA_FRAME_LEN && bpf_xdp_adjust_tail(ctx, (int)NA_FRAME_LEN - (int)frame_len))
        return decline(VERDICT_MALFORMED);
    data = (__u8 *)(long)ctx->data;
    data_end = (__u8 *)(long)ctx->data_end;
    if (data + NA_FRAME_LEN > data_end)
        return decline(VERDICT_MALFORMED);

    copy_mac(data, peer_mac);
    copy_mac(data + 6, mac);
    data[12] = 0x86;
    data[13] = 0xdd;
    ip6 = data + ETH_LEN;
    ip6[0] = 0x60; ip6[1] = 0; ip6[2] = 0; ip6[3] = 0;
    ip6[4] = 0; ip6[5] = 32;    /* payload length */
    ip6[6] = NEXT_HEADER_ICMP6;
    ip6[7] = 255;
    __builtin_memcpy(ip6 + 8, &target, 16);
    __builtin_memcpy(ip6 + 24, &source, 16);
    icmp = data + IP6_FRAME_LEN;
    icmp[0] = ICMP6_NA; icmp[1] = 0;
    icmp[2] = 0; icmp[3] = 0;   /* checksum, below */
    icmp[4] = 0x60; icmp[5] = 0; icmp[6] = 0; icmp[7] = 0; /* S=1 O=1 R=0 */
    __builtin_memcpy(icmp + 8, &target, 16);
    icmp[24] = 2; icmp[25] = 1; /* target link-layer address option */
    copy_mac(icmp + 26, mac);

    /* RFC 4443 checksum: pseudo-header (src, dst, length 32, next header 58) + the 32-byte message. */
    __u32 sum = 2 * sum_in6(&target) + sum_in6(&source) + 32 + NEXT_HEADER_ICMP6;
    sum += (ICMP6_NA << 8) + 0x6000 + ((2 << 8) | 1);
    sum += ((__u32)mac[0] << 8 | mac[1]) + ((__u32)mac[2] << 8 | mac[3]) + ((__u32)mac[4] << 8 | mac[5]);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    __u16 csum = ~sum & 0xffff;
    icmp[2] = csum >> 8;
    icmp[3] = csum & 0xff;
    if (counters)
        counters->replies += 1;
    return finish(VERDICT_ANSWERED, XDP_TX);
}

int mlbf_responder(struct xdp_md *ctx)
{
    __u8 *data = (__u8 *)(long)ctx->data;
    __u8 *data_end = (__u8 *)(long)ctx->data_end;
    if (data + ETH_LEN > data_end)
        return decline(VERDICT_MALFORMED);
    __u16 ethertype = ((__u16)data[12] << 8) | data[13];
    if (ethertype == ETH_P_ARP)
        return handle_arp(ctx, data, data_end);
    if (ethertype == ETH_P_IPV6)
        return handle_ipv6(ctx, data, data_end);
    if (ethertype == ETH_P_IP)
        return handle_ipv4(ctx, data, data_end);
    return decline(VERDICT_NOT_ARP_OR_NDP);
}
