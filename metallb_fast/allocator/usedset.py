"""The used addresses of one pool and family as maximal runs, so the lowest free address is one bisect away.

A pool is never materialised: memory grows with the number of runs of used addresses, not with the pool size,
and finding the lowest free address costs O(log runs) however many addresses are taken below it. With
`skip_buggy` (avoidBuggyIPs, IPv4 only) addresses ending in .0 and .255 are never stored and a run continues
across them, so a full /16 is still one run.
"""

from __future__ import annotations

from bisect import bisect_right


def is_buggy(value: int) -> bool:
    """MetalLB's ipConfusesBuggyFirmwares for an IPv4 address as an integer."""
    last = value & 0xFF
    return last == 0 or last == 255


class UsedAddresses:
    __slots__ = ("_ends", "_starts", "skip_buggy")

    def __init__(self, skip_buggy: bool = False) -> None:
        self.skip_buggy = skip_buggy
        self._starts: list[int] = []
        self._ends: list[int] = []

    def _usable_from(self, value: int) -> int:
        """The lowest usable address >= value."""
        if self.skip_buggy and is_buggy(value):
            return value + 1 if value & 0xFF == 0 else value + 2
        return value

    def _succ(self, value: int) -> int:
        return self._usable_from(value + 1)

    def _pred(self, value: int) -> int:
        previous = value - 1
        if self.skip_buggy and is_buggy(previous):
            return previous - 1 if previous & 0xFF == 255 else previous - 2
        return previous

    @property
    def runs(self) -> int:
        return len(self._starts)

    def add(self, value: int) -> None:
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, value)
        if i and ends[i - 1] >= value:
            return  # already inside a run
        joins_left = i > 0 and self._succ(ends[i - 1]) == value
        joins_right = i < len(starts) and starts[i] == self._succ(value)
        if joins_left and joins_right:
            ends[i - 1] = ends[i]
            del starts[i], ends[i]
        elif joins_left:
            ends[i - 1] = value
        elif joins_right:
            starts[i] = value
        else:
            starts.insert(i, value)
            ends.insert(i, value)

    def discard(self, value: int) -> None:
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, value) - 1
        if i < 0 or ends[i] < value:
            return
        start, end = starts[i], ends[i]
        if start == value and end == value:
            del starts[i], ends[i]
        elif start == value:
            starts[i] = self._succ(value)
        elif end == value:
            ends[i] = self._pred(value)
        else:
            ends[i] = self._pred(value)
            starts.insert(i + 1, self._succ(value))
            ends.insert(i + 1, end)

    def lowest_free(self, first: int, last: int) -> int | None:
        """The lowest usable address in [first, last] that is not used, or None."""
        candidate = self._usable_from(first)
        i = bisect_right(self._starts, candidate) - 1
        if i >= 0 and self._ends[i] >= candidate:
            candidate = self._succ(self._ends[i])  # runs are maximal: the address after one is free
        return candidate if candidate <= last else None

    def __iter__(self):  # type: ignore[no-untyped-def]
        for start, end in zip(self._starts, self._ends, strict=True):
            value = start
            while value <= end:
                yield value
                value = self._succ(value)
