"""The data-path detector on a simulated LAN: a dead node is declared in about dead_after heartbeats with a relay's
confirmation, a node whose kernel still answers never is, and our own stalls never count against others."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from metallb_fast.membership.detector import (
    DeadVerdict,
    Detector,
    DetectorTiming,
    Output,
    Recovered,
    SendHeartbeat,
    SendRelayReply,
    SendRelayRequest,
)

TIMING = DetectorTiming()
STEP = 0.005


@dataclass
class Lan:
    """Nodes by address; a node's kernel reflects heartbeats while `answering`; its detector runs while `running`."""

    names: list[str]
    now: float = 0.0
    answering: dict[str, bool] = field(default_factory=dict)
    running: dict[str, bool] = field(default_factory=dict)
    cut: set[frozenset[str]] = field(default_factory=set)  # pairs that cannot reach each other
    detectors: dict[str, Detector] = field(default_factory=dict)
    verdicts: list[tuple[float, str, DeadVerdict]] = field(default_factory=list)
    recovered: list[tuple[float, str, str]] = field(default_factory=list)
    in_flight: list[tuple[float, str, str, Output]] = field(default_factory=list)  # (arrives, from, to, what)

    def __post_init__(self) -> None:
        for i, name in enumerate(self.names):
            self.answering[name] = self.running[name] = True
            self.detectors[name] = Detector(TIMING, random.Random(i), self.now)
        for name, detector in self.detectors.items():
            detector.set_peers({n: (self.addr(n), 1) for n in self.names if n != name})

    @staticmethod
    def addr(name: str) -> tuple[str, int]:
        return (name, 7947)

    def reach(self, a: str, b: str) -> bool:
        return frozenset((a, b)) not in self.cut

    def send(self, sender: str, output: Output) -> None:
        if isinstance(output, DeadVerdict):
            self.verdicts.append((self.now, sender, output))
            return
        if isinstance(output, Recovered):
            self.recovered.append((self.now, sender, output.name))
            return
        target = output.to[0]
        if self.reach(sender, target):
            self.in_flight.append((self.now + 0.0005, sender, target, output))

    def deliver(self) -> None:
        due = [m for m in self.in_flight if m[0] <= self.now]
        self.in_flight = [m for m in self.in_flight if m[0] > self.now]
        for _, sender, target, output in due:
            if isinstance(output, SendHeartbeat):
                if self.answering[target] and self.reach(target, sender):  # the kernel reflects it
                    self.in_flight.append((self.now + 0.0005, target, sender, ("reply", output.nonce)))
            elif isinstance(output, tuple):
                if self.running[target]:
                    for out in self.detectors[target].on_reply(output[1], self.now):
                        self.send(target, out)
            elif isinstance(output, SendRelayRequest) and self.running[target]:
                for out in self.detectors[target].on_relay_request(self.addr(sender), output.target, output.nonce,
                                                                  self.now):
                    self.send(target, out)
            elif isinstance(output, SendRelayReply) and self.running[target]:
                for out in self.detectors[target].on_relay_reply(output.nonce, output.alive, self.now):
                    self.send(target, out)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += STEP
            self.deliver()
            for name, detector in self.detectors.items():
                if self.running[name]:
                    for out in detector.tick(self.now):
                        self.send(name, out)

    def declared(self, name: str) -> list[tuple[float, str]]:
        return [(t, by) for t, by, v in self.verdicts if v.name == name]


def test_a_dead_node_is_declared_by_every_survivor_within_the_detection_time() -> None:
    lan = Lan(["a", "b", "c"])
    lan.run(1.0)
    killed = lan.now
    lan.answering["c"] = lan.running["c"] = False
    lan.run(1.0)
    found = lan.declared("c")
    assert sorted(by for _, by in found) == ["a", "b"]
    assert all(t - killed <= TIMING.detection_time + TIMING.interval for t, _ in found), found
    assert all(t - killed >= TIMING.dead_after * TIMING.interval for t, _ in found), found
    assert "confirmed by" in lan.verdicts[0][2].reason
    assert not lan.declared("a") and not lan.declared("b")


def test_a_paused_speaker_whose_kernel_answers_is_never_declared() -> None:
    lan = Lan(["a", "b", "c"])
    lan.run(0.5)
    lan.running["c"] = False  # SIGSTOP: the detector stops, the kernel keeps reflecting
    lan.run(2.0)
    lan.running["c"] = True
    lan.run(1.0)
    assert lan.verdicts == []
    assert lan.detectors["c"].stalls == 1, "the paused detector saw its own stall and counted nothing"


def test_a_link_between_two_nodes_only_is_not_a_death_when_a_relay_reaches_the_node() -> None:
    lan = Lan(["a", "b", "c"])
    lan.run(0.5)
    lan.cut.add(frozenset(("a", "c")))  # a cannot reach c, b can
    lan.run(1.5)
    assert lan.declared("c") == [] and lan.declared("a") == []
    assert "c" in lan.detectors["a"].unreachable()


def test_two_nodes_declare_without_a_relay_to_ask() -> None:
    lan = Lan(["a", "b"])
    lan.run(0.5)
    lan.answering["b"] = lan.running["b"] = False
    lan.run(1.0)
    (verdict,) = [v for _, _, v in lan.verdicts]
    assert verdict.name == "b" and "no other member to confirm" in verdict.reason


def test_a_liveness_deadline_that_expired_is_a_death() -> None:
    # The speaker's loop is gone (hung) and its deadline passed: the kernel stops answering, though the node
    # is up; the others take over.
    lan = Lan(["a", "b", "c"])
    lan.run(0.5)
    lan.answering["c"] = False
    lan.run(1.0)
    assert sorted(by for _, by in lan.declared("c")) == ["a", "b"]


def test_unreachable_comes_before_dead() -> None:
    lan = Lan(["a", "b", "c"])
    lan.run(0.5)
    lan.answering["c"] = lan.running["c"] = False
    start = lan.now
    while "c" not in lan.detectors["a"].unreachable():
        lan.run(STEP)
    unreachable_at = lan.now - start
    lan.run(1.0)
    dead_at = min(t for t, _ in lan.declared("c")) - start
    assert unreachable_at < dead_at


def test_timing_is_validated_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="interval"):
        DetectorTiming(interval=0)
    with pytest.raises(ValueError, match="unreachable_after"):
        DetectorTiming(unreachable_after=6, dead_after=5)


def test_a_node_back_with_a_new_incarnation_is_watched_again() -> None:
    lan = Lan(["a", "b", "c"])
    lan.run(0.5)
    lan.answering["c"] = lan.running["c"] = False
    lan.run(1.0)
    assert len(lan.declared("c")) == 2
    # c restarts and refutes (incarnation 2): the others watch it afresh, and detect its next death too.
    lan.answering["c"] = lan.running["c"] = True
    for name in ("a", "b"):
        lan.detectors[name].set_peers({n: (lan.addr(n), 2 if n == "c" else 1) for n in lan.names if n != name})
    lan.run(0.5)
    assert "c" in lan.detectors["a"].reachable()
    lan.answering["c"] = lan.running["c"] = False
    lan.run(1.0)
    assert len(lan.declared("c")) == 4


def test_a_declared_node_that_answers_again_is_reported_once_until_it_refutes() -> None:
    lan = Lan(["a", "b", "c"])
    lan.run(0.5)
    lan.answering["c"] = False  # its link is down: nothing reaches it, its kernel answers nothing
    lan.run(1.0)
    assert len(lan.declared("c")) == 2 and not lan.recovered
    lan.answering["c"] = True  # the link is back; c does not know it was declared dead
    lan.run(1.0)
    assert sorted(by for _, by, name in lan.recovered if name == "c") == ["a", "b"]
    assert "c" not in lan.detectors["a"].reachable(), "still dead until it refutes (a new incarnation)"
