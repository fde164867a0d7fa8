"""The bpf(2) commands the long-running process needs: test runs, program lookup by id, a two-instruction XDP_PASS,
the map commands that read and write the responder's maps (bcc compiles and loads in a child process: this one
holds only fds), and the pin commands a restarted responder uses to find and check the maps it adopts.

Raw syscalls through ctypes; the attribute layouts are the kernel's `union bpf_attr` members (uapi/linux/bpf.h).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import threading
from dataclasses import dataclass

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_TYPE_XDP = 6
BPF_OBJ_NAME_LEN = 16

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)

_libc = ctypes.CDLL(None, use_errno=True)


class BpfSyscallError(OSError):
    """A bpf(2) command failed; errno and the command are in the message."""


def _bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        raise BpfSyscallError(errno.ENOSYS, f"bpf(2): unknown syscall number on {platform.machine()}")
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), ctypes.byref(attr),
                           ctypes.c_uint(ctypes.sizeof(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise BpfSyscallError(err, f"bpf({what}): {os.strerror(err)}")
    return int(result)


class _TestRunAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class _XdpMd(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("rx_queue_index", ctypes.c_uint32),
        ("egress_ifindex", ctypes.c_uint32),
    ]


@dataclass(frozen=True)
class TestRunResult:
    action: int  # XDP_* return code
    frame: bytes  # the frame after the program ran (rewritten, trimmed)
    duration_ns: int  # kernel-measured mean time per repeat


def xdp_test_run(prog_fd: int, frame: bytes, *, ingress_ifindex: int = 0, repeat: int = 1) -> TestRunResult:
    """Run an XDP program on `frame` (BPF_PROG_TEST_RUN); ingress_ifindex must name a device in this netns.

    The kernel does not restore the frame between repeats: use repeat=1 to check what a program writes.
    """
    data_in = ctypes.create_string_buffer(bytes(frame), len(frame))
    # Output may grow by at most the tailroom the kernel allows; a page is plenty for an Ethernet frame.
    data_out = ctypes.create_string_buffer(max(4096, len(frame) + 256))
    attr = _TestRunAttr(prog_fd=prog_fd, data_size_in=len(frame), data_size_out=len(data_out),
                        data_in=ctypes.addressof(data_in), data_out=ctypes.addressof(data_out), repeat=repeat)
    ctx = _XdpMd(data=0, data_end=len(frame), ingress_ifindex=ingress_ifindex)
    if ingress_ifindex:
        attr.ctx_size_in = ctypes.sizeof(ctx)
        attr.ctx_in = ctypes.addressof(ctx)
    _bpf(BPF_PROG_TEST_RUN, attr, f"PROG_TEST_RUN prog fd {prog_fd}, ifindex {ingress_ifindex}")
    return TestRunResult(action=attr.retval, frame=data_out.raw[: attr.data_size_out],
                         duration_ns=attr.duration)


class _GetFdByIdAttr(ctypes.Structure):
    _fields_ = [
        ("prog_id", ctypes.c_uint32),
        ("next_id", ctypes.c_uint32),
        ("open_flags", ctypes.c_uint32),
    ]


class _InfoByFdAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    ]


class _ProgInfo(ctypes.Structure):
    """The head of struct bpf_prog_info, up to the name (the kernel fills only what we ask for)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * BPF_OBJ_NAME_LEN),
    ]


@dataclass(frozen=True)
class ProgInfo:
    id: int
    type: int
    name: str


def prog_info_by_fd(fd: int) -> ProgInfo:
    info = _ProgInfo()
    attr = _InfoByFdAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, f"OBJ_GET_INFO_BY_FD fd {fd}")
    return ProgInfo(id=info.id, type=info.type, name=info.name.decode(errors="replace"))


def prog_info_by_id(prog_id: int) -> ProgInfo:
    """Name and type of a loaded program (e.g. the one netlink reports attached to an interface)."""
    fd = prog_fd_by_id(prog_id)
    try:
        return prog_info_by_fd(fd)
    finally:
        os.close(fd)


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
    ]


# r0 = XDP_PASS; exit. (BPF_ALU64|BPF_MOV|BPF_K = 0xb7, BPF_JMP|BPF_EXIT = 0x95)
_XDP_PASS_INSNS = (ctypes.c_uint64 * 2)(0xB7 | (XDP_PASS << 32), 0x95)


def load_xdp_pass(name: str) -> int:
    """Load `return XDP_PASS` as an XDP program called `name`; returns its fd (the caller closes it)."""
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = _ProgLoadAttr(prog_type=BPF_PROG_TYPE_XDP, insn_cnt=2, insns=ctypes.addressof(_XDP_PASS_INSNS),
                         license=ctypes.addressof(license_), prog_name=name.encode()[: BPF_OBJ_NAME_LEN - 1])
    return _bpf(BPF_PROG_LOAD, attr, f"PROG_LOAD {name!r}")


# ------------------------------------------------------------------------------ maps, pins and program map ids

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_MAP_GET_FD_BY_ID = 14
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
PER_CPU_MAP_TYPES = frozenset({BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH})
POSSIBLE_CPUS = "/sys/devices/system/cpu/possible"


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
    ]


class _MapElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _ObjAttr(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
    ]


class _MapInfo(ctypes.Structure):
    """The head of struct bpf_map_info, up to the name."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * BPF_OBJ_NAME_LEN),
    ]


@dataclass(frozen=True)
class MapInfo:
    id: int
    type: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, name: str) -> int:
    """A new map; returns its fd (the caller closes it)."""
    attr = _MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
                          map_name=name.encode()[: BPF_OBJ_NAME_LEN - 1])
    return _bpf(BPF_MAP_CREATE, attr, f"MAP_CREATE {name!r}")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value under `key`, or None when there is none."""
    key_buf = ctypes.create_string_buffer(key, len(key))
    value_buf = ctypes.create_string_buffer(value_size)
    attr = _MapElemAttr(map_fd=fd, key=ctypes.addressof(key_buf), value=ctypes.addressof(value_buf))
    return value_buf.raw if _bpf_found(BPF_MAP_LOOKUP_ELEM, attr, f"MAP_LOOKUP_ELEM map fd {fd}") else None


def _bpf_found(cmd: int, attr: ctypes.Structure, what: str) -> bool:
    """_bpf() for the map commands whose ENOENT means "no such key": False then."""
    try:
        _bpf(cmd, attr, what)
    except BpfSyscallError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def map_update(fd: int, key: bytes, value: bytes) -> None:
    key_buf = ctypes.create_string_buffer(key, len(key))
    value_buf = ctypes.create_string_buffer(value, len(value))
    attr = _MapElemAttr(map_fd=fd, key=ctypes.addressof(key_buf), value=ctypes.addressof(value_buf))
    _bpf(BPF_MAP_UPDATE_ELEM, attr, f"MAP_UPDATE_ELEM map fd {fd}")


def map_delete(fd: int, key: bytes) -> bool:
    """Remove `key`; False when it was not there."""
    key_buf = ctypes.create_string_buffer(key, len(key))
    attr = _MapElemAttr(map_fd=fd, key=ctypes.addressof(key_buf))
    return _bpf_found(BPF_MAP_DELETE_ELEM, attr, f"MAP_DELETE_ELEM map fd {fd}")


def map_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after `key` (the first with None), or None past the last. A `key` deleted meanwhile restarts a hash
    map's walk from its first key (the kernel's rule), so a walk that deletes as it goes sees every key."""
    next_buf = ctypes.create_string_buffer(key_size)
    attr = _MapElemAttr(map_fd=fd, value=ctypes.addressof(next_buf))  # `value` is the union's next_key
    if key is not None:
        key_buf = ctypes.create_string_buffer(key, len(key))
        attr.key = ctypes.addressof(key_buf)
    return next_buf.raw if _bpf_found(BPF_MAP_GET_NEXT_KEY, attr, f"MAP_GET_NEXT_KEY map fd {fd}") else None


class MapSlot:
    """One key of a map, written again and again with one syscall and no allocation: the buffers, the attribute
    block and the value's packer are made once (the liveness deadline, written about every second)."""

    def __init__(self, fd: int, key: bytes, value: struct.Struct) -> None:
        self._key = ctypes.create_string_buffer(key, len(key))
        self._value = ctypes.create_string_buffer(value.size)
        self._packer = value
        self._attr = _MapElemAttr(map_fd=fd, key=ctypes.addressof(self._key), value=ctypes.addressof(self._value))
        self._what = f"MAP_UPDATE_ELEM map fd {fd}"
        # The kernel copies the buffer while the GIL is released: a second writer must not repack it meanwhile.
        self._lock = threading.Lock()

    def write(self, *fields: object) -> None:
        with self._lock:
            self._packer.pack_into(self._value, 0, *fields)
            _bpf(BPF_MAP_UPDATE_ELEM, self._attr, self._what)


def possible_cpus(path: str = POSSIBLE_CPUS) -> int:
    """How many CPUs the kernel may ever bring up: a per-CPU map's value holds one slot for each of them."""
    with open(path) as file:
        text = file.read().strip()
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def obj_pin(fd: int, path: str) -> None:
    """Pin a map or program at `path` (on a bpf filesystem) so that it outlives every fd of it."""
    name = ctypes.create_string_buffer(os.fsencode(path))
    _bpf(BPF_OBJ_PIN, _ObjAttr(pathname=ctypes.addressof(name), bpf_fd=fd), f"OBJ_PIN {path}")


def obj_get(path: str) -> int:
    """An fd of the object pinned at `path` (the caller closes it); FileNotFoundError when nothing is."""
    name = ctypes.create_string_buffer(os.fsencode(path))
    try:
        return _bpf(BPF_OBJ_GET, _ObjAttr(pathname=ctypes.addressof(name)), f"OBJ_GET {path}")
    except BpfSyscallError as exc:
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(errno.ENOENT, f"nothing pinned at {path}") from None
        raise


def map_info_by_fd(fd: int) -> MapInfo:
    info = _MapInfo()
    attr = _InfoByFdAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, f"OBJ_GET_INFO_BY_FD map fd {fd}")
    return MapInfo(id=info.id, type=info.type, key_size=info.key_size, value_size=info.value_size,
                   max_entries=info.max_entries, name=info.name.decode(errors="replace"))


def prog_fd_by_id(prog_id: int) -> int:
    """An fd of a loaded program (the caller closes it); OSError when it is gone."""
    return _bpf(BPF_PROG_GET_FD_BY_ID, _GetFdByIdAttr(prog_id=prog_id), f"PROG_GET_FD_BY_ID id {prog_id}")


def prog_map_ids(prog_id: int) -> list[int]:
    """Ids of the maps a loaded program uses."""
    fd = prog_fd_by_id(prog_id)
    try:
        info = _ProgInfo()
        attr = _InfoByFdAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
        _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, f"OBJ_GET_INFO_BY_FD prog id {prog_id}")
        count = info.nr_map_ids
        if count == 0:
            return []
        ids = (ctypes.c_uint32 * count)()
        info = _ProgInfo(nr_map_ids=count, map_ids=ctypes.addressof(ids))
        attr = _InfoByFdAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
        _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, f"OBJ_GET_INFO_BY_FD prog id {prog_id}")
        return list(ids[: min(count, info.nr_map_ids)])
    finally:
        os.close(fd)
