"""A BPF map held by an fd, read and written with bpf(2) (bpfsys): keys and values are bytes, as the kernel sees them.

The process that drives the responder's maps never loads bcc (xdp_loader.py compiles in a child and hands over
fds); xdp_maps.py says what the bytes mean.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from metallb_fast.dataplane import bpfsys

_SLOT_ALIGN = 8  # a per-CPU value occupies round_up(value_size, 8) bytes per CPU in the syscall's buffer


class BpfMap:
    """One map: `info` is what the kernel reports about it, `cpus` the possible CPUs (bpfsys.possible_cpus()),
    which size a per-CPU map's values. Owns `fd` (close() closes it)."""

    def __init__(self, fd: int, info: bpfsys.MapInfo, cpus: int) -> None:
        self.fd = fd
        self.info = info
        self.per_cpu = info.type in bpfsys.PER_CPU_MAP_TYPES
        self._stride = -(-info.value_size // _SLOT_ALIGN) * _SLOT_ALIGN
        self._cpus = cpus if self.per_cpu else 1
        self._buffer_size = self._stride * self._cpus if self.per_cpu else info.value_size

    @property
    def name(self) -> str:
        return self.info.name

    def get(self, key: bytes) -> bytes | None:
        """The value under `key` (a per-CPU map's: CPU 0's; per_cpu_values() has them all), or None."""
        values = self.per_cpu_values(key)
        return None if values is None else values[0]

    def per_cpu_values(self, key: bytes) -> list[bytes] | None:
        """The value of every possible CPU under `key` (one for a map that is not per-CPU), or None."""
        raw = bpfsys.map_lookup(self.fd, key, self._buffer_size)
        if raw is None:
            return None
        size = self.info.value_size
        return [raw[cpu * self._stride: cpu * self._stride + size] for cpu in range(self._cpus)]

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value` (in a per-CPU map, every CPU's copy)."""
        if len(value) != self.info.value_size:
            raise ValueError(f"map {self.name}: a value of {len(value)} bytes, the map's are {self.info.value_size}")
        slot = value.ljust(self._stride, b"\x00") if self.per_cpu else value
        bpfsys.map_update(self.fd, key, slot * self._cpus)

    def delete(self, key: bytes) -> bool:
        """Remove `key`; False when it was not there."""
        return bpfsys.map_delete(self.fd, key)

    def __iter__(self) -> Iterator[bytes]:
        """The keys, as the kernel walks them."""
        key = bpfsys.map_next_key(self.fd, None, self.info.key_size)
        while key is not None:
            yield key
            key = bpfsys.map_next_key(self.fd, key, self.info.key_size)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of every key (a per-CPU map's: CPU 0's value); a key deleted during the walk is left out."""
        for key in self:
            value = self.get(key)
            if value is not None:
                yield key, value

    def slot(self, key: bytes, value: struct.Struct) -> bpfsys.MapSlot:
        """`key` of this (not per-CPU) map as a preallocated writer of values packed by `value`."""
        if self.per_cpu or value.size != self.info.value_size:
            raise ValueError(f"map {self.name}: a slot needs a plain map and {self.info.value_size}-byte values")
        return bpfsys.MapSlot(self.fd, key, value)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
