# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython AF_PACKET responder: one socket per interface, answered in a GIL-free loop.

A classic BPF socket filter lets only ARP requests and ICMPv6 Neighbor Solicitations reach the socket; frames are
received and replies sent in batches (recvmmsg / sendmmsg); the decision is the fast-path decision of FASTPATH.md
(packets.answer() in C, same order, same bytes). The owned-address table is a sorted array swapped under a mutex
that the loop holds only while it decides one batch, so Python may replace it at any time and then owns the old
table exclusively (its counters are harvested, then it is freed).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, ENOBUFS, errno
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, qsort
from libc.string cimport memcmp, memcpy, memset, strerror
from posix.unistd cimport close as c_close

from packet_socket cimport (
    AF_PACKET, MSG_DONTWAIT, MSG_WAITFORONE, PACKET_IGNORE_OUTGOING, PACKET_QDISC_BYPASS, SO_ATTACH_FILTER,
    SO_RCVBUFFORCE, SO_RCVTIMEO, SOCK_RAW, SOL_PACKET, SOL_SOCKET, bind_to_interface, iovec, mmsghdr,
    monotonic_ns, recvmmsg, send, sendmmsg, setsockopt, socket,
)


cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *, void *)
    int pthread_mutex_lock(pthread_mutex_t *)
    int pthread_mutex_unlock(pthread_mutex_t *)
    int pthread_mutex_destroy(pthread_mutex_t *)


cdef extern from "<sys/time.h>" nogil:
    struct timeval:
        long tv_sec
        long tv_usec


cdef extern from "<linux/filter.h>" nogil:
    struct sock_filter:
        uint16_t code
        uint8_t jt
        uint8_t jf
        uint32_t k
    struct sock_fprog:
        unsigned short len
        sock_filter *filter


cdef extern from "<arpa/inet.h>" nogil:
    uint16_t htons(uint16_t)


# Verdict codes; VERDICTS below names them in the same order (values of base.Verdict).
cdef enum:
    V_ANSWERED = 0
    V_NOT_ARP_OR_NDP
    V_MALFORMED
    V_NOT_REQUEST
    V_GRATUITOUS
    V_BAD_HOP_LIMIT
    V_NO_SOURCE_LLADDR
    V_NOT_OWNED
    V_WRONG_INTERFACE
    V_LIVENESS_EXPIRED
    N_VERDICTS

VERDICTS = (
    "answered", "not_arp_or_ndp", "malformed", "not_request", "gratuitous", "bad_hop_limit",
    "no_source_lladdr", "not_owned", "wrong_interface", "liveness_expired",
)

cdef enum:
    BATCH = 64
    FRAME_MAX = 9216  # jumbo frames; a longer frame is judged on its first FRAME_MAX bytes
    NA_LEN = 86
    MAX_OPTIONS = 8
    KEY_LEN = 17  # family byte (4 or 6) + 16 address bytes (IPv4 in the first 4, the rest zero)
    ETH_P_ALL = 0x0003
    RECV_TIMEOUT_US = 100000  # how quickly stop() is noticed when no frame arrives
    SKF_AD_VLAN_TAG_PRESENT = -0x1000 + 48  # ancillary load: SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT

BATCH_SIZE = BATCH


cdef struct Entry:
    uint8_t key[KEY_LEN]
    uint8_t here  # 1: owned on this interface (answer with mac); 0: owned only elsewhere (WRONG_INTERFACE)
    uint8_t mac[6]
    uint64_t requests
    uint64_t replies


cdef struct Table:
    size_t n
    Entry *entries  # sorted by key


cdef int _entry_cmp(const void *a, const void *b) noexcept nogil:
    return memcmp(a, b, KEY_LEN)


cdef inline Entry *_lookup(Table *table, uint8_t family, const uint8_t *addr, int addr_len) noexcept nogil:
    cdef uint8_t key[KEY_LEN]
    cdef size_t lo = 0, hi = table.n, mid
    cdef int c
    memset(key, 0, KEY_LEN)
    key[0] = family
    memcpy(&key[1], addr, addr_len)
    while lo < hi:
        mid = (lo + hi) >> 1
        c = memcmp(key, table.entries[mid].key, KEY_LEN)
        if c == 0:
            return &table.entries[mid]
        if c < 0:
            hi = mid
        else:
            lo = mid + 1
    return NULL


cdef inline uint16_t _be16(const uint8_t *p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline bint _is_broadcast(const uint8_t *mac) noexcept nogil:
    cdef int i
    for i in range(6):
        if mac[i] != 0xFF:
            return False
    return True


cdef inline bint _all_zero(const uint8_t *p, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        if p[i] != 0:
            return False
    return True


cdef int _owned_tail(Table *table, uint8_t family, const uint8_t *target, int addr_len, const uint8_t *frame,
                     bint dst_ok_without_mac, bint alive, Entry **hit) noexcept nogil:
    """The shared end of both decisions (packets._lookup): owned here? addressed to us? still alive?"""
    cdef Entry *e = _lookup(table, family, target, addr_len)
    if e == NULL:
        return V_NOT_OWNED
    if not e.here:
        return V_WRONG_INTERFACE
    e.requests += 1
    if not dst_ok_without_mac and memcmp(frame, e.mac, 6) != 0:
        return V_NOT_OWNED
    if not alive:
        return V_LIVENESS_EXPIRED
    e.replies += 1
    hit[0] = e
    return V_ANSWERED


cdef int _scan_options(const uint8_t *frame, size_t offset, size_t end) noexcept nogil:
    """packets._scan_options: stop at the first source link-layer option, at end, or after MAX_OPTIONS."""
    cdef int i
    cdef size_t opt_len
    for i in range(MAX_OPTIONS):
        if offset >= end:
            break
        if offset + 2 > end:
            return V_MALFORMED
        opt_len = frame[offset + 1]
        if opt_len == 0 or offset + opt_len * 8 > end:
            return V_MALFORMED
        if frame[offset] == 1 and opt_len == 1:
            return V_ANSWERED
        offset += opt_len * 8
    return V_NO_SOURCE_LLADDR


cdef uint16_t _icmpv6_checksum(const uint8_t *src, const uint8_t *dst, const uint8_t *msg,
                               size_t msg_len) noexcept nogil:
    cdef uint32_t total = 0
    cdef size_t i
    for i in range(0, 16, 2):
        total += _be16(src + i) + _be16(dst + i)
    total += <uint32_t>msg_len + 58
    for i in range(0, msg_len - 1, 2):
        total += _be16(msg + i)
    if msg_len & 1:
        total += <uint32_t>msg[msg_len - 1] << 8
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return <uint16_t>(~total & 0xFFFF)


cdef int _decide_arp(const uint8_t *f, size_t n, Table *table, bint alive, uint8_t *out,
                     size_t *out_len) noexcept nogil:
    cdef Entry *e = NULL
    cdef int v
    if n < 42:
        return V_MALFORMED
    if _be16(f + 14) != 1 or _be16(f + 16) != 0x0800 or f[18] != 6 or f[19] != 4:
        return V_MALFORMED
    if _be16(f + 20) != 1:
        return V_NOT_REQUEST
    if memcmp(f + 28, f + 38, 4) == 0:
        return V_GRATUITOUS
    v = _owned_tail(table, 4, f + 38, 4, f, _is_broadcast(f), alive, &e)
    if v != V_ANSWERED:
        return v
    memcpy(out, f, n)  # same length: trailing padding carried over unchanged
    memcpy(out, f + 6, 6)
    memcpy(out + 6, e.mac, 6)
    out[20] = 0
    out[21] = 2
    memcpy(out + 22, e.mac, 6)
    memcpy(out + 28, f + 38, 4)
    memcpy(out + 32, f + 22, 6)
    memcpy(out + 38, f + 28, 4)
    out_len[0] = n
    return V_ANSWERED


cdef int _decide_ns(const uint8_t *f, size_t n, Table *table, bint alive, uint8_t *out,
                    size_t *out_len) noexcept nogil:
    cdef Entry *e = NULL
    cdef int v
    cdef size_t payload_len, end
    cdef uint16_t csum
    if n < 54 or (f[14] >> 4) != 6:
        return V_MALFORMED
    if f[20] != 58:
        return V_NOT_ARP_OR_NDP
    payload_len = _be16(f + 18)
    end = 54 + payload_len
    if payload_len < 24 or end > n:
        return V_MALFORMED
    if f[54] == 136:
        return V_NOT_REQUEST
    if f[54] != 135:
        return V_NOT_ARP_OR_NDP
    if f[55] != 0:
        return V_MALFORMED
    if f[21] != 255:
        return V_BAD_HOP_LIMIT
    if f[62] == 0xFF:
        return V_MALFORMED
    if _all_zero(f + 22, 16):
        return V_GRATUITOUS
    v = _scan_options(f, 78, end)
    if v != V_ANSWERED:
        return v
    v = _owned_tail(table, 6, f + 62, 16, f, f[0] & 1, alive, &e)
    if v != V_ANSWERED:
        return v
    memcpy(out, f + 6, 6)
    memcpy(out + 6, e.mac, 6)
    out[12] = 0x86
    out[13] = 0xDD
    out[14] = 0x60
    out[15] = 0
    out[16] = 0
    out[17] = 0
    out[18] = 0
    out[19] = 32
    out[20] = 58
    out[21] = 255
    memcpy(out + 22, f + 62, 16)  # src = the target
    memcpy(out + 38, f + 22, 16)  # dst = the solicitor
    out[54] = 136
    out[55] = 0
    out[56] = 0
    out[57] = 0
    out[58] = 0x60  # S=1 O=1 R=0
    out[59] = 0
    out[60] = 0
    out[61] = 0
    memcpy(out + 62, f + 62, 16)
    out[78] = 2
    out[79] = 1
    memcpy(out + 80, e.mac, 6)
    csum = _icmpv6_checksum(out + 22, out + 38, out + 54, 32)
    out[56] = csum >> 8
    out[57] = csum & 0xFF
    out_len[0] = NA_LEN
    return V_ANSWERED


cdef int _decide(const uint8_t *f, size_t n, Table *table, bint alive, uint8_t *out,
                 size_t *out_len) noexcept nogil:
    """packets.answer() for one frame; out must hold max(n, NA_LEN) bytes."""
    cdef uint16_t ethertype
    if n < 14:
        return V_MALFORMED
    ethertype = _be16(f + 12)
    if ethertype == 0x0806:
        return _decide_arp(f, n, table, alive, out, out_len)
    if ethertype == 0x86DD:
        return _decide_ns(f, n, table, alive, out, out_len)
    return V_NOT_ARP_OR_NDP


cdef Table *_table_new(list entries) except NULL:
    """entries: [(family 4|6, packed address, mac bytes | None for 'owned elsewhere')] with unique addresses."""
    cdef Table *table = <Table *>calloc(1, sizeof(Table))
    cdef size_t i = 0
    cdef bytes addr
    cdef object mac
    if table == NULL:
        raise MemoryError("ring table")
    table.n = len(entries)
    table.entries = <Entry *>calloc(table.n if table.n else 1, sizeof(Entry))
    if table.entries == NULL:
        free(table)
        raise MemoryError("ring table entries")
    for family, addr, mac in entries:
        if len(addr) != (4 if family == 4 else 16) or (mac is not None and len(mac) != 6):
            free(table.entries)
            free(table)
            raise ValueError(f"ring table entry ({family}, {addr!r}, {mac!r}): bad address or MAC length")
        table.entries[i].key[0] = family
        memcpy(&table.entries[i].key[1], PyBytes_AS_STRING(addr), len(addr))
        if mac is not None:
            table.entries[i].here = 1
            memcpy(table.entries[i].mac, PyBytes_AS_STRING(mac), 6)
        i += 1
    qsort(table.entries, table.n, sizeof(Entry), _entry_cmp)
    for i in range(1, table.n):
        if memcmp(table.entries[i - 1].key, table.entries[i].key, KEY_LEN) == 0:
            free(table.entries)
            free(table)
            raise ValueError("ring table: an address appears twice")
    return table


cdef list _table_counters(Table *table):
    cdef list result = []
    cdef size_t i
    cdef Entry *e
    for i in range(table.n):
        e = &table.entries[i]
        if e.here:
            result.append((e.key[0], PyBytes_FromStringAndSize(<char *>&e.key[1], 4 if e.key[0] == 4 else 16),
                           e.requests, e.replies))
    return result


cdef void _table_free(Table *table) noexcept nogil:
    if table != NULL:
        free(table.entries)
        free(table)


cdef inline void _insn(sock_filter *insn, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k) noexcept nogil:
    insn.code = code
    insn.jt = jt
    insn.jf = jf
    insn.k = k


cdef int _open_socket(int ifindex, int rcvbuf) noexcept nogil:
    """An AF_PACKET socket on ifindex with the filter attached before it is bound (so nothing unfiltered is
    queued). Returns the fd or -errno."""
    cdef sock_filter prog[13]
    cdef sock_fprog fprog
    cdef timeval tv
    cdef int one = 1
    cdef int fd
    cdef int i
    # Classic BPF: accept untagged ARP requests (op 1) and ICMPv6 type 135 right after the IPv6 header; all else
    # stays in the kernel. A VLAN tag is moved into skb metadata before packet taps see the frame, so tagged
    # frames are refused via the ancillary "tag present" load (the oracle says NOT_ARP_OR_NDP for them).
    # A load past the end of a short frame makes the filter return 0 (dropped).
    _insn(&prog[0], 0x20, 0, 0, <uint32_t>SKF_AD_VLAN_TAG_PRESENT)  # ld vlan_tag_present
    _insn(&prog[1], 0x15, 0, 10, 0)       # jeq #0, next, drop
    _insn(&prog[2], 0x28, 0, 0, 12)       # ldh [12]        ethertype
    _insn(&prog[3], 0x15, 0, 2, 0x0806)   # jeq ARP, next, ipv6
    _insn(&prog[4], 0x28, 0, 0, 20)       # ldh [20]        ARP op
    _insn(&prog[5], 0x15, 5, 6, 1)        # jeq #1, accept, drop
    _insn(&prog[6], 0x15, 0, 5, 0x86DD)   # ipv6: jeq IPv6, next, drop
    _insn(&prog[7], 0x30, 0, 0, 20)       # ldb [20]        next header
    _insn(&prog[8], 0x15, 0, 3, 58)       # jeq ICMPv6, next, drop
    _insn(&prog[9], 0x30, 0, 0, 54)       # ldb [54]        ICMPv6 type
    _insn(&prog[10], 0x15, 0, 1, 135)     # jeq NS, accept, drop
    _insn(&prog[11], 0x06, 0, 0, 0x40000)  # accept: ret (whole frame)
    _insn(&prog[12], 0x06, 0, 0, 0)       # drop: ret #0
    fprog.len = 13
    fprog.filter = prog
    fd = socket(AF_PACKET, SOCK_RAW, 0)  # protocol 0: receives nothing until bound below
    if fd < 0:
        return -errno
    if setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) < 0:
        i = errno
        c_close(fd)
        return -i
    # Our own transmissions (replies, gratuitous bursts) are not requests to answer.
    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one))
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one))
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf))
    tv.tv_sec = 0
    tv.tv_usec = RECV_TIMEOUT_US
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))
    if bind_to_interface(fd, ifindex, htons(ETH_P_ALL)) < 0:
        i = errno
        c_close(fd)
        return -i
    return fd


cdef class RingLoop:
    """One interface: its socket, its table, its counters, and the loop that answers on it.

    Thread model: run() is called from one Python thread and releases the GIL until stop(); every other method
    may be called from any thread meanwhile. close() only after run() has returned.
    """

    cdef readonly int ifindex
    cdef int fd
    cdef pthread_mutex_t lock
    cdef Table *table
    cdef int64_t deadline_ns  # < 0: no deadline
    cdef uint64_t verdicts[N_VERDICTS]
    cdef uint64_t send_failures
    cdef int stopping  # read after every syscall, so the compiler cannot cache it
    cdef uint8_t *rx
    cdef uint8_t *tx
    cdef mmsghdr rmsgs[BATCH]
    cdef iovec riov[BATCH]
    cdef mmsghdr smsgs[BATCH]
    cdef iovec siov[BATCH]

    def __cinit__(self, int ifindex, int rcvbuf=4 << 20):
        cdef int i
        self.fd = -1
        self.ifindex = ifindex
        self.deadline_ns = -1
        pthread_mutex_init(&self.lock, NULL)
        self.table = _table_new([])
        self.rx = <uint8_t *>calloc(BATCH, FRAME_MAX)
        self.tx = <uint8_t *>calloc(BATCH, FRAME_MAX)
        if self.rx == NULL or self.tx == NULL:
            raise MemoryError("ring buffers")
        memset(self.rmsgs, 0, sizeof(self.rmsgs))
        memset(self.smsgs, 0, sizeof(self.smsgs))
        for i in range(BATCH):
            self.riov[i].iov_base = self.rx + i * FRAME_MAX
            self.riov[i].iov_len = FRAME_MAX
            self.rmsgs[i].msg_hdr.msg_iov = &self.riov[i]
            self.rmsgs[i].msg_hdr.msg_iovlen = 1
            self.siov[i].iov_base = self.tx + i * FRAME_MAX
            self.smsgs[i].msg_hdr.msg_iov = &self.siov[i]
            self.smsgs[i].msg_hdr.msg_iovlen = 1
        self.fd = _open_socket(ifindex, rcvbuf)
        if self.fd < 0:
            err = -self.fd
            self.fd = -1
            raise OSError(err, f"AF_PACKET socket on ifindex {ifindex}: {strerror(err).decode()}")

    def __dealloc__(self):
        if self.fd >= 0:
            c_close(self.fd)
        _table_free(self.table)
        free(self.rx)
        free(self.tx)
        pthread_mutex_destroy(&self.lock)

    def run(self) -> int:
        """Answer until stop(); returns 0, or the errno that ended the loop."""
        cdef int err
        with nogil:
            err = self._loop()
        return err

    cdef int _loop(self) noexcept nogil:
        cdef int got, i, verdict, sent, nout
        cdef size_t out_len
        cdef bint alive
        cdef int64_t deadline
        while not self.stopping:
            got = recvmmsg(self.fd, self.rmsgs, BATCH, MSG_WAITFORONE, NULL)
            if got <= 0:
                if got < 0 and errno != EAGAIN and errno != EINTR:
                    return errno
                continue
            nout = 0
            pthread_mutex_lock(&self.lock)
            deadline = self.deadline_ns
            alive = deadline < 0 or monotonic_ns() <= deadline
            for i in range(got):
                verdict = _decide(<uint8_t *>self.riov[i].iov_base, self.rmsgs[i].msg_len, self.table, alive,
                                  <uint8_t *>self.siov[nout].iov_base, &out_len)
                self.verdicts[verdict] += 1
                if verdict == V_ANSWERED:
                    self.siov[nout].iov_len = out_len
                    nout += 1
            pthread_mutex_unlock(&self.lock)
            i = 0
            while i < nout:
                sent = sendmmsg(self.fd, &self.smsgs[i], nout - i, MSG_DONTWAIT)
                if sent <= 0:
                    if sent < 0 and errno == EINTR:
                        continue
                    # A full device queue (ENOBUFS/EAGAIN) drops the rest of this batch, as a NIC would.
                    self.send_failures += nout - i
                    break
                i += sent
        return 0

    def stop(self) -> None:
        self.stopping = 1

    def replace_table(self, list entries) -> list:
        """Swap in a new table; returns the old table's counters [(family, packed, requests, replies)]."""
        cdef Table *new = _table_new(entries)
        cdef Table *old
        with nogil:
            pthread_mutex_lock(&self.lock)
            old = self.table
            self.table = new
            pthread_mutex_unlock(&self.lock)
        try:
            return _table_counters(old)
        finally:
            _table_free(old)

    def counters(self) -> tuple:
        """(per-address [(family, packed, requests, replies)], per-verdict counts in VERDICTS order,
        replies dropped because the device queue was full)."""
        cdef list per_address
        cdef list verdicts
        pthread_mutex_lock(&self.lock)
        try:
            per_address = _table_counters(self.table)
            verdicts = [self.verdicts[i] for i in range(N_VERDICTS)]
            failures = self.send_failures
        finally:
            pthread_mutex_unlock(&self.lock)
        return per_address, verdicts, failures

    def set_deadline(self, int64_t deadline_ns) -> None:
        """Answer nothing once CLOCK_MONOTONIC passes deadline_ns; negative = no deadline."""
        pthread_mutex_lock(&self.lock)
        self.deadline_ns = deadline_ns
        pthread_mutex_unlock(&self.lock)

    def send(self, bytes frame) -> None:
        """Transmit one frame on this interface (gratuitous ARP / unsolicited NA)."""
        cdef const char *data = PyBytes_AS_STRING(frame)
        cdef size_t n = PyBytes_GET_SIZE(frame)
        cdef ssize_t rc
        with nogil:
            rc = send(self.fd, data, n, 0)
        if rc < 0:
            err = errno
            raise OSError(err, f"send on ifindex {self.ifindex}: {strerror(err).decode()}")

    def close(self) -> None:
        if self.fd >= 0:
            c_close(self.fd)
            self.fd = -1


def decide(bytes frame, list entries, bint alive=True) -> tuple:
    """The C decision on one frame with a one-off table: (verdict name, reply bytes | None). For tests."""
    cdef Table *table = _table_new(entries)
    cdef uint8_t *out = <uint8_t *>calloc(1, max(<size_t>len(frame), <size_t>NA_LEN))
    cdef size_t out_len = 0
    cdef int verdict
    try:
        verdict = _decide(<const uint8_t *>PyBytes_AS_STRING(frame), len(frame), table, alive, out, &out_len)
        reply = PyBytes_FromStringAndSize(<char *>out, out_len) if verdict == V_ANSWERED else None
        return VERDICTS[verdict], reply
    finally:
        free(out)
        _table_free(table)
