"""Enter a named network namespace for the current thread (Python 3.11 has no os.setns)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns({what}, CLONE_NEWNET) failed: {os.strerror(errno)}")


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


@contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with this thread in network namespace `name` (as `ip netns exec` names it).

    Only the calling thread moves: sockets opened inside stay in `name`, threads started inside inherit it.
    /sys is not remounted (unlike `ip netns exec`): resolve interfaces with socket.if_nametoindex, not sysfs.
    """
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(f"network namespace {name!r} does not exist ({netns_path(name)})") from None
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target, name)
        try:
            yield
        finally:
            _setns(original, "the original namespace")
    finally:
        os.close(target)
        os.close(original)
