"""Pinned BPF maps: a directory on a bpf filesystem that outlives the process, so a restarted responder adopts the
maps (and the addresses they answer) of the run before it.

The directory holds one file per pinned map (bcc pins them, BPF_TABLE_PINNED in xdp_responder.c) and a layout
stamp: a one-entry array map holding the sha256 of the pinned tables' declarations (map type, key and value
structs as bcc describes them, capacity). A program whose tables describe to the same digest can use the maps as
they are; any other digest means the structs changed (an upgrade) and the maps must be made afresh.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from metallb_fast.dataplane import bpfsys
from metallb_fast.dataplane.base import ResponderError

log = logging.getLogger(__name__)

BPFFS_ROOT = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS_ROOT / "metallb-fast"
BPF_FS_MAGIC = 0xCAFE4A11
STAMP = "mlbf_layout"  # never a table name: bcc table names are C identifiers, and this one is not declared
_STAMP_SIZE = 32
_STAMP_KEY = bytes(4)
_LAYOUT_FORMAT = "metallb-fast pinned layout 1"
_PATH_CHARS = re.compile(r"[A-Za-z0-9._/-]+")  # the path is spliced into a C string literal (-DPIN_DIR="...")
_NAME_CHARS = re.compile(r"[A-Za-z0-9._-]+")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def default_pin_dir(name: str) -> Path:
    """/sys/fs/bpf/metallb-fast/<name>: one directory per responder that restarts in place (e.g. the node name)."""
    if not _NAME_CHARS.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"pin name {name!r}: use letters, digits, '.', '_' and '-' only")
    return PIN_ROOT / name


def filesystem_type(path: Path) -> int:
    """statfs(2) f_type of the filesystem holding `path` (os.statvfs does not report it)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    if _libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"statfs({path}): {os.strerror(err)}")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def _mount_bpffs(where: Path) -> None:
    if _libc.mount(b"bpf", os.fsencode(where), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t bpf bpf {where}: {os.strerror(err)}")


def prepare(pin_dir: str | os.PathLike[str]) -> Path:
    """The absolute pin directory, created, on a bpf filesystem; /sys/fs/bpf is mounted when nothing is mounted
    there (as systemd does at boot). ResponderError saying what to do when that is not possible."""
    path = Path(os.path.abspath(os.fspath(pin_dir)))
    if not _PATH_CHARS.fullmatch(str(path)):
        raise ResponderError(f"xdp: pin directory {str(path)!r}: use letters, digits, '.', '_', '-' and '/' only")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if filesystem_type(existing) != BPF_FS_MAGIC:
        if existing != BPFFS_ROOT:
            raise ResponderError(
                f"xdp: pin directory {path} is not on a bpf filesystem ({existing} is not one); mount one "
                f"(mount -t bpf bpf DIR) and pin below it, or run without a pin directory"
            )
        try:
            _mount_bpffs(BPFFS_ROOT)
        except OSError as exc:
            raise ResponderError(
                f"xdp: pin directory {path}: nothing is mounted on {BPFFS_ROOT} and mounting a bpf filesystem "
                f"there failed ({exc}); mount it on the host (mount -t bpf bpf {BPFFS_ROOT}) or run without a pin "
                "directory"
            ) from None
        log.warning(
            "xdp: mounted a bpf filesystem on %s (nothing was mounted there); the maps pinned in %s outlive this "
            "process only if that mount is the host's (a container needs /sys/fs/bpf from the host, mounted with "
            "mountPropagation: Bidirectional, or bpffs already mounted on the host)", BPFFS_ROOT, path,
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResponderError(f"xdp: cannot create pin directory {path}: {exc}") from None
    return path


def layout_digest(declarations: Iterable[str]) -> bytes:
    """The stamp of a set of pinned tables, each described by one line (order does not matter)."""
    text = "\n".join([_LAYOUT_FORMAT, *sorted(declarations)])
    return hashlib.sha256(text.encode()).digest()


class PinDirectory:
    """The maps pinned in one directory (prepare()d), and its layout stamp."""

    def __init__(self, pin_dir: str | os.PathLike[str]) -> None:
        self.path = prepare(pin_dir)

    def names(self) -> list[str]:
        """The pinned maps (every file but the stamp)."""
        return sorted(p.name for p in self.path.iterdir() if p.name != STAMP and not p.is_dir())

    def map_ids(self) -> dict[str, int]:
        """{name: map id} of the pinned maps."""
        ids: dict[str, int] = {}
        for name in self.names():
            with contextlib.suppress(FileNotFoundError):
                fd = bpfsys.obj_get(str(self.path / name))
                try:
                    ids[name] = bpfsys.map_info_by_fd(fd).id
                finally:
                    os.close(fd)
        return ids

    def stamp(self) -> bytes | None:
        """The digest the last writer stamped, or None (no stamp, or not one of ours)."""
        try:
            fd = bpfsys.obj_get(str(self.path / STAMP))
        except FileNotFoundError:
            return None
        try:
            info = bpfsys.map_info_by_fd(fd)
            if (info.type, info.key_size, info.value_size) != (bpfsys.BPF_MAP_TYPE_ARRAY, 4, _STAMP_SIZE):
                return None
            return bpfsys.map_lookup(fd, _STAMP_KEY, _STAMP_SIZE)
        finally:
            os.close(fd)

    def write_stamp(self, digest: bytes) -> None:
        try:
            fd = bpfsys.obj_get(str(self.path / STAMP))
        except FileNotFoundError:
            fd = bpfsys.map_create(bpfsys.BPF_MAP_TYPE_ARRAY, 4, _STAMP_SIZE, 1, STAMP)
            try:
                bpfsys.obj_pin(fd, str(self.path / STAMP))
            except BaseException:
                os.close(fd)
                raise
        try:
            bpfsys.map_update(fd, _STAMP_KEY, digest)
        finally:
            os.close(fd)

    def clear(self) -> None:
        """Unpin everything here and remove the directory. Maps still used by an attached program live on."""
        for entry in self.path.iterdir():
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                entry.unlink()
        try:
            self.path.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
                raise
