/* XDP ARP/NDP responder for metallb-fast (bcc C).
 *
 * Answers ARP requests and IPv6 Neighbor Solicitations for the addresses this node owns, in the driver, by
 * rewriting the request in place and bouncing it with XDP_TX. Everything else is XDP_PASS, so the kernel stack
 * still sees every frame we decline. The decision order and the output frames are specified byte for byte in
 * FASTPATH.md; metallb_fast/dataplane/packets.py is the oracle this program is tested against.
 *
 * The loader (metallb_fast/dataplane/xdp.py) passes on the command line:
 *   VERDICT_<NAME>=<index>  for every member of base.Verdict, and VERDICT_COUNT -- the order lives only there;
 *   MAX_VIPS                the capacity of the address maps;
 *   PIN_DIR (optional)      a directory on a bpf filesystem: the maps declared with MLBF_PINNED are pinned there
 *                           (bcc re-uses a map already pinned under its name), so a restarted loader adopts them.
 */
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>

#if !defined(VERDICT_COUNT) || !defined(VERDICT_ANSWERED) || !defined(VERDICT_LIVENESS_EXPIRED)
#error "the loader must define VERDICT_* (the order of base.Verdict) and VERDICT_COUNT"
#endif
#ifndef MAX_VIPS
#define MAX_VIPS 4096
#endif

#define ETH_LEN 14
#define ARP_FRAME_LEN 42      /* Ethernet + ARP for IPv4 over Ethernet */
#define IP6_FRAME_LEN 54      /* Ethernet + IPv6 header */
#define NS_LEN 24             /* ICMPv6 header + reserved + target */
#define NA_FRAME_LEN 86       /* Ethernet + IPv6 + NA (24) + target link-layer option (8) */
#define MAX_ND_OPTIONS 8

/* Key ifindex 0 marks "owned on some interface of this node": a miss on the ingress ifindex that hits the
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
/* config[0]: liveness deadline, CLOCK_MONOTONIC ns (bpf_ktime_get_ns); 0 = no deadline. */
MLBF_PINNED("array", int, __u64, config, 1);

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
    __u32 index = 0;
    __u64 *deadline = config.lookup(&index);
    if (!deadline || *deadline == 0)
        return 1;
    return bpf_ktime_get_ns() <= *deadline;
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

    struct vip4_key key = {.addr = target, .ifindex = ctx->ingress_ifindex};
    struct vip_value *vip = vips_v4.lookup(&key);
    if (!vip) {
        key.ifindex = 0;
        return decline(vips_v4.lookup(&key) ? VERDICT_WRONG_INTERFACE : VERDICT_NOT_OWNED);
    }
    struct vip_counters *counters = counters_v4.lookup(&key);
    if (counters)
        counters->requests += 1;
    if (!is_broadcast(data) && !same_mac(data, vip->mac))
        return decline(VERDICT_NOT_OWNED);
    if (!alive())
        return decline(VERDICT_LIVENESS_EXPIRED);

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

static __always_inline int handle_ipv6(struct xdp_md *ctx, __u8 *data, __u8 *data_end)
{
    if (data + IP6_FRAME_LEN > data_end)
        return decline(VERDICT_MALFORMED);
    __u8 *ip6 = data + ETH_LEN;
    if ((ip6[0] >> 4) != 6)
        return decline(VERDICT_MALFORMED);
    if (ip6[6] != 58) /* next header: ICMPv6 */
        return decline(VERDICT_NOT_ARP_OR_NDP);
    __u32 payload_len = ((__u32)ip6[4] << 8) | ip6[5];
    __u32 frame_len = data_end - data;
    if (payload_len < NS_LEN || IP6_FRAME_LEN + payload_len > frame_len)
        return decline(VERDICT_MALFORMED);
    /* payload_len >= 24 and fits: the NS header is in the frame, but the verifier wants to see it. */
    if (data + IP6_FRAME_LEN + NS_LEN > data_end)
        return decline(VERDICT_MALFORMED);
    __u8 *icmp = data + IP6_FRAME_LEN;
    if (icmp[0] == 136)
        return decline(VERDICT_NOT_REQUEST);
    if (icmp[0] != 135)
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

    struct vip6_key key = {};
    key.addr = target;
    key.ifindex = ctx->ingress_ifindex;
    struct vip_value *vip = vips_v6.lookup(&key);
    if (!vip) {
        key.ifindex = 0;
        return decline(vips_v6.lookup(&key) ? VERDICT_WRONG_INTERFACE : VERDICT_NOT_OWNED);
    }
    struct vip_counters *counters = counters_v6.lookup(&key);
    if (counters)
        counters->requests += 1;
    if (!(data[0] & 1) && !same_mac(data, vip->mac))
        return decline(VERDICT_NOT_OWNED);
    if (!alive())
        return decline(VERDICT_LIVENESS_EXPIRED);

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
    ip6[6] = 58;
    ip6[7] = 255;
    __builtin_memcpy(ip6 + 8, &target, 16);
    __builtin_memcpy(ip6 + 24, &source, 16);
    icmp = data + IP6_FRAME_LEN;
    icmp[0] = 136; icmp[1] = 0;
    icmp[2] = 0; icmp[3] = 0;   /* checksum, below */
    icmp[4] = 0x60; icmp[5] = 0; icmp[6] = 0; icmp[7] = 0; /* S=1 O=1 R=0 */
    __builtin_memcpy(icmp + 8, &target, 16);
    icmp[24] = 2; icmp[25] = 1; /* target link-layer address option */
    copy_mac(icmp + 26, mac);

    /* RFC 4443 checksum: pseudo-header (src, dst, length 32, next header 58) + the 32-byte message. */
    __u32 sum = 2 * sum_in6(&target) + sum_in6(&source) + 32 + 58;
    sum += (136 << 8) + 0x6000 + ((2 << 8) | 1);
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
    return decline(VERDICT_NOT_ARP_OR_NDP);
}
