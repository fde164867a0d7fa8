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
    try:
        with in_netns_fd(target, name):
            yield
    finally:
        os.close(target)


def current_netns_fd() -> int:
    """An fd for this thread's network namespace (caller closes it); pin it to come back later."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def same_netns(fd: int) -> bool:
    here = os.stat("/proc/thread-self/ns/net")
    there = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


@contextmanager
def in_netns_fd(target: int, what: str = "namespace fd") -> Iterator[None]:
    """in_netns() for an fd from current_netns_fd() (a no-op when the thread is already there)."""
    if same_netns(target):
        yield
        return
    original = current_netns_fd()
    try:
        _setns(target, what)
        try:
            yield
        finally:
            _setns(original, "the original namespace")
    finally:
        os.close(original)
