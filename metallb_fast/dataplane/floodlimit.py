"""Per-source flood protection: a token bucket per (source MAC, sender address), checked before a reply.

The rule, identical in every backend (docs/fastpath.md, Flood protection):
- Only a frame the responder would answer is charged: an ARP request or Neighbor Solicitation that packets.answer()
  calls ANSWERED (owned on the ingress interface, addressed to us, alive). Declined frames cost nothing and keep
  their own verdict; heartbeats (peers, not clients) are never limited.
- Key: the Ethernet source MAC and, for ARP, the sender protocol address; for NS, the IPv6 source address
  (`source_key`: 24 bytes, the C struct flood_key byte for byte, so every backend keys alike).
- Over the limit: Verdict.RATE_LIMITED, not answered. action "pass": the frame goes to the kernel untouched
  (XDP_PASS); "drop": XDP_DROP. AF_PACKET backends (ring, python) see a copy of what the kernel receives, so for
  them both actions mean "not answered".

The bucket is kept as GCRA (the virtual-scheduling form of a token bucket, ITU-T I.371): one integer per source,
its theoretical arrival time `tat` in CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns == time.monotonic_ns). With
interval T = 1e9 / rate and tolerance tau = (burst - 1) * T, a frame at `now` conforms when max(tat, now) - now <=
tau, and then tat = max(tat, now) + T; a frame over the limit leaves tat alone. A source seen for the first time
(or evicted) starts with a full bucket: `burst` frames back to back, then one per T. Integer nanoseconds only,
no multiplication: the C program computes exactly what `conform` does, and no overflow for 584 years of uptime.

Sources are held in a bounded table with least-recently-used eviction, like the BPF "lru_hash" map: a flood of
spoofed sources evicts buckets, and an evicted source starts full again, so this protects against a few flooding
sources (the common case: one misbehaving or hostile host), never against one that forges a new MAC per frame.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from metallb_fast.dataplane import packets
from metallb_fast.dataplane.base import Verdict

ACTIONS = ("pass", "drop")
# Defaults. A legitimate host sends a handful of ARP/NS per second per address: Linux refreshes a neighbour entry
# about every 30 s, with up to 3 retries at 1/s, so a router resolving 1,000 VIPs of one node sends ~35/s from one
# (MAC, IP) and bursts when entries expire together (after a reboot, all at once). The most aggressive legitimate
# sender known here, the failover lab's client probe, sends 100/s. 200/s leaves that prober 2x headroom and is
# still ~5,000x below a flood (1 M/s from one MAC); a burst of 400 absorbs a cold cache of 400 addresses.
DEFAULT_RATE = 200.0
DEFAULT_BURST = 400
# "pass" by default: an over-limit frame is simply not answered, as any declined frame; the kernel and packet
# taps (tcpdump, arpwatch) still see it. "drop" saves the kernel's ARP/NDP processing of a flood.
DEFAULT_ACTION = "pass"
# Sources tracked at once (BPF lru_hash entries, preallocated: ~80 bytes each, ~1.3 MB for 16,384). A LAN of a
# few thousand hosts fits; a bigger spoofed flood evicts (see above).
DEFAULT_SOURCES = 16384

MIN_RATE = 0.001  # one frame per ~17 minutes: below that the interval no longer means anything operationally
MAX_RATE = 1e9  # an interval of 1 ns: the clock's resolution
MAX_BURST = 1_000_000  # tau = (burst - 1) * T must fit the C program's __u64 with room to add `now`
KEY_LEN = 24  # struct flood_key: mac[6], family (4 or 6), pad, address[16] (IPv4 in the first 4 bytes, zeros after)
FAMILY_V4 = 4
FAMILY_V6 = 6


class FloodLimitError(ValueError):
    """A flood limit that cannot be applied; the message names the field, the value and what would be right."""


@dataclass(frozen=True)
class FloodLimit:
    """rate: frames per second per source (0 = off); burst: bucket depth (frames answered back to back);
    action: "pass" (to the kernel untouched) or "drop" for frames over the limit."""

    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    action: str = DEFAULT_ACTION

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float):
            raise FloodLimitError(f"flood limit rate {self.rate!r}: must be a number of frames per second")
        if not math.isfinite(self.rate) or self.rate < 0:
            raise FloodLimitError(f"flood limit rate {self.rate!r}: must be 0 (off) or a positive number per second")
        if self.rate and not MIN_RATE <= self.rate <= MAX_RATE:
            raise FloodLimitError(
                f"flood limit rate {self.rate:g}/s: must be 0 (off) or between {MIN_RATE:g} and {MAX_RATE:g} per second"
            )
        if isinstance(self.burst, bool) or not isinstance(self.burst, int):
            raise FloodLimitError(f"flood limit burst {self.burst!r}: must be a whole number of frames")
        if not 1 <= self.burst <= MAX_BURST:
            raise FloodLimitError(f"flood limit burst {self.burst}: must be between 1 and {MAX_BURST} frames")
        if self.action not in ACTIONS:
            raise FloodLimitError(f"flood limit action {self.action!r}: must be one of {', '.join(ACTIONS)}")

    @classmethod
    def off(cls) -> FloodLimit:
        return cls(rate=0.0)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @property
    def interval_ns(self) -> int:
        """T: nanoseconds between two conforming frames at the sustained rate; 0 when off."""
        return max(1, round(1e9 / self.rate)) if self.enabled else 0

    @property
    def tolerance_ns(self) -> int:
        """tau: how far a source's theoretical arrival time may run ahead of now (burst - 1 intervals)."""
        return (self.burst - 1) * self.interval_ns

    @property
    def drops(self) -> bool:
        return self.action == "drop"

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        return f"{self.rate:g}/s per source, burst {self.burst}, {self.action} over the limit"


def conform(tat: int | None, now_ns: int, interval_ns: int, tolerance_ns: int) -> int | None:
    """GCRA: the source's new theoretical arrival time when a frame at `now_ns` conforms, None when it is over
    the limit (tat unchanged). `tat` None: a source not seen before (a full bucket)."""
    start = now_ns if tat is None or tat < now_ns else tat
    if start - now_ns > tolerance_ns:
        return None
    return start + interval_ns


def source_key(frame: bytes) -> bytes:
    """The bucket key of an ARP request or Neighbor Solicitation that packets.answer() would answer:
    source MAC | family | 0 | sender address (ARP spa, padded with zeros / IPv6 source)."""
    mac = frame[6:12]
    if frame[12:14] == packets.ETHERTYPE_ARP.to_bytes(2, "big"):
        return key_bytes(mac, FAMILY_V4, frame[28:32])
    return key_bytes(mac, FAMILY_V6, frame[22:38])


def key_bytes(mac: bytes, family: int, address: bytes) -> bytes:
    """A bucket key as struct flood_key lays it out: mac[6], family, 0, address[16] (IPv4 padded with zeros)."""
    return mac + bytes((family, 0)) + address.ljust(16, b"\x00")


def key_fields(key: bytes) -> tuple[bytes, int, bytes]:
    """(mac, family, address[16]) of a bucket key: key_bytes() taken apart, for a map key set by field."""
    return key[:6], key[6], key[8:KEY_LEN]


class TokenBuckets:
    """One GCRA bucket per source, at most `capacity` sources (least recently used evicted first).

    Not thread-safe: one packet loop owns it. `configure` swaps the limit and keeps the buckets."""

    def __init__(self, limit: FloodLimit, capacity: int = DEFAULT_SOURCES) -> None:
        if capacity < 1:
            raise FloodLimitError(f"flood limit table capacity {capacity}: must be at least 1 source")
        self.limit = limit
        self.capacity = capacity
        self._tat: OrderedDict[bytes, int] = OrderedDict()

    def configure(self, limit: FloodLimit) -> None:
        self.limit = limit

    def allow(self, key: bytes, now_ns: int) -> bool:
        """Whether a frame from source `key` at `now_ns` is answered; charges the bucket when it is."""
        limit = self.limit
        if not limit.enabled:
            return True
        tat = self._tat.get(key)
        new = conform(tat, now_ns, limit.interval_ns, limit.tolerance_ns)
        if tat is not None:
            self._tat.move_to_end(key)  # a lookup refreshes the entry, over the limit or not (as the BPF LRU does)
        if new is None:
            return False
        self._tat[key] = new
        if len(self._tat) > self.capacity:
            self._tat.popitem(last=False)
        return True

    def state(self) -> dict[bytes, int]:
        """source key -> theoretical arrival time (ns), least recently used first."""
        return dict(self._tat)

    def set(self, key: bytes, tat_ns: int) -> None:
        """Put one source's bucket in a given state (tests; the BPF map can be written the same way)."""
        self._tat[key] = tat_ns
        self._tat.move_to_end(key)
        if len(self._tat) > self.capacity:
            self._tat.popitem(last=False)

    def __len__(self) -> int:
        return len(self._tat)


def limit_answer(frame: bytes, answer: packets.Answer, buckets: TokenBuckets | None, now_ns: int) -> packets.Answer:
    """packets.answer()'s decision with the flood limit applied: an ANSWERED frame whose source is over its
    limit becomes RATE_LIMITED (no reply, the target kept). Every other decision is returned unchanged."""
    if buckets is None or answer.verdict is not Verdict.ANSWERED:
        return answer
    if buckets.allow(source_key(frame), now_ns):
        return answer
    return packets.Answer(Verdict.RATE_LIMITED, target=answer.target)
