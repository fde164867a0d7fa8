# cython: language_level=3
# C declarations and helpers shared by the Cython extensions (ring.pyx: the responder; flood.pyx: the benchmarks'
# sender), so that both speak to AF_PACKET sockets and read the clock through one definition.
# Only extern declarations and inline functions: cimporting this needs no compiled module of its own.

from libc.stdint cimport int64_t, uint16_t
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
    int recvmmsg(int, mmsghdr *, unsigned int, int, void *)
    int sendmmsg(int, mmsghdr *, unsigned int, int)
    ssize_t send(int, const void *, size_t, int)
    int AF_PACKET, SOCK_RAW, SOL_SOCKET, SO_ATTACH_FILTER, SO_RCVBUFFORCE, SO_RCVTIMEO, SO_SNDBUF, SO_SNDBUFFORCE
    int MSG_WAITFORONE, MSG_DONTWAIT


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
