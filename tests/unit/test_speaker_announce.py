"""Gratuitous ARP / unsolicited NA schedule with an injected clock (speaker/announce.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.dataplane.base import OwnedKey, ResponderError
from metallb_fast.speaker.announce import (
    GratuitousPolicy,
    GratuitousState,
    Schedule,
    _advance,
    _next_time,
    _Pair,
    announce_due,
    schedule,
)

A: OwnedKey = (ipaddress.ip_address("192.0.2.10"), "eth0")
B: OwnedKey = (ipaddress.ip_address("2001:db8::10"), "eth0")
C: OwnedKey = (ipaddress.ip_address("192.0.2.10"), "eth1")
T0 = 1000.0


def run_until_idle(step: Schedule, owned: set[OwnedKey], policy: GratuitousPolicy | None = None, limit: float = 1e9):
    """Follow wake-ups as a speaker loop would; returns [(time, due)] and the last schedule."""
    sent = []
    while step.wake_at is not None and step.wake_at <= limit:
        now = step.wake_at
        step = schedule(step.state, owned, now, policy)
        sent.append((now, step.due))
    return sent, step


def test_burst_at_once_then_every_1_1_s_for_5_s() -> None:
    first = schedule(GratuitousState(), {A}, T0)
    assert first.due == (A,)
    assert first.wake_at == pytest.approx(T0 + 1.1)
    sent, last = run_until_idle(first, {A})
    times = [T0] + [t for t, due in sent if due == (A,)]
    assert times == pytest.approx([T0, T0 + 1.1, T0 + 2.2, T0 + 3.3, T0 + 4.4])
    assert last.wake_at is None


def test_unchanged_reconcile_sends_nothing_during_or_after_the_burst() -> None:
    first = schedule(GratuitousState(), {A}, T0)
    again = schedule(first.state, {A}, T0 + 0.3)
    assert again.due == ()
    assert again.wake_at == pytest.approx(T0 + 1.1)
    _, idle = run_until_idle(again, {A})
    for later in (T0 + 6, T0 + 60, T0 + 3600):
        step = schedule(idle.state, {A}, later)
        assert step.due == () and step.wake_at is None


def test_takeover_after_losing_starts_a_new_burst() -> None:
    _, idle = run_until_idle(schedule(GratuitousState(), {A}, T0), {A})
    lost = schedule(idle.state, set(), T0 + 20)
    assert lost.due == () and lost.wake_at is None
    regained = schedule(lost.state, {A}, T0 + 30)
    assert regained.due == (A,)
    sent, _ = run_until_idle(regained, {A})
    assert len([due for _, due in sent if due]) == 4  # 5 frames in all for the new burst


def test_losing_mid_burst_stops_it() -> None:
    first = schedule(GratuitousState(), {A, B}, T0)
    assert set(first.due) == {A, B}
    only_b = schedule(first.state, {B}, T0 + 1.1)
    assert only_b.due == (B,)
    assert A not in only_b.state.pairs


def test_new_pair_bursts_alone_while_others_stay_quiet() -> None:
    _, idle = run_until_idle(schedule(GratuitousState(), {A}, T0), {A})
    step = schedule(idle.state, {A, C}, T0 + 10)
    assert step.due == (C,)
    sent, _ = run_until_idle(step, {A, C})
    assert all(due == (C,) for _, due in sent if due)


def test_late_wake_up_skips_missed_slots() -> None:
    first = schedule(GratuitousState(), {A}, T0)
    late = schedule(first.state, {A}, T0 + 3.5)  # slots 1.1, 2.2, 3.3 missed: one frame, not three
    assert late.due == (A,)
    assert late.wake_at == pytest.approx(T0 + 4.4)
    assert schedule(late.state, {A}, T0 + 10).due == ()


def test_periodic_refresh_is_off_by_default_and_single_frames_when_on() -> None:
    assert GratuitousPolicy().refresh_every is None
    policy = GratuitousPolicy(refresh_every=30.0)
    sent, _ = run_until_idle(schedule(GratuitousState(), {A}, T0, policy), {A}, policy, limit=T0 + 100)
    refresh_times = [t for t, due in sent if due and t > T0 + 5]
    assert refresh_times == pytest.approx([T0 + 35, T0 + 65, T0 + 95])


def test_policy_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="interval"):
        GratuitousPolicy(interval=0)
    with pytest.raises(ValueError, match="refresh period"):
        GratuitousPolicy(refresh_every=-1)
    assert GratuitousPolicy().burst_frames == 5


class FakeResponder:
    backend = "fake"

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.calls: list[OwnedKey] = []

    def announce(self, address, interface) -> None:
        self.calls.append((address, interface))
        if interface in self.failing:
            raise ResponderError(f"fake backend: announcing {address} on {interface}: No such device")


def test_announce_due_sends_through_the_responder_and_survives_one_failure() -> None:
    responder = FakeResponder(failing={"eth1"})
    failures = announce_due(responder, (C, A))  # type: ignore[arg-type]
    assert responder.calls == [C, A]
    assert [key for key, _ in failures] == [C]


# ---- the incremental schedule against a model that moves every pair at every call ----------------------------


def schedule_every_pair(pairs: dict[OwnedKey, Any], owned: set[OwnedKey], now: float, policy: GratuitousPolicy
                        ) -> tuple[dict[OwnedKey, Any], tuple[OwnedKey, ...], float | None]:
    """What schedule() computed before it was incremental: _advance on every answered pair, every time."""
    moved: dict[OwnedKey, Any] = {}
    due = []
    for key in sorted(owned, key=lambda k: (k[0].version, int(k[0]), k[1])):
        pair, send = _advance(pairs.get(key) or _Pair(started=now, sent=0, next_refresh=None), now, policy)
        moved[key] = pair
        if send:
            due.append(key)
    times = [t for t in (_next_time(p, policy) for p in moved.values()) if t is not None]
    return moved, tuple(due), min(times) if times else None


POLICIES = (GratuitousPolicy(), GratuitousPolicy(refresh_every=7.0), GratuitousPolicy(interval=0.5, duration=1.0))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sets(st.sampled_from((A, B, C))), st.floats(0, 4, allow_nan=False),
                          st.booleans(), st.sampled_from(POLICIES)), max_size=40))
def test_incremental_schedule_equals_moving_every_pair(steps: list[tuple[set[OwnedKey], float, bool, Any]]) -> None:
    """Any ownership changes, wake-ups early, on time or late, and a policy that changes between calls."""
    state, model, now = GratuitousState(), {}, T0
    for owned, advance, on_wake, policy in steps:
        step = schedule(state, owned, now, policy)
        model, due, wake_at = schedule_every_pair(model, owned, now, policy)
        assert (step.due, step.wake_at) == (due, wake_at)
        assert dict(step.state.pairs) == model
        state = step.state
        now = step.wake_at if on_wake and step.wake_at is not None else now + advance


def test_a_reconcile_with_nothing_due_keeps_the_state() -> None:
    """The common call (a reconcile that changed no ownership, between frames) returns the same state object."""
    owned = {A: b"\x02" * 6, B: b"\x02" * 6}
    first = schedule(GratuitousState(), owned, T0)
    again = schedule(first.state, owned, T0 + 0.5)
    assert again.state is first.state and again.due == () and again.wake_at == first.wake_at
