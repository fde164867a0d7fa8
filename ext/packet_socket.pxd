# cython: language_level=3
# C declarations and helpers shared by the Cython extensions (ring.pyx: the responder; flood.pyx: the benchmarks'
# sender), so that both speak to AF_PACKET sockets and read the clock through one definition.
# Only extern declarations and inline functions: cimporting this needs no compiled module of its own.

from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct iovec:
        void *iov_base
        size_t iov_len
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    struct sockaddr:
        pass
    int socket(int, int, int)
    int bind(int, const sockaddr *, socklen_t)
    int setsockopt(int, int, int, const void *, socklen_t)
    int getsockopt(int, int, int, void *, socklen_t *)
    int sendmmsg(int, mmsghdr *, unsigned int, int)
    ssize_t send(int, const void *, size_t, int)
    int AF_PACKET, SOCK_RAW, SOL_SOCKET, SO_ATTACH_FILTER, SO_ERROR, SO_SNDBUFFORCE
    int MSG_DONTWAIT


cdef extern from "<linux/if_packet.h>" nogil:
    struct sockaddr_ll:
        unsigned short sll_family
        unsigned short sll_protocol
        int sll_ifindex
        unsigned short sll_hatype
        unsigned char sll_pkttype
        unsigned char sll_halen
        unsigned char sll_addr[8]
    int SOL_PACKET, PACKET_QDISC_BYPASS, PACKET_IGNORE_OUTGOING
    # The PACKET_MMAP receive ring, TPACKET_V3 (Documentation/networking/packet_mmap.rst)
    int PACKET_VERSION, PACKET_RX_RING, PACKET_STATISTICS, TPACKET_V3, TP_STATUS_KERNEL, TP_STATUS_USER
    struct tpacket_req3:
        unsigned int tp_block_size
        unsigned int tp_block_nr
        unsigned int tp_frame_size
        unsigned int tp_frame_nr
        unsigned int tp_retire_blk_tov
        unsigned int tp_sizeof_priv
        unsigned int tp_feature_req_word
    struct tpacket_stats_v3:
        unsigned int tp_packets
        unsigned int tp_drops
        unsigned int tp_freeze_q_cnt
    struct tpacket_hdr_v1:
        uint32_t block_status
        uint32_t num_pkts
        uint32_t offset_to_first_pkt
        uint32_t blk_len
        uint64_t seq_num
    union tpacket_bd_header_u:
        tpacket_hdr_v1 bh1
    struct tpacket_block_desc:
        uint32_t version
        uint32_t offset_to_priv
        tpacket_bd_header_u hdr
    struct tpacket3_hdr:
        uint32_t tp_next_offset
        uint32_t tp_snaplen
        uint32_t tp_len
        uint32_t tp_status
        uint16_t tp_mac
        uint16_t tp_net


cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *, unsigned long, int)
    short POLLIN, POLLERR


cdef extern from *:
    """
    /* A ring slot's status word is shared with the kernel: read it before the slot's contents, write it after. */
    static inline unsigned int mlbf_status_load(volatile unsigned int *status) {
        return __atomic_load_n(status, __ATOMIC_ACQUIRE);
    }
    static inline void mlbf_status_store(volatile unsigned int *status, unsigned int value) {
        __atomic_store_n(status, value, __ATOMIC_RELEASE);
    }
    """
    uint32_t status_load "mlbf_status_load"(uint32_t *status) nogil
    void status_store "mlbf_status_store"(uint32_t *status, uint32_t value) nogil


cdef inline int bind_to_interface(int fd, int ifindex, uint16_t protocol_be) noexcept nogil:
    """bind(2) an AF_PACKET socket to ifindex for protocol_be (network order; 0 = send only); 0 or -1 (errno)."""
    cdef sockaddr_ll sll
    memset(&sll, 0, sizeof(sll))
    sll.sll_family = AF_PACKET
    sll.sll_protocol = protocol_be
    sll.sll_ifindex = ifindex
    return bind(fd, <sockaddr *>&sll, sizeof(sll))


cdef inline int64_t monotonic_ns() noexcept nogil:
    """CLOCK_MONOTONIC in ns: time.monotonic_ns() and bpf_ktime_get_ns() read the same clock."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec
