"""When to send gratuitous ARP / unsolicited NA, as pure decisions over an injected clock.

MetalLB (internal/layer2/announcer.go spamLoop) sends at once and then every 1.1 s for 5 s, but restarts that
burst on every reconcile its node wins, which floods the LAN while a cluster churns (MetalLB issue #1562).
Here a burst starts only when this node *starts* answering an (address, interface) pair: nothing while
ownership is unchanged, a new burst after losing and regaining it (a takeover must re-teach the switches).
An optional periodic refresh (one frame per pair every `refresh_every` seconds) serves switches whose tables
age out; it is off by default.

Usage: on every reconcile and at every wake-up, call `schedule(state, owned_pairs, now)`; send `due` through
`announce_due(responder, due)` and sleep until `wake_at` (None = nothing pending).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from metallb_fast.dataplane.base import OwnedKey, Responder

BURST_INTERVAL_S = 1.1  # MetalLB's choice (its issue #172)
BURST_DURATION_S = 5.0
_EPSILON_S = 1e-9  # float slack so a wake-up exactly on a slot counts as on time


@dataclass(frozen=True)
class GratuitousPolicy:
    interval: float = BURST_INTERVAL_S
    duration: float = BURST_DURATION_S
    refresh_every: float | None = None  # seconds between single refresh frames; None = no refresh

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"gratuitous interval must be > 0 seconds, got {self.interval}")
        if self.duration < 0:
            raise ValueError(f"gratuitous burst duration must be >= 0 seconds, got {self.duration}")
        if self.refresh_every is not None and self.refresh_every <= 0:
            raise ValueError(f"gratuitous refresh period must be > 0 seconds or unset, got {self.refresh_every}")

    @property
    def burst_frames(self) -> int:
        """Frames in one burst: at 0, interval, 2*interval, ... while within `duration`."""
        return math.floor(self.duration / self.interval + _EPSILON_S) + 1


@dataclass(frozen=True)
class _Pair:
    started: float  # when this node started answering the pair
    sent: int  # burst frames already sent
    next_refresh: float | None


@dataclass(frozen=True)
class GratuitousState:
    pairs: Mapping[OwnedKey, _Pair] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    state: GratuitousState
    due: tuple[OwnedKey, ...]  # announce these now, in this order
    wake_at: float | None  # call schedule() again at this time; None = nothing pending


def _next_time(pair: _Pair, policy: GratuitousPolicy) -> float | None:
    if pair.sent < policy.burst_frames:
        return pair.started + pair.sent * policy.interval
    return pair.next_refresh


def schedule(
    state: GratuitousState,
    owned: Iterable[OwnedKey],
    now: float,
    policy: GratuitousPolicy | None = None,
) -> Schedule:
    """Advance the schedule to `now` given the pairs this node answers for now."""
    policy = policy or GratuitousPolicy()
    current = set(owned)
    pairs: dict[OwnedKey, _Pair] = {}
    due: list[OwnedKey] = []
    for key in sorted(current, key=lambda k: (k[0].version, int(k[0]), k[1])):
        pair = state.pairs.get(key)
        if pair is None:
            # Newly answered (first time, or regained after a loss): a fresh burst starting now.
            pair = _Pair(started=now, sent=0, next_refresh=None)
        if pair.sent < policy.burst_frames:
            slot = pair.started + pair.sent * policy.interval
            if slot <= now + _EPSILON_S:
                # Late wake-ups skip the missed slots rather than sending them back to back.
                elapsed = math.floor((now - pair.started) / policy.interval + _EPSILON_S) + 1
                sent = min(policy.burst_frames, max(pair.sent + 1, elapsed))
                refresh = (
                    pair.started + policy.duration + policy.refresh_every
                    if policy.refresh_every is not None and sent >= policy.burst_frames
                    else None
                )
                pair = _Pair(started=pair.started, sent=sent, next_refresh=refresh)
                due.append(key)
        elif pair.next_refresh is not None and pair.next_refresh <= now + _EPSILON_S:
            assert policy.refresh_every is not None
            periods = math.floor((now - pair.next_refresh) / policy.refresh_every + _EPSILON_S) + 1
            pair = _Pair(pair.started, pair.sent, pair.next_refresh + periods * policy.refresh_every)
            due.append(key)
        elif pair.next_refresh is None and policy.refresh_every is not None:
            pair = _Pair(pair.started, pair.sent, pair.started + policy.duration + policy.refresh_every)
        pairs[key] = pair
    times = [t for t in (_next_time(p, policy) for p in pairs.values()) if t is not None]
    return Schedule(state=GratuitousState(pairs=pairs), due=tuple(due), wake_at=min(times) if times else None)


def announce_due(responder: Responder, due: Iterable[OwnedKey]) -> list[tuple[OwnedKey, OSError]]:
    """Send each due frame through the dataplane; a failing interface must not stop the others."""
    failures: list[tuple[OwnedKey, OSError]] = []
    for address, interface in due:
        try:
            responder.announce(address, interface)
        except OSError as exc:
            failures.append(((address, interface), exc))
    return failures
