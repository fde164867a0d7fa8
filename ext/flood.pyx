# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A C-speed frame flooder for the benchmarks: prebuilt frames sent with sendmmsg in a GIL-free loop.

The frames are copied once into one buffer; the loop cycles over them in batches until the deadline, so the
sender's cost per frame is the kernel's (AF_PACKET with qdisc bypass), not Python's.
"""

from cpython.bytes cimport PyBytes_AS_STRING
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset, strerror
from posix.time cimport nanosleep, timespec
from posix.unistd cimport close as c_close

from packet_socket cimport (
    AF_PACKET, PACKET_QDISC_BYPASS, SO_SNDBUFFORCE, SOCK_RAW, SOL_PACKET, SOL_SOCKET, bind_to_interface, iovec,
    mmsghdr, monotonic_ns, sendmmsg, setsockopt, socket,
)


cdef extern from *:
    """
    #include <linux/bpf.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    #include <string.h>

    /* `return action` as an XDP program. XDP_TX run with BPF_F_TEST_XDP_LIVE_FRAMES: every repetition is
       transmitted out of the ingress interface (for a veth: into its peer), without skbs, sockets or qdiscs.
       With keep_mac (6 bytes), frames whose Ethernet destination is keep_mac are passed to the stack instead: the
       benchmark's own client (a prober) still hears its replies while the flood's replies are dropped. */
    static int mlbf_flood_load_xdp(int action, const char *name, const unsigned char *keep_mac) {
        struct bpf_insn insns[16];
        unsigned n = 0;
        char license[] = "GPL";
        union bpf_attr attr;
        memset(insns, 0, sizeof insns);
        if (keep_mac != NULL) {
            unsigned int low;  /* the MAC's first 4 bytes as a little-endian load sees them */
            unsigned short high;
            memcpy(&low, keep_mac, 4);
            memcpy(&high, keep_mac + 4, 2);
            /* r2 = data, r3 = data_end; frames shorter than 6 bytes get `action` */
            insns[n].code = BPF_LDX | BPF_W | BPF_MEM; insns[n].dst_reg = 2; insns[n].src_reg = 1; n++;
            insns[n].code = BPF_LDX | BPF_W | BPF_MEM; insns[n].dst_reg = 3; insns[n].src_reg = 1;
            insns[n].off = 4; n++;
            insns[n].code = BPF_ALU64 | BPF_MOV | BPF_X; insns[n].dst_reg = 4; insns[n].src_reg = 2; n++;
            insns[n].code = BPF_ALU64 | BPF_ADD | BPF_K; insns[n].dst_reg = 4; insns[n].imm = 6; n++;
            insns[n].code = BPF_JMP | BPF_JGT | BPF_X; insns[n].dst_reg = 4; insns[n].src_reg = 3;
            insns[n].off = 6; n++;
            insns[n].code = BPF_LDX | BPF_W | BPF_MEM; insns[n].dst_reg = 5; insns[n].src_reg = 2; n++;
            insns[n].code = BPF_JMP32 | BPF_JNE | BPF_K; insns[n].dst_reg = 5; insns[n].imm = (int)low;
            insns[n].off = 4; n++;
            insns[n].code = BPF_LDX | BPF_H | BPF_MEM; insns[n].dst_reg = 5; insns[n].src_reg = 2;
            insns[n].off = 4; n++;
            insns[n].code = BPF_JMP32 | BPF_JNE | BPF_K; insns[n].dst_reg = 5; insns[n].imm = high;
            insns[n].off = 2; n++;
            insns[n].code = BPF_ALU64 | BPF_MOV | BPF_K; insns[n].imm = XDP_PASS; n++;
            insns[n].code = BPF_JMP | BPF_EXIT; n++;
        }
        insns[n].code = BPF_ALU64 | BPF_MOV | BPF_K;
        insns[n].imm = action;
        n++;
        insns[n].code = BPF_JMP | BPF_EXIT;
        n++;
        memset(&attr, 0, sizeof attr);
        attr.prog_type = BPF_PROG_TYPE_XDP;
        attr.insn_cnt = n;
        attr.insns = (unsigned long)insns;
        attr.license = (unsigned long)license;
        strncpy(attr.prog_name, name, sizeof attr.prog_name - 1);
        return (int)syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    }

    static int mlbf_flood_live_run(int prog_fd, const void *frame, unsigned size, int ifindex, unsigned repeat) {
        struct xdp_md ctx;
        union bpf_attr attr;
        memset(&ctx, 0, sizeof ctx);
        ctx.data_end = size;
        ctx.ingress_ifindex = ifindex;
        memset(&attr, 0, sizeof attr);
        attr.test.prog_fd = prog_fd;
        attr.test.data_in = (unsigned long)frame;
        attr.test.data_size_in = size;
        attr.test.ctx_in = (unsigned long)&ctx;
        attr.test.ctx_size_in = sizeof ctx;
        attr.test.repeat = repeat;
        attr.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
        attr.test.batch_size = 64;
        return (int)syscall(__NR_bpf, BPF_PROG_TEST_RUN, &attr, sizeof attr);
    }
    """
    int mlbf_flood_load_xdp(int action, const char *name, const unsigned char *keep_mac) nogil
    int XDP_DROP, XDP_PASS, XDP_TX
    int mlbf_flood_live_run(int prog_fd, const void *frame, unsigned size, int ifindex, unsigned repeat) nogil


def flood(int ifindex, list frames, double duration_s, int batch=64, double rate_pps=0.0, bint lossy=False) -> dict:
    """Send `frames` round-robin on ifindex for duration_s seconds (at most rate_pps frames/s when > 0).

    A veth whose peer's receive ring is full refuses the frame (a NIC would drop it on arrival). lossy=False: the
    frame is retried (the sender slows to what the receiver takes); lossy=True: it counts as offered and lost, as
    on a wire, and the sender moves on (then the offered load can exceed what the receiver takes).
    Returns {"sent": frames the kernel accepted, "dropped": frames refused and not retried (lossy), "pushbacks":
    sendmmsg calls refused because the device queue was full, "elapsed_s": ...}.
    """
    cdef size_t n = len(frames)
    cdef size_t i, start, count
    cdef size_t total_bytes = 0
    cdef uint8_t *buffer
    cdef iovec *iov
    cdef mmsghdr *msgs
    cdef int fd, one = 1, sndbuf = 4 << 20, rc, err = 0
    cdef int64_t t0, deadline, now, allowed
    cdef unsigned long long sent = 0, pushbacks = 0, dropped = 0
    cdef timespec pause
    if n == 0 or batch <= 0 or duration_s <= 0:
        raise ValueError(f"flood: need frames ({n}), batch > 0 ({batch}) and duration_s > 0 ({duration_s})")
    for frame in frames:
        total_bytes += len(<bytes>frame)
    # Twice the frames, so any run of `batch` consecutive messages starting below n is contiguous.
    buffer = <uint8_t *>calloc(total_bytes if total_bytes else 1, 1)
    iov = <iovec *>calloc(2 * n + batch, sizeof(iovec))
    msgs = <mmsghdr *>calloc(2 * n + batch, sizeof(mmsghdr))
    try:
        if buffer == NULL or iov == NULL or msgs == NULL:
            raise MemoryError("flood buffers")
        total_bytes = 0
        for i in range(n):
            frame = <bytes>frames[i]
            memcpy(buffer + total_bytes, PyBytes_AS_STRING(frame), len(frame))
            iov[i].iov_base = buffer + total_bytes
            iov[i].iov_len = len(frame)
            total_bytes += len(frame)
        for i in range(n, 2 * n + batch):
            iov[i] = iov[i % n]
        for i in range(2 * n + batch):
            msgs[i].msg_hdr.msg_iov = &iov[i]
            msgs[i].msg_hdr.msg_iovlen = 1
        fd = socket(AF_PACKET, SOCK_RAW, 0)  # protocol 0: this socket never receives
        if fd < 0:
            err = errno
        else:
            setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one))
            setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf))
            if bind_to_interface(fd, ifindex, 0) < 0:
                err = errno
        if err:
            if fd >= 0:
                c_close(fd)
            raise OSError(err, f"flood: AF_PACKET socket on ifindex {ifindex}: {strerror(err).decode()}")
        pause.tv_sec = 0
        pause.tv_nsec = 20000
        with nogil:
            t0 = monotonic_ns()
            deadline = t0 + <int64_t>(duration_s * 1e9)
            start = 0
            now = t0
            while now < deadline:
                count = batch
                if rate_pps > 0:
                    allowed = <int64_t>((now - t0) * rate_pps / 1e9) - <int64_t>(sent + dropped)
                    if allowed <= 0:
                        nanosleep(&pause, NULL)
                        now = monotonic_ns()
                        continue
                    if <size_t>allowed < count:
                        count = allowed
                rc = sendmmsg(fd, &msgs[start], count, 0)
                if rc > 0:
                    sent += rc
                    start = (start + rc) % n
                elif rc < 0 and errno != EINTR:
                    pushbacks += 1  # ENOBUFS: the receiver's ring is full (veth pushes back)
                    if lossy:  # the refused frame is the first of the batch: lost, the next one is tried
                        dropped += 1
                        start = (start + 1) % n
                now = monotonic_ns()
            c_close(fd)
    finally:  # free(NULL) is a no-op: one place releases whatever was allocated
        free(buffer)
        free(iov)
        free(msgs)
    return {"sent": sent, "dropped": dropped, "pushbacks": pushbacks, "elapsed_s": (now - t0) / 1e9}


def flood_live(int ifindex, list frames, double duration_s, double rate_pps=0.0, unsigned chunk=4096) -> dict:
    """The in-kernel generator: BPF_PROG_RUN of `return XDP_TX` with live frames, injecting each frame `chunk`
    times per call into ifindex's transmit path (its veth peer receives them), cycling over frames.

    Needs the receiving peer to take XDP frames (a veth with NAPI: GRO on or an XDP program attached).
    Returns {"sent": frames the program transmitted, "dropped": 0, "pushbacks": 0, "elapsed_s": ...}; frames the
    peer could not queue are dropped there (its counters tell), as on a wire.
    """
    cdef size_t n = len(frames), i = 0
    cdef int prog_fd, rc = 0, err = 0
    cdef int64_t t0, deadline, now, due
    cdef unsigned long long sent = 0
    cdef unsigned this_chunk = chunk
    cdef list owned = [bytes(f) for f in frames]
    cdef const char **data
    cdef unsigned *sizes
    cdef timespec pause
    if n == 0 or duration_s <= 0 or chunk == 0:
        raise ValueError(f"flood_live: need frames ({n}), duration_s > 0 ({duration_s}) and chunk > 0 ({chunk})")
    if rate_pps > 0:
        this_chunk = max(64, min(chunk, <unsigned>(rate_pps / 1000)))  # about one call per millisecond
    data = <const char **>calloc(n, sizeof(char *))
    sizes = <unsigned *>calloc(n, sizeof(unsigned))
    try:
        if data == NULL or sizes == NULL:
            raise MemoryError("flood_live")
        for i in range(n):
            data[i] = PyBytes_AS_STRING(owned[i])
            sizes[i] = len(owned[i])
        prog_fd = mlbf_flood_load_xdp(XDP_TX, b"mlbf_flood_tx", NULL)
        if prog_fd < 0:
            err = errno
            raise OSError(err, f"flood_live: loading the XDP_TX program: {strerror(err).decode()}")
        i = 0
        with nogil:
            t0 = monotonic_ns()
            now = t0
            deadline = t0 + <int64_t>(duration_s * 1e9)
            while now < deadline:
                if rate_pps > 0:
                    due = t0 + <int64_t>((sent + this_chunk) * 1e9 / rate_pps)
                    if due > now:
                        pause.tv_sec = (due - now) // 1000000000
                        pause.tv_nsec = (due - now) % 1000000000
                        nanosleep(&pause, NULL)
                rc = mlbf_flood_live_run(prog_fd, data[i], sizes[i], ifindex, this_chunk)
                if rc < 0:
                    if errno == EINTR:
                        now = monotonic_ns()
                        continue
                    err = errno
                    break
                sent += this_chunk
                i = (i + 1) % n
                now = monotonic_ns()
            c_close(prog_fd)
    finally:
        free(data)
        free(sizes)
    if err:
        raise OSError(err, f"flood_live: BPF_PROG_RUN (live frames) on ifindex {ifindex}: {strerror(err).decode()}")
    return {"sent": sent, "dropped": 0, "pushbacks": 0, "elapsed_s": (now - t0) / 1e9}


def load_xdp_drop(str name="mlbf_flood_sink", bytes keep_mac=b"") -> int:
    """Load `return XDP_DROP` (the benchmark client's sink: replies are counted by the veth, then dropped before
    any skb is built, so counting costs the client almost nothing). With keep_mac (6 bytes), frames sent to that
    MAC are passed up instead (the legitimate client's replies). Returns the program fd; the caller closes it."""
    cdef bytes encoded = name.encode()[:15]
    cdef const unsigned char *keep = NULL
    if keep_mac:
        if len(keep_mac) != 6:
            raise ValueError(f"load_xdp_drop: keep_mac must be 6 bytes, got {len(keep_mac)}")
        keep = keep_mac
    cdef int fd = mlbf_flood_load_xdp(XDP_DROP, encoded, keep)
    if fd < 0:
        err = errno
        raise OSError(err, f"loading XDP program {name!r}: {strerror(err).decode()}")
    return fd
