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
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from metallb_fast.dataplane.base import OwnedKey, Responder, ResponderError

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
    # When each pair with a frame still ahead (in its burst, or refreshed) sends next: what a call looks at, so that
    # a reconcile with nothing due costs O(1) whatever the number of answered pairs, not a pass over all of them.
    pending: Mapping[OwnedKey, float] = field(default_factory=dict)
    policy: GratuitousPolicy | None = None  # the one `pending` was computed with


@dataclass(frozen=True)
class Schedule:
    state: GratuitousState
    due: tuple[OwnedKey, ...]  # announce these now, in this order
    wake_at: float | None  # call schedule() again at this time; None = nothing pending


def _next_time(pair: _Pair, policy: GratuitousPolicy) -> float | None:
    if pair.sent < policy.burst_frames:
        return pair.started + pair.sent * policy.interval
    return pair.next_refresh


def _first_refresh(started: float, policy: GratuitousPolicy) -> float | None:
    return None if policy.refresh_every is None else started + policy.duration + policy.refresh_every


def _advance(pair: _Pair, now: float, policy: GratuitousPolicy) -> tuple[_Pair, bool]:
    """Move one pair to `now`; True when a frame is due."""
    if pair.sent < policy.burst_frames:
        if now > pair.started + policy.duration + _EPSILON_S:
            # Woken after the burst window closed: like MetalLB, the burst is over without a late frame.
            pair = _Pair(pair.started, policy.burst_frames, _first_refresh(pair.started, policy))
        elif pair.started + pair.sent * policy.interval <= now + _EPSILON_S:
            # Late wake-ups skip the missed slots rather than sending them back to back.
            elapsed = math.floor((now - pair.started) / policy.interval + _EPSILON_S) + 1
            sent = min(policy.burst_frames, max(pair.sent + 1, elapsed))
            done = sent >= policy.burst_frames
            return _Pair(pair.started, sent, _first_refresh(pair.started, policy) if done else None), True
        else:
            return pair, False
    if policy.refresh_every is None:
        return _Pair(pair.started, pair.sent, None), False
    if pair.next_refresh is None:  # refresh switched on after this burst ended
        return _Pair(pair.started, pair.sent, _first_refresh(pair.started, policy)), False
    if pair.next_refresh <= now + _EPSILON_S:
        periods = math.floor((now - pair.next_refresh) / policy.refresh_every + _EPSILON_S) + 1
        return _Pair(pair.started, pair.sent, pair.next_refresh + periods * policy.refresh_every), True
    return pair, False


def _order(key: OwnedKey) -> tuple[int, int, str]:
    return key[0].version, int(key[0]), key[1]


def schedule(
    state: GratuitousState,
    owned: Iterable[OwnedKey],
    now: float,
    policy: GratuitousPolicy | None = None,
) -> Schedule:
    """Advance the schedule to `now` given the pairs this node answers for now.

    Only the pairs that need it move: the newly answered ones and those whose next frame is due. Every other pair's
    next step lies ahead and stays as it is; under another policy than the last call's, every pair moves."""
    policy = policy or GratuitousPolicy()
    answered: Set[OwnedKey] = owned.keys() if isinstance(owned, Mapping) else frozenset(owned)
    if policy == state.policy:
        wake_at = min(state.pending.values()) if state.pending else None
        if answered == state.pairs.keys() and (wake_at is None or wake_at > now + _EPSILON_S):
            return Schedule(state=state, due=(), wake_at=wake_at)
        pending = {key: at for key, at in state.pending.items() if key in answered}
        touched = {key for key in answered if key not in state.pairs}
        touched.update(key for key, at in pending.items() if at <= now + _EPSILON_S)
    else:
        pending, touched = {}, set(answered)
    pairs = {key: pair for key, pair in state.pairs.items() if key in answered}
    due: list[OwnedKey] = []
    for key in sorted(touched, key=_order):
        # A pair not in the state is newly answered (first time, or regained after a loss): a fresh burst.
        pair, send = _advance(state.pairs.get(key) or _Pair(started=now, sent=0, next_refresh=None), now, policy)
        pairs[key] = pair
        next_at = _next_time(pair, policy)
        if next_at is None:
            pending.pop(key, None)
        else:
            pending[key] = next_at
        if send:
            due.append(key)
    return Schedule(
        state=GratuitousState(pairs=pairs, pending=pending, policy=policy),
        due=tuple(due),
        wake_at=min(pending.values()) if pending else None,
    )


def announce_due(responder: Responder, due: Iterable[OwnedKey]) -> list[tuple[OwnedKey, ResponderError]]:
    """Send each due frame through the dataplane; a failing interface must not stop the others."""
    failures: list[tuple[OwnedKey, ResponderError]] = []
    for address, interface in due:
        try:
            responder.announce(address, interface)
        except ResponderError as exc:
            failures.append(((address, interface), exc))
    return failures
