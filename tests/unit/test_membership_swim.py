"""The SWIM + Lifeguard state machine (membership/swim.py) and its timers (membership/timing.py).

Most tests run several machines in an in-memory network with a fake clock (`Cluster`): packets and streams are
delivered after a small latency, nodes can be killed, paused (their packets queue up, as in a socket buffer),
restarted, partitioned, or have their inbound UDP dropped. Nothing sleeps; a simulated minute takes milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_fast.membership.messages import (
    DEFAULT_VSN,
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Message,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    User,
    address_bytes,
)
from metallb_fast.membership.swim import (
    EventKind,
    MemberEvent,
    Output,
    PushPullRequest,
    SendPacket,
    StreamPing,
    Swim,
)
from metallb_fast.membership.timing import (
    TIMINGS,
    Timing,
    expected_confirmations,
    push_pull_period,
    remaining_suspicion_time,
    retransmit_limit,
    suspicion_timeout,
)

PORT = 7946
METALLB = TIMINGS["metallb"]
TUNED = TIMINGS["tuned"]
FAST = TIMINGS["fast"]


def host_of(index: int) -> str:
    return f"192.0.2.{index + 1}"


# ---- the simulated network --------------------------------------------------------------------------------------


@dataclass(order=True)
class _Delivery:
    at: float
    serial: int
    action: Callable[[], None] = field(compare=False)


class Cluster:
    """Swim machines wired together through a fake clock and a lossy, partitionable network."""

    def __init__(self, timing: Timing, seed: int = 1, latency: float = 0.001, loss: float = 0.0) -> None:
        self.timing = timing
        self.now = 0.0
        self.latency = latency
        self.loss = loss
        self.rng = random.Random(seed)
        self.seed = seed
        self.nodes: dict[str, Swim] = {}
        self.hosts: dict[str, str] = {}
        self.by_host: dict[str, str] = {}
        self.down: set[str] = set()
        self.paused: dict[str, list[Callable[[], None]]] = {}
        self.udp_blocked_to: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        self.events: list[tuple[float, str, MemberEvent]] = []
        self.packets: list[tuple[float, str, SendPacket]] = []
        self._queue: list[_Delivery] = []
        self._serial = itertools.count()

    # -- topology --

    def add(self, name: str, join: str | None = None) -> Swim:
        if name not in self.hosts:
            host = host_of(len(self.hosts))
            self.hosts[name] = host
            self.by_host[host] = name
        rng = random.Random(f"{self.seed}/{name}/{self.now}")
        swim = Swim(name, address_bytes(self.hosts[name]), PORT, self.timing, rng, self.now)
        self.nodes[name] = swim
        self.down.discard(name)
        if join is not None:
            self.carry(name, swim.join([(self.hosts[join], PORT)], self.now))
        return swim

    def start(self, count: int, spread: float = 1.3) -> list[str]:
        """`count` nodes named n1..; each joins n1 at a random moment, so their probe phases differ."""
        names = [f"n{i + 1}" for i in range(count)]
        self.add(names[0])
        for name in names[1:]:
            self.run_for(self.rng.uniform(0.05, spread))
            self.add(name, join=names[0])
        return names

    def kill(self, name: str) -> None:
        self.down.add(name)
        self.paused.pop(name, None)

    def restart(self, name: str, join: str) -> Swim:
        return self.add(name, join=join)

    def pause(self, name: str) -> None:
        self.paused[name] = []

    def resume(self, name: str) -> None:
        """Packets that queued up while it was stopped are read first, then its timers run (late)."""
        for delivery in self.paused.pop(name, []):
            delivery()

    def reachable(self, src: str, dst: str) -> bool:
        return dst not in self.down and frozenset((src, dst)) not in self.cut

    # -- the event loop --

    def schedule(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, _Delivery(self.now + delay, next(self._serial), action))

    def run_for(self, duration: float) -> None:
        self.run_until(self.now + duration)

    def run_until(self, until: float) -> None:
        for _ in range(5_000_000):
            node_time, name = min(
                ((swim.next_wakeup(), n) for n, swim in self.nodes.items() if self._running(n)),
                default=(float("inf"), ""),
            )
            delivery_time = self._queue[0].at if self._queue else float("inf")
            if min(node_time, delivery_time) > until:
                self.now = until
                return
            if delivery_time <= node_time:
                delivery = heapq.heappop(self._queue)
                self.now = max(self.now, delivery.at)
                delivery.action()
                continue
            self.now = max(self.now, node_time)
            swim = self.nodes[name]
            self.carry(name, swim.tick(self.now))
            assert swim.next_wakeup() > self.now, f"{name}: tick() left a timer due at {swim.next_wakeup()}"
        raise AssertionError("simulation did not converge")

    def _running(self, name: str) -> bool:
        return name not in self.down and name not in self.paused

    # -- carrying out a machine's outputs --

    def carry(self, src: str, outputs: list[Output]) -> None:
        for output in outputs:
            match output:
                case MemberEvent():
                    self.events.append((self.now, src, output))
                case SendPacket():
                    self.packets.append((self.now, src, output))
                    self._send_udp(src, output)
                case PushPullRequest():
                    self.schedule(self.latency, self._stream_task(src, output))
                case StreamPing():
                    self.schedule(self.latency, self._stream_ping_task(src, output))

    def _send_udp(self, src: str, packet: SendPacket) -> None:
        dst = self.by_host.get(packet.host)
        assert packet.port == PORT, packet
        if dst is None or not self.reachable(src, dst) or dst in self.udp_blocked_to or self.rng.random() < self.loss:
            return
        source_host = self.hosts[src]

        def deliver() -> None:
            if dst in self.down:
                return
            if dst in self.paused:
                self.paused[dst].append(deliver_now)
                return
            deliver_now()

        def deliver_now() -> None:
            if dst not in self.down:
                self.carry(dst, self.nodes[dst].handle_packet(source_host, PORT, packet.messages, self.now))

        self.schedule(self.latency, deliver)

    def _stream_task(self, src: str, request: PushPullRequest) -> Callable[[], None]:
        caller = self.nodes[src]

        def run() -> None:
            dst = self.by_host.get(request.host)
            if dst is None or not self.reachable(src, dst) or dst in self.paused:
                self._back_to(
                    src,
                    caller,
                    lambda: caller.push_pull_failed(
                        request.host, request.port, request.join, self.now, "connection refused"
                    ),
                )
                return
            reply, outputs = self.nodes[dst].handle_stream(self.hosts[src], PORT, request.state, self.now)
            self.carry(dst, outputs)
            assert isinstance(reply, PushPull)
            self._back_to(
                src, caller, lambda: caller.push_pull_reply(request.host, request.port, reply, request.join, self.now)
            )

        return run

    def _stream_ping_task(self, src: str, request: StreamPing) -> Callable[[], None]:
        caller = self.nodes[src]

        def run() -> None:
            dst = self.by_host.get(request.host)
            if dst is None or not self.reachable(src, dst) or dst in self.paused:
                return  # refused, or accepted by the kernel and never answered: no report either way
            reply, outputs = self.nodes[dst].handle_stream(self.hosts[src], PORT, request.ping, self.now)
            self.carry(dst, outputs)
            if isinstance(reply, Ack) and reply.seq_no == request.seq_no:
                self._back_to(src, caller, lambda: caller.handle_stream_ack(request.seq_no, self.now))

        return run

    def _back_to(self, src: str, caller: Swim, call: Callable[[], list[Output]]) -> None:
        def run() -> None:
            if self.nodes.get(src) is caller and src not in self.down:
                self.carry(src, call())

        self.schedule(self.latency, run)

    # -- observations --

    def view(self, name: str) -> list[tuple[str, int, NodeState]]:
        return [(m.name, m.incarnation, m.state) for m in self.nodes[name].members()]

    def live(self) -> list[str]:
        return [n for n in self.nodes if n not in self.down]

    def events_about(self, about: str, kind: EventKind, since: float = 0.0) -> list[tuple[float, str, MemberEvent]]:
        return [e for e in self.events if e[0] >= since and e[2].member.name == about and e[2].kind == kind]

    def first_leave(self, observer: str, about: str, since: float) -> tuple[float, str] | None:
        for at, who, event in self.events_about(about, EventKind.LEAVE, since):
            if who == observer:
                return at, event.reason
        return None


def converged(cluster: Cluster, names: list[str]) -> bool:
    views = [cluster.view(n) for n in names]
    return all(v == views[0] for v in views) and [m[0] for m in views[0]] == sorted(names)


def kill_and_time(timing: Timing, count: int, seed: int, victim: str = "n2") -> dict[str, tuple[float, str]]:
    """Crash one node of a settled cluster; per survivor, how long until it declared the victim dead, and why."""
    cluster = Cluster(timing, seed=seed)
    names = cluster.start(count)
    cluster.run_for(5.0 + cluster.rng.uniform(0, 2))
    assert converged(cluster, names)
    killed_at = cluster.now
    cluster.kill(victim)
    survivors = [n for n in names if n != victim]
    cluster.run_for(40.0)
    result = {}
    for name in survivors:
        leave = cluster.first_leave(name, victim, killed_at)
        assert leave is not None, f"{name} never declared {victim} dead"
        result[name] = (leave[0] - killed_at, leave[1])
    return result


# ---- timing formulas ------------------------------------------------------------------------------------------------


def test_suspicion_timeout_follows_memberlist_formula() -> None:
    assert suspicion_timeout(METALLB, 1) == (4.0, 24.0)
    assert suspicion_timeout(METALLB, 3) == (4.0, 24.0)
    assert suspicion_timeout(METALLB, 10) == (4.0, 24.0)
    assert suspicion_timeout(METALLB, 20)[0] == pytest.approx(5.204)  # log10(20) = 1.30103 -> 1.301 (Go's ms cut)
    assert suspicion_timeout(METALLB, 100) == pytest.approx((8.0, 48.0))
    assert suspicion_timeout(TUNED, 5) == pytest.approx((0.4, 2.4))
    assert suspicion_timeout(FAST, 5) == pytest.approx((2.5, 5.0))


def test_confirmations_expected_and_lifeguard_shrinking() -> None:
    assert expected_confirmations(METALLB, 3) == 0  # N - 2 < k: nobody else could confirm
    assert expected_confirmations(METALLB, 4) == 2
    assert expected_confirmations(TUNED, 50) == 0  # SuspicionMult 2: never wait for confirmations
    low, high = suspicion_timeout(METALLB, 5)
    assert remaining_suspicion_time(1, 2, 0.0, low, high) == pytest.approx(11.381)
    assert remaining_suspicion_time(2, 2, 0.0, low, high) == pytest.approx(4.0)
    assert remaining_suspicion_time(2, 2, 5.0, low, high) == pytest.approx(-1.0)  # overdue: fires at once


def test_retransmit_and_push_pull_scaling() -> None:
    assert [retransmit_limit(METALLB, n) for n in (1, 3, 9, 10, 99, 100)] == [4, 4, 4, 8, 8, 12]
    assert push_pull_period(METALLB, 32) == 30.0
    assert push_pull_period(METALLB, 33) == 60.0
    assert push_pull_period(METALLB, 65) == 90.0


def test_timing_rejects_impossible_values_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="probe_interval"):
        Timing(probe_interval=0)
    with pytest.raises(ValueError, match=r"probe_timeout .* longer than probe_interval"):
        Timing(probe_interval=0.1, probe_timeout=0.5)


def test_presets() -> None:
    assert Timing() == METALLB  # memberlist DefaultLANConfig
    assert (TUNED.probe_interval, TUNED.probe_timeout, TUNED.suspicion_mult, TUNED.gossip_interval) == (
        0.2,
        0.1,
        2,
        0.05,
    )
    assert replace(TUNED, probe_interval=1.0, probe_timeout=0.5, suspicion_mult=4, gossip_interval=0.2) == METALLB
    assert FAST.probe_interval == 0.1 and FAST.probe_timeout == 0.05


# ---- convergence ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 5])
def test_cluster_converges_to_one_member_list(count: int) -> None:
    cluster = Cluster(METALLB, seed=count)
    names = cluster.start(count)
    cluster.run_for(3.0)
    assert converged(cluster, names)
    assert all(state == NodeState.ALIVE and inc == 1 for _, inc, state in cluster.view("n1"))
    # Each node announced every other one exactly once, and nobody was ever suspected.
    for name in names:
        joined = {e.member.name for t, who, e in cluster.events if who == name and e.kind == EventKind.JOIN}
        assert joined == set(names) - {name}
    assert not [e for e in cluster.events if e[2].kind in (EventKind.SUSPECT, EventKind.LEAVE)]


def test_convergence_survives_packet_loss() -> None:
    cluster = Cluster(METALLB, seed=7, loss=0.1)
    names = cluster.start(5)
    cluster.run_for(10.0)
    assert converged(cluster, names)


# ---- failure detection ------------------------------------------------------------------------------------------


def test_killed_node_is_dead_on_every_survivor_within_the_bound_n3() -> None:
    # first probe (< 2 s) + 1 s probe deadline + 4 s suspicion (k = 0 at N = 3) + one gossip hop
    delays = []
    for seed in range(8):
        result = kill_and_time(METALLB, 3, seed)
        for delay, _ in result.values():
            assert 4.0 <= delay <= 7.5
            delays.append(delay)
        first = min(result.values())
        assert first[1].endswith("after suspicion (0 confirmations)")
    assert 5.0 <= statistics.median(delays) <= 7.0  # the research measured a 5.8 s median


def test_killed_node_is_dead_with_confirmations_n5() -> None:
    # k = 2: the suspicion starts at 24 s and only reaches 4 s once two other survivors confirm it.
    delays = []
    for seed in range(6):
        result = kill_and_time(METALLB, 5, seed)
        delays += [delay for delay, _ in result.values()]
        first = min(result.values())
        assert first[1].endswith("after suspicion (2 confirmations)"), first
    assert min(delays) >= 4.0 and max(delays) <= 10.0
    assert statistics.median(delays) <= 8.0  # measured: 6.8 s median


@pytest.mark.parametrize(("timing", "low", "high"), [(TUNED, 0.4, 1.2), (FAST, 2.5, 3.2)], ids=["tuned", "fast"])
def test_faster_presets_detect_as_the_formula_predicts(timing: Timing, low: float, high: float) -> None:
    delays = []
    for seed in range(8):
        delays += [delay for delay, _ in kill_and_time(timing, 3, seed).values()]
    assert low <= min(delays) and max(delays) <= high
    expected = suspicion_timeout(timing, 3)[0] + timing.probe_interval
    assert expected <= statistics.median(delays) <= expected + 2 * timing.probe_interval + timing.gossip_interval


@pytest.mark.parametrize(
    ("timing", "pause"), [(METALLB, 2.5), (FAST, 0.6), (FAST, 2.0)], ids=["metallb-2.5s", "fast-0.6s", "fast-2s"]
)
def test_paused_node_refutes_and_is_never_declared_dead(timing: Timing, pause: float) -> None:
    for seed in range(4):
        cluster = Cluster(timing, seed=seed)
        names = cluster.start(3)
        cluster.run_for(4.0)
        paused_at = cluster.now
        cluster.pause("n2")
        cluster.run_for(pause)
        cluster.resume("n2")
        cluster.run_for(5.0)
        assert cluster.events_about("n2", EventKind.SUSPECT, paused_at), "the pause went unnoticed: test is void"
        assert not cluster.events_about("n2", EventKind.LEAVE, paused_at)
        assert cluster.nodes["n2"].local.incarnation > 1  # it refuted
        assert converged(cluster, names)


def test_tuned_metallb_flaps_on_a_one_second_pause() -> None:
    # What the research measured with Go peers and why "fast" keeps a long suspicion: a leave and a re-join.
    cluster = Cluster(TUNED, seed=3)
    names = cluster.start(3)
    cluster.run_for(3.0)
    paused_at = cluster.now
    cluster.pause("n2")
    cluster.run_for(1.0)
    cluster.resume("n2")
    cluster.run_for(3.0)
    assert {who for _, who, _ in cluster.events_about("n2", EventKind.LEAVE, paused_at)} == {"n1", "n3"}
    assert {who for _, who, _ in cluster.events_about("n2", EventKind.JOIN, paused_at)} == {"n1", "n3"}
    assert converged(cluster, names)


def test_graceful_leave_is_seen_quickly_as_left() -> None:
    cluster = Cluster(METALLB, seed=4)
    names = cluster.start(4)
    cluster.run_for(3.0)
    left_at = cluster.now
    cluster.carry("n3", cluster.nodes["n3"].leave(cluster.now))
    cluster.run_for(1.0)
    for name in set(names) - {"n3"}:
        leave = cluster.first_leave(name, "n3", left_at)
        assert leave is not None and leave[1] == "left"
        assert leave[0] - left_at < 0.5
        assert cluster.nodes[name].member("n3").state == NodeState.LEFT
    assert cluster.nodes["n3"].leave_finished
    assert cluster.nodes["n3"].handle_packet(host_of(0), PORT, [Ping(1, "n3")], cluster.now) == []
    cluster.run_for(5.0)
    assert not cluster.events_about("n3", EventKind.SUSPECT, left_at)  # nobody probes a left node


def test_restarted_node_is_readmitted_after_refuting() -> None:
    cluster = Cluster(METALLB, seed=5)
    names = cluster.start(3)
    cluster.run_for(3.0)
    cluster.kill("n2")
    cluster.run_for(10.0)
    assert all(cluster.nodes[n].member("n2").state == NodeState.DEAD for n in ("n1", "n3"))
    dead_incarnation = cluster.nodes["n1"].member("n2").incarnation
    restarted_at = cluster.now
    fresh = cluster.restart("n2", join="n1")
    assert fresh.local.incarnation == 1
    cluster.run_for(3.0)
    assert fresh.local.incarnation > dead_incarnation  # it learnt it was dead and refuted
    for name in ("n1", "n3"):
        assert [e.reason for t, who, e in cluster.events_about("n2", EventKind.JOIN, restarted_at) if who == name]
    assert converged(cluster, names)


def test_push_pull_heals_a_node_that_misses_all_gossip() -> None:
    # n3 receives no UDP at all: gossip about n4 never reaches it, yet TCP pings keep it from being suspected, and
    # the periodic push-pull (TCP) teaches it about n4.
    cluster = Cluster(replace(METALLB, push_pull_interval=5.0), seed=6)
    cluster.start(3)
    cluster.run_for(3.0)
    cluster.udp_blocked_to.add("n3")
    cluster.run_for(0.5)
    joined_at = cluster.now
    cluster.add("n4", join="n1")
    cluster.run_for(1.0)
    assert cluster.nodes["n3"].member("n4") is None
    assert cluster.nodes["n2"].member("n4") is not None
    cluster.run_for(15.0)
    assert cluster.nodes["n3"].member("n4") is not None
    assert not cluster.events_about("n3", EventKind.LEAVE, joined_at)
    assert cluster.nodes["n1"].stats.tcp_only_acks > 0


def test_declare_dead_gossips_dead_with_the_current_incarnation() -> None:
    cluster = Cluster(FAST, seed=8)
    cluster.start(3)
    cluster.run_for(2.0)
    incarnation = cluster.nodes["n1"].member("n3").incarnation
    cluster.kill("n3")
    declared_at = cluster.now
    outputs = cluster.nodes["n1"].declare_dead("n3", cluster.now, "data-path heartbeat lost")
    cluster.carry("n1", outputs)
    sent = [m for o in outputs if isinstance(o, SendPacket) for m in o.messages]
    assert Dead(incarnation, "n3", "n1") in sent
    assert [(e.kind, e.reason) for e in outputs if isinstance(e, MemberEvent)] == [
        (EventKind.LEAVE, "data-path heartbeat lost")
    ]
    cluster.run_for(0.05)
    assert cluster.first_leave("n2", "n3", declared_at) == (pytest.approx(declared_at, abs=0.01), "declared dead by n1")
    assert cluster.nodes["n1"].declare_dead("n3", cluster.now, "again") == []  # already dead


def test_a_wrong_verdict_is_refuted_by_the_accused() -> None:
    cluster = Cluster(FAST, seed=9)
    names = cluster.start(3)
    cluster.run_for(2.0)
    cluster.carry("n1", cluster.nodes["n1"].declare_dead("n3", cluster.now, "heartbeat lost"))
    cluster.run_for(2.0)
    assert cluster.nodes["n3"].local.incarnation > 1
    assert converged(cluster, names)


# ---- single machine against a scripted peer ---------------------------------------------------------------------


def peer_state(name: str, index: int, incarnation: int = 1, state: NodeState = NodeState.ALIVE) -> PushNodeState:
    return PushNodeState(name, address_bytes(host_of(index)), PORT, incarnation, state)


def machine(timing: Timing = METALLB, peers: int = 2, seed: int = 0) -> Swim:
    """n1 at 192.0.2.1 that already knows n2.. via a push-pull (nobody will answer it)."""
    swim = Swim("n1", address_bytes(host_of(0)), PORT, timing, random.Random(seed), 0.0)
    state = PushPull(False, tuple(peer_state(f"n{i + 1}", i) for i in range(1, peers + 1)))
    swim.push_pull_reply(host_of(1), PORT, state, False, 0.0)
    return swim


def packets(outputs: list[Output]) -> list[SendPacket]:
    return [o for o in outputs if isinstance(o, SendPacket)]


def drive(swim: Swim, until: float, start: float = 0.0) -> list[Output]:
    outputs: list[Output] = []
    now = start
    while (wake := swim.next_wakeup()) <= until:
        now = max(now, wake)
        outputs += swim.tick(now)
    return outputs


def test_ping_is_answered_at_its_source_address_and_a_ping_for_another_name_is_dropped() -> None:
    swim = machine()
    assert swim.handle_packet(host_of(1), 40000, [Ping(7, "somebody-else")], 0.5) == []
    assert swim.stats.pings_for_other_node == 1
    [reply] = packets(swim.handle_packet(host_of(1), 40000, [Ping(7, "n1", address_bytes(host_of(1)), PORT)], 0.5))
    assert (reply.host, reply.port, reply.messages[0], reply.crc) == (host_of(1), PORT, Ack(7), False)
    [reply] = packets(swim.handle_packet(host_of(1), 40000, [Ping(8, "")], 0.5))
    assert (reply.host, reply.port, reply.messages[0]) == (host_of(1), 40000, Ack(8))
    reply, _ = swim.handle_stream(host_of(1), 40000, Ping(9, "n1"), 0.5)
    assert reply == Ack(9)
    assert swim.handle_stream(host_of(1), 40000, Ping(9, "other"), 0.5) == (None, [])


def test_conflicting_address_is_ignored() -> None:
    swim = machine()
    impostor = Alive(5, "n2", address_bytes("198.51.100.9"), PORT)
    assert swim.handle_packet(host_of(1), PORT, [impostor], 1.0) == []
    assert swim.member("n2").addr == address_bytes(host_of(1)) and swim.member("n2").incarnation == 1
    assert swim.stats.conflicting_addresses == 1


def test_a_left_member_does_not_take_an_address_it_could_never_be_probed_at() -> None:
    # Found by test_random_input_never_raises_and_never_loses_self: a left member may change its address (as in
    # memberlist), but an empty one then made every probe of it a packet to host "".
    swim = machine()
    swim.push_pull_reply(host_of(1), PORT, PushPull(False, (peer_state("n2", 1, 1, NodeState.LEFT),)), False, 0.5)
    swim.handle_packet(host_of(1), PORT, [Alive(2, "n2", b"", PORT)], 1.0)
    assert swim.member("n2").addr == address_bytes(host_of(1)) and swim.member("n2").state == NodeState.LEFT
    assert swim.stats.alive_rejected == 1
    assert all(p.host for p in packets(drive(swim, 5.0, 1.0)))
    swim.handle_packet(host_of(1), PORT, [Alive(2, "n2", address_bytes(host_of(4)), PORT)], 1.0)
    assert swim.member("n2").addr == address_bytes(host_of(4))  # a real new address is still taken


def test_alive_with_broken_protocol_versions_is_ignored() -> None:
    swim = machine()
    for vsn in (bytes([0, 5, 2, 0, 0, 0]), bytes([1, 0, 2, 0, 0, 0]), bytes([3, 2, 2, 0, 0, 0]), b"\x01\x05"):
        swim.handle_packet(host_of(5), PORT, [Alive(1, "n9", address_bytes(host_of(8)), PORT, vsn=vsn)], 1.0)
    assert swim.member("n9") is None
    swim.handle_packet(host_of(5), PORT, [Alive(1, "n9", address_bytes(host_of(8)), PORT)], 1.0)
    assert swim.member("n9").state == NodeState.ALIVE


def test_accusations_about_ourselves_are_refuted_with_a_higher_incarnation() -> None:
    swim = machine()
    outputs = swim.handle_packet(host_of(1), PORT, [Suspect(1, "n1", "n2")], 1.0)
    assert swim.local.incarnation == 2 and swim.local.state == NodeState.ALIVE
    assert [e.kind for e in outputs if isinstance(e, MemberEvent)] == [EventKind.REFUTE]
    swim.handle_packet(host_of(1), PORT, [Dead(7, "n1", "n2")], 1.1)
    assert swim.local.incarnation == 8 and swim.local.state == NodeState.ALIVE
    swim.handle_packet(host_of(1), PORT, [Alive(8, "n1", address_bytes(host_of(0)), PORT, vsn=DEFAULT_VSN)], 1.2)
    assert swim.local.incarnation == 8  # our own alive echoed back: nothing to refute
    swim.handle_packet(host_of(1), PORT, [Alive(8, "n1", address_bytes(host_of(0)), PORT, meta=b"x")], 1.3)
    assert swim.local.incarnation == 9  # same incarnation, different content: a stale claim about us
    assert swim.stats.refutations == 3 and swim.health_score == 3
    gossip = [m for p in packets(drive(swim, 1.5, 1.3)) for m in p.messages if isinstance(m, Alive)]
    assert Alive(9, "n1", address_bytes(host_of(0)), PORT) in gossip
    assert swim.members()[0].name == "n1"


def test_incarnation_rules_for_peers() -> None:
    swim = machine()
    swim.handle_packet(host_of(1), PORT, [Suspect(0, "n2", "n3")], 1.0)  # older than known: ignored
    assert swim.member("n2").state == NodeState.ALIVE
    events = swim.handle_packet(host_of(2), PORT, [Suspect(1, "n2", "n3")], 1.0)
    assert swim.member("n2").state == NodeState.SUSPECT
    assert [(e.kind, e.reason) for e in events if isinstance(e, MemberEvent)] == [
        (EventKind.SUSPECT, "suspected by n3")
    ]
    swim.handle_packet(host_of(1), PORT, [Alive(1, "n2", address_bytes(host_of(1)), PORT)], 1.1)  # not newer
    assert swim.member("n2").state == NodeState.SUSPECT
    events = swim.handle_packet(host_of(1), PORT, [Alive(2, "n2", address_bytes(host_of(1)), PORT)], 1.2)
    assert swim.member("n2").state == NodeState.ALIVE and swim.stats.suspicions_refuted == 1
    assert [e.kind for e in events if isinstance(e, MemberEvent)] == [EventKind.REFUTE]
    swim.handle_packet(host_of(2), PORT, [Dead(1, "n2", "n3")], 1.3)  # older than the refutation
    assert swim.member("n2").state == NodeState.ALIVE
    events = swim.handle_packet(host_of(2), PORT, [Dead(2, "n2", "n3")], 1.4)
    assert swim.member("n2").state == NodeState.DEAD
    assert [(e.kind, e.reason) for e in events if isinstance(e, MemberEvent)] == [
        (EventKind.LEAVE, "declared dead by n3")
    ]
    events = swim.handle_packet(host_of(2), PORT, [Dead(1, "n3", "n3")], 1.5)
    assert swim.member("n3").state == NodeState.LEFT
    assert [(e.kind, e.reason) for e in events if isinstance(e, MemberEvent)] == [(EventKind.LEAVE, "left")]
    assert [m.name for m in swim.members()] == ["n1"]
    events = swim.handle_packet(host_of(1), PORT, [Alive(3, "n2", address_bytes(host_of(1)), PORT)], 1.6)
    assert [(e.kind, e.reason) for e in events if isinstance(e, MemberEvent)] == [
        (EventKind.JOIN, "alive again (incarnation 3)")
    ]


def test_left_node_may_come_back_with_a_new_address_but_a_dead_one_may_not() -> None:
    swim = machine()
    swim.handle_packet(host_of(2), PORT, [Dead(1, "n2", "n3"), Dead(1, "n3", "n3")], 1.0)
    swim.handle_packet(host_of(7), PORT, [Alive(2, "n2", address_bytes(host_of(7)), PORT)], 1.1)
    swim.handle_packet(host_of(8), PORT, [Alive(2, "n3", address_bytes(host_of(8)), PORT)], 1.1)
    assert swim.member("n2").state == NodeState.DEAD  # DeadNodeReclaimTime 0: never
    assert swim.member("n3").state == NodeState.ALIVE and swim.member("n3").addr == address_bytes(host_of(8))


def test_failed_probe_goes_indirect_then_tcp_then_suspects() -> None:
    swim = machine(peers=3)
    first = drive(swim, 1.0)
    [ping_packet] = [p for p in packets(first) if isinstance(p.messages[0], Ping)]
    ping = ping_packet.messages[0]
    target = ping.node
    assert (ping.source_addr, ping.source_port, ping.source_node) == (address_bytes(host_of(0)), PORT, "n1")
    at_timeout = drive(swim, 1.5, 1.0)
    indirect = [p.messages[0] for p in packets(at_timeout) if isinstance(p.messages[0], IndirectPing)]
    assert len(indirect) == 2 and all(r.node == target and r.seq_no == ping.seq_no and r.nack for r in indirect)
    [tcp] = [o for o in at_timeout if isinstance(o, StreamPing)]
    assert (tcp.ping, tcp.deadline) == (ping, 2.0)
    # One relay nacks: the other's silence is held against our own health (expected 2 nacks, got 1).
    swim.handle_packet(host_of(1), PORT, [Nack(ping.seq_no)], 1.8)
    at_deadline = drive(swim, 2.0, 1.5)
    [suspect] = [e for e in at_deadline if isinstance(e, MemberEvent)]
    assert (suspect.kind, suspect.member.name, suspect.reason) == (EventKind.SUSPECT, target, "failed probe")
    assert swim.health_score == 1
    # The next probe's deadline is stretched x2 (Lifeguard), its ack timeout is not.
    drive(swim, 2.0, 2.0)
    nxt = [o for o in drive(swim, 2.5, 2.0) if isinstance(o, StreamPing)]
    assert nxt and nxt[0].deadline == pytest.approx(4.0)


def test_a_probe_answered_over_tcp_only_is_not_a_failure() -> None:
    swim = machine(peers=1)
    [tcp] = [o for o in drive(swim, 1.5) if isinstance(o, StreamPing)]
    swim.handle_stream_ack(tcp.seq_no, 1.6)
    outputs = drive(swim, 2.0, 1.5)
    assert not [e for e in outputs if isinstance(e, MemberEvent)]
    assert swim.stats.tcp_only_acks == 1 and swim.member("n2").state == NodeState.ALIVE


def test_probe_round_robin_covers_every_live_peer_and_suspects_are_probed_with_the_accusation() -> None:
    swim = machine(peers=4)
    swim.handle_packet(host_of(2), PORT, [Suspect(1, "n3", "n4")], 0.1)
    probed = []
    for second in range(1, 5):
        for p in packets(drive(swim, float(second), second - 1.0)):
            ping = p.messages[0]
            if not isinstance(ping, Ping):
                continue
            probed.append(ping.node)
            if ping.node == "n3":
                assert p.messages[1] == Suspect(1, "n3", "n1") and p.crc
            # answer every probe, so that nobody else becomes suspect
            swim.handle_packet(p.host, PORT, [Ack(ping.seq_no)], second + 0.01)
    assert sorted(probed) == ["n2", "n3", "n4", "n5"]
    assert swim.stats.probe_acks == 4 and swim.health_score == 0


def test_sequence_numbers_wrap_at_32_bits() -> None:
    swim = machine(peers=1)
    swim._seq = 2**32 - 1  # as if this node had sent four billion pings
    [ping_packet] = [p for p in packets(drive(swim, 1.0)) if isinstance(p.messages[0], Ping)]
    assert ping_packet.messages[0].seq_no == 0
    swim.handle_packet(host_of(1), PORT, [Ack(0)], 1.01)
    assert swim.stats.probe_acks == 1


def test_indirect_ping_relay_forwards_the_ack_or_nacks() -> None:
    swim = machine()
    request = IndirectPing(
        40,
        address_bytes(host_of(2)),
        PORT,
        "n3",
        nack=True,
        source_addr=address_bytes(host_of(1)),
        source_port=PORT,
        source_node="n2",
    )
    [relayed] = packets(swim.handle_packet(host_of(1), 5555, [request], 1.0))
    own = relayed.messages[0]
    assert (relayed.host, own.node, own.source_node) == (host_of(2), "n3", "n1") and own.seq_no != 40
    [forwarded] = packets(swim.handle_packet(host_of(2), PORT, [Ack(own.seq_no)], 1.1))
    assert (forwarded.host, forwarded.port, forwarded.messages[0]) == (host_of(1), PORT, Ack(40))
    assert not [p for p in packets(drive(swim, 1.6, 1.1)) if isinstance(p.messages[0], Nack)]
    # A second request nobody answers: a nack after probe_timeout, to the requester.
    [relayed] = packets(swim.handle_packet(host_of(1), 5555, [replace(request, seq_no=41)], 2.0))
    nacks = [p for p in packets(drive(swim, 2.6, 2.0)) if isinstance(p.messages[0], Nack)]
    assert [(p.host, p.messages[0]) for p in nacks] == [(host_of(1), Nack(41))]


def test_gossip_retransmit_limit_is_respected() -> None:
    swim = machine(peers=3)  # n1..n4
    fresh = Alive(1, "n9", address_bytes(host_of(8)), PORT)
    swim.handle_packet(host_of(1), PORT, [fresh], 0.0)
    sent = [m for p in packets(drive(swim, 0.9)) for m in p.messages]
    assert sent.count(fresh) == retransmit_limit(METALLB, 5) == 4
    assert sent.count(fresh) == len([m for m in sent if m == fresh])


def test_newer_broadcast_about_a_node_replaces_the_older_one() -> None:
    swim = machine(peers=3)
    swim.handle_packet(host_of(1), PORT, [Suspect(1, "n3", "n2")], 0.0)
    swim.handle_packet(host_of(2), PORT, [Alive(2, "n3", address_bytes(host_of(2)), PORT)], 0.0)
    sent = [m for p in packets(drive(swim, 0.9)) for m in p.messages]
    assert Suspect(1, "n3", "n2") not in sent and Alive(2, "n3", address_bytes(host_of(2)), PORT) in sent


def test_push_pull_merge_demotes_dead_to_suspect_and_answers_with_our_state() -> None:
    swim = machine()
    remote = PushPull(True, (peer_state("n2", 1, 1, NodeState.DEAD), peer_state("n7", 6)))
    reply, outputs = swim.handle_stream(host_of(6), 33333, remote, 1.0)
    assert isinstance(reply, PushPull) and reply.join
    assert {n.name for n in reply.nodes} == {"n1", "n2", "n3"}  # our state before the merge
    assert swim.member("n2").state == NodeState.SUSPECT
    assert swim.member("n7").state == NodeState.ALIVE
    kinds = sorted((e.kind, e.member.name) for e in outputs if isinstance(e, MemberEvent))
    assert kinds == [(EventKind.JOIN, "n7"), (EventKind.SUSPECT, "n2")]


def test_push_pull_with_incompatible_protocol_versions_is_refused() -> None:
    swim = machine()
    odd = replace(peer_state("n8", 7), vsn=bytes([1, 5, 6, 0, 0, 0]))  # speaks 6, but we only understand <= 5
    swim.push_pull_reply(host_of(7), PORT, PushPull(False, (odd, peer_state("n9", 8))), False, 1.0)
    assert swim.member("n8") is None and swim.member("n9") is None
    assert "protocol version (6) is incompatible" in swim.stats.last_merge_error


def test_dead_nodes_are_reaped_after_gossip_to_the_dead_at_the_next_wrap() -> None:
    swim = machine(peers=2)
    swim.handle_packet(host_of(2), PORT, [Dead(1, "n3", "n2")], 0.5)
    assert swim.member("n3").state == NodeState.DEAD
    drive(swim, 30.4)
    assert swim.member("n3") is not None  # still listed (and gossiped to) for 30 s
    drive(swim, 32.0, 30.4)
    assert swim.member("n3") is None


def test_join_sends_a_join_push_pull_to_every_address() -> None:
    swim = Swim("n1", address_bytes(host_of(0)), PORT, METALLB, random.Random(0), 0.0)
    outputs = swim.join([(host_of(1), PORT), (host_of(2), 7947)], 0.0)
    assert [(o.host, o.port, o.join) for o in outputs] == [(host_of(1), PORT, True), (host_of(2), 7947, True)]
    assert outputs[0].state.nodes == (PushNodeState("n1", address_bytes(host_of(0)), PORT, 1, NodeState.ALIVE),)
    assert swim.push_pull_failed(host_of(1), PORT, True, 0.1, "connection refused") == []
    assert [m.name for m in swim.members()] == ["n1"]


def test_a_stalled_machine_does_not_accuse_peers_it_could_not_hear() -> None:
    swim = machine(peers=1)
    drive(swim, 1.0)  # a ping to n2 is out
    outputs = swim.tick(5.0)  # we were stopped for four seconds
    assert not [e for e in outputs if isinstance(e, MemberEvent)]
    assert swim.stats.probes_abandoned == 1 and swim.member("n2").state == NodeState.ALIVE


# ---- random input from a fake peer ------------------------------------------------------------------------------

NAMES = st.sampled_from(["n1", "n2", "n3", "n4", ""])
U32S = st.one_of(st.integers(0, 5), st.integers(0, 2**32 - 1), st.integers(-3, 2**33))
ADDRS = st.sampled_from([address_bytes(host_of(1)), address_bytes(host_of(5)), address_bytes("2001:db8::1"), b"", b"x"])
PORTS = st.one_of(st.just(PORT), st.integers(-1, 70000))
VSNS = st.one_of(st.just(DEFAULT_VSN), st.binary(max_size=7))
STATES = st.sampled_from(list(NodeState))

MESSAGES: st.SearchStrategy[Message] = st.one_of(
    st.builds(Ping, U32S, NAMES, ADDRS, PORTS, NAMES),
    st.builds(IndirectPing, U32S, ADDRS, PORTS, NAMES, st.booleans(), ADDRS, PORTS, NAMES),
    st.builds(Ack, U32S),
    st.builds(Nack, U32S),
    st.builds(Suspect, U32S, NAMES, NAMES),
    st.builds(Alive, U32S, NAMES, ADDRS, PORTS, st.binary(max_size=3), VSNS),
    st.builds(Dead, U32S, NAMES, NAMES),
    st.builds(User, st.binary(max_size=4)),
)
PUSH_PULLS = st.builds(
    PushPull,
    st.booleans(),
    st.lists(st.builds(PushNodeState, NAMES, ADDRS, PORTS, U32S, STATES, st.binary(max_size=2), VSNS), max_size=4).map(
        tuple
    ),
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("packet"), st.lists(MESSAGES, min_size=1, max_size=4)),
        st.tuples(st.just("stream"), st.one_of(PUSH_PULLS, MESSAGES)),
        st.tuples(st.just("reply"), PUSH_PULLS),
        st.tuples(st.just("tick"), st.floats(0.0, 3.0)),
        st.tuples(st.just("verdict"), NAMES),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, timing=st.sampled_from([METALLB, FAST]))
def test_random_input_never_raises_and_never_loses_self(steps: list[tuple[str, object]], timing: Timing) -> None:
    swim = machine(timing)
    now = 0.0
    for kind, value in steps:
        now += 0.01
        if kind == "packet":
            outputs = swim.handle_packet(host_of(1), PORT, value, now)  # type: ignore[arg-type]
        elif kind == "stream":
            _, outputs = swim.handle_stream(host_of(1), PORT, value, now)  # type: ignore[arg-type]
        elif kind == "reply":
            outputs = swim.push_pull_reply(host_of(1), PORT, value, False, now)  # type: ignore[arg-type]
        elif kind == "verdict":
            outputs = swim.declare_dead(str(value), now, "test")
        else:
            outputs = drive(swim, now + float(value), now)  # type: ignore[arg-type]
            now += float(value)  # type: ignore[arg-type]
        for output in outputs:
            if isinstance(output, SendPacket):
                assert output.host and 0 < output.port <= 0xFFFF
        assert swim.next_wakeup() > now - 10
        members = swim.members()
        assert [m for m in members if m.name == "n1" and m.state == NodeState.ALIVE]
        assert swim.local.addr == address_bytes(host_of(0))
