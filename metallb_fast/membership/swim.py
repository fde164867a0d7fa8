"""SWIM + Lifeguard as hashicorp/memberlist runs it, as a pure state machine.

No sockets, threads, clocks or global randomness: every call takes `now` (monotonic seconds) and returns the
outputs the I/O must carry out (packets to send, streams to open, events to report). Randomness comes from the
injected `random.Random`, so a seeded machine is fully reproducible.

The rules follow memberlist's state.go / suspicion.go / awareness.go / queue.go, because Go peers judge us by
them: incarnation comparisons, refutation of accusations about ourselves, dead vs left, suspicion timers with
Lifeguard confirmations, the round-robin probe order, piggybacked gossip with a retransmit limit, push-pull merges
(dead demoted to suspect) and the protocol-version sanity checks. Where this module departs from Go it says so.

Driving it: call `tick(now)` whenever `now >= next_wakeup()`, `handle_packet` for every UDP packet (decoded into
messages), `handle_stream` for every inbound TCP stream, and report the outcome of each `PushPullRequest` and
`StreamPing` back. After the process was stalled, feed the packets that queued up before calling `tick`: a
probe or suspicion whose deadline was overslept by more than a probe interval is not held against the peer.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .messages import (
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
    address_text,
)
from .timing import (
    Timing,
    expected_confirmations,
    push_pull_period,
    remaining_suspicion_time,
    retransmit_limit,
    suspicion_timeout,
)

U32 = 0xFFFFFFFF
# Packet budget for piggybacked gossip (net.go / security.go): compound header (type + count), each part's u16
# length, and AES-GCM's version + nonce + tag. We do not know here whether the I/O encrypts, so assume it does.
COMPOUND_HEADER_OVERHEAD = 2
COMPOUND_PART_OVERHEAD = 2
ENCRYPT_OVERHEAD = 1 + 12 + 16
RTT_SAMPLES = 32
_ZERO_VSN = bytes(6)


@dataclass(frozen=True)
class Member:
    """One node as this machine knows it (memberlist's nodeState)."""

    name: str
    addr: bytes
    port: int
    incarnation: int
    state: NodeState
    state_changed: float
    meta: bytes = b""
    vsn: bytes = DEFAULT_VSN

    @property
    def host(self) -> str:
        return address_text(self.addr)

    @property
    def pmax(self) -> int:
        """The highest protocol version it understands: >= 3 TCP ping, >= 4 nack, >= 5 CRC."""
        return self.vsn[1] if len(self.vsn) > 1 else 0

    @property
    def dead_or_left(self) -> bool:
        return self.state in (NodeState.DEAD, NodeState.LEFT)


class EventKind(StrEnum):
    """What changed about a member. JOIN/LEAVE/UPDATE are memberlist's NotifyJoin/NotifyLeave/NotifyUpdate (what
    MetalLB force-syncs on); SUSPECT and REFUTE have no Go counterpart and exist for logs and metrics only."""

    JOIN = "join"  # new, or back from dead/left
    LEAVE = "leave"  # dead or left: no longer in members()
    UPDATE = "update"  # metadata changed
    SUSPECT = "suspect"  # still a member, but accused
    REFUTE = "refute"  # a suspicion cleared by a newer incarnation (ours or a peer's)


@dataclass(frozen=True)
class MemberEvent:
    kind: EventKind
    member: Member
    reason: str


@dataclass(frozen=True)
class SendPacket:
    """One UDP packet: the I/O encodes the messages (a compound when several), adds a CRC when `crc`, and sends."""

    host: str
    port: int
    messages: tuple[Message, ...]
    crc: bool


@dataclass(frozen=True)
class PushPullRequest:
    """Dial TCP, send `state`, read the peer's PushPull, then call push_pull_reply (or push_pull_failed)."""

    host: str
    port: int
    join: bool
    state: PushPull


@dataclass(frozen=True)
class StreamPing:
    """A TCP fallback ping during a failed probe: dial, send `ping`, read the ack before `deadline`; on success
    call handle_stream_ack(seq_no, now). A refused dial or a timeout needs no report."""

    host: str
    port: int
    ping: Ping
    seq_no: int
    deadline: float


Output = SendPacket | PushPullRequest | StreamPing | MemberEvent


@dataclass
class SwimStats:
    """Counters for metrics; the machine only ever increments them."""

    probes_sent: int = 0
    probe_acks: int = 0  # probes answered (directly, indirectly or over TCP)
    probe_failures: int = 0  # probes that ended in a suspicion
    probes_abandoned: int = 0  # overslept deadlines (we were stalled), not held against the peer
    indirect_pings_sent: int = 0
    stream_pings_sent: int = 0
    tcp_only_acks: int = 0  # reachable over TCP only: "network may be misconfigured"
    nacks_received: int = 0
    suspicions_raised: int = 0  # suspicions started by our own failed probes
    suspicions_refuted: int = 0  # suspects that came back with a newer incarnation
    refutations: int = 0  # accusations about ourselves we refuted (our incarnation went up)
    deaths_declared: int = 0  # our own suspicion timers that expired, plus declare_dead
    pings_for_other_node: int = 0
    conflicting_addresses: int = 0
    alive_rejected: int = 0  # bad protocol versions or unusable addresses
    invalid_messages: int = 0  # out-of-range fields: dropped
    push_pulls_sent: int = 0
    push_pulls_received: int = 0
    push_pull_failures: int = 0
    merges_refused: int = 0
    last_merge_error: str = ""
    health_score: int = 0
    rtts: deque[float] = field(default_factory=lambda: deque(maxlen=RTT_SAMPLES))
    received: Counter[str] = field(default_factory=Counter)  # by message class name
    sent: Counter[str] = field(default_factory=Counter)


# ---- internal records -------------------------------------------------------------------------------------------


@dataclass
class _Probe:
    target: Member  # a snapshot: the suspicion uses the incarnation we probed
    ping: Ping
    sent: float
    timeout_at: float  # no direct ack by then: indirect pings + TCP ping
    deadline: float  # no ack at all by then: the probe failed
    indirect_started: bool = False
    expected_nacks: int = 0
    nacks: int = 0
    tcp_ok: bool = False


@dataclass
class _Relay:
    """An indirect ping we run for someone else: forward the ack under their sequence number, or nack."""

    seq_no: int
    host: str
    port: int
    expires: float
    nack: bool


@dataclass
class _Suspicion:
    """suspicion.go: a timer that starts at `high` (or `low` when k == 0) and shrinks with confirmations."""

    k: int
    low: float
    high: float
    start: float
    deadline: float
    confirmations: set[str]
    count: int = 0

    @classmethod
    def begin(cls, accuser: str, k: int, low: float, high: float, now: float) -> _Suspicion:
        return cls(k, low, high, now, now + (high if k >= 1 else low), {accuser})

    def confirm(self, accuser: str, now: float) -> bool:
        """A new independent accuser: shorten the timer. False when not new (nothing to re-gossip)."""
        if self.count >= self.k or accuser in self.confirmations:
            return False
        self.confirmations.add(accuser)
        self.count += 1
        remaining = remaining_suspicion_time(self.count, self.k, now - self.start, self.low, self.high)
        self.deadline = now + max(remaining, 0.0)
        return True


@dataclass
class _Broadcast:
    node: str
    message: Message
    size: int
    serial: int
    transmits: int = 0


class _BroadcastQueue:
    """queue.go's TransmitLimitedQueue for named broadcasts: one entry per node name (a newer one replaces it),
    handed out fewest-transmits first, then largest, then newest, until each reached the retransmit limit."""

    def __init__(self) -> None:
        self._items: dict[str, _Broadcast] = {}
        self._serial = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, node: str) -> bool:
        return node in self._items

    def queue(self, node: str, message: Message) -> None:
        self._serial += 1
        self._items[node] = _Broadcast(node, message, estimated_size(message), self._serial)

    def take(self, overhead: int, limit: int, transmit_limit: int) -> list[Message]:
        taken: list[_Broadcast] = []
        taken_nodes: set[str] = set()
        used = 0
        while True:
            free = limit - used - overhead
            if free <= 0:
                break
            fitting = [b for b in self._items.values() if b.size <= free and b.node not in taken_nodes]
            if not fitting:
                break
            best = min(fitting, key=lambda b: (b.transmits, -b.size, -b.serial))
            taken.append(best)
            taken_nodes.add(best.node)
            used += overhead + best.size
        for item in taken:
            item.transmits += 1
            if item.transmits >= transmit_limit:
                del self._items[item.node]
        return [item.message for item in taken]


def estimated_size(message: Message) -> int:
    """A generous estimate of a message's encoded size (type byte + msgpack map with Go field names)."""
    match message:
        case Alive():
            return 64 + len(message.node) + len(message.addr) + len(message.meta) + len(message.vsn)
        case Suspect() | Dead():
            return 36 + len(message.node) + len(message.from_)
        case Ping():
            return 48 + len(message.node) + len(message.source_addr) + len(message.source_node)
        case IndirectPing():
            return 80 + len(message.node) + len(message.target) + len(message.source_addr) + len(message.source_node)
        case Ack():
            return 24 + len(message.payload)
        case _:
            return 80


# ---- the machine ------------------------------------------------------------------------------------------------


class Swim:
    """One memberlist node's view of the cluster and its protocol duties."""

    def __init__(
        self,
        name: str,
        addr: bytes,
        port: int,
        timing: Timing,
        rng: random.Random,
        now: float,
        meta: bytes = b"",
    ) -> None:
        if not name:
            raise ValueError("Swim name is empty: memberlist needs the node's name (MetalLB uses the k8s node name)")
        if len(addr) not in (4, 16):
            raise ValueError(f"Swim addr {addr!r} is {len(addr)} bytes; memberlist carries 4 (IPv4) or 16 (IPv6)")
        if not 0 < port <= 0xFFFF:
            raise ValueError(f"Swim port {port} is out of range 1-65535 (MetalLB uses 7946)")
        self._name = name
        self._timing = timing
        self._rng = rng
        self._incarnation = 1  # memberlist's setAlive takes nextIncarnation() -> 1
        self._nodes: dict[str, Member] = {name: Member(name, addr, port, 1, NodeState.ALIVE, now, meta)}
        self._order: list[str] = [name]  # memberlist's m.nodes: the probe round-robin order
        self._probe_index = 0
        self._seq = 0
        self._awareness = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._suspicions: dict[str, _Suspicion] = {}
        self._broadcasts = _BroadcastQueue()
        self._left = False
        # memberlist's setAlive() broadcasts our own alive too: once a join taught us some peers, gossip spreads it
        # to those the joined node's own gossip missed.
        self._broadcasts.queue(name, Alive(1, name, addr, port, meta, DEFAULT_VSN))
        # Go starts its tickers at Create: the first probe and gossip one interval later; push-pull after a random
        # stagger plus one interval, so that a cluster started at once does not push-pull in lockstep.
        self._next_probe_at = now + timing.probe_interval
        self._next_gossip_at = now + timing.gossip_interval
        self._next_push_pull_at = now + rng.random() * timing.push_pull_interval + timing.push_pull_interval
        self.stats = SwimStats()

    # ---- views ------------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def timing(self) -> Timing:
        return self._timing

    @property
    def local(self) -> Member:
        return self._nodes[self._name]

    @property
    def health_score(self) -> int:
        """Lifeguard's local health: 0 is healthy; a failing probe's deadline is stretched x (score + 1)."""
        return self._awareness

    @property
    def has_left(self) -> bool:
        return self._left

    @property
    def leave_finished(self) -> bool:
        """After leave(): our leave has been handed out as often as the retransmit limit (or nobody is left to
        tell). memberlist's Leave() blocks until this; then the I/O may shut down."""
        return self._left and (self._name not in self._broadcasts or not self._alive_peers())

    def members(self) -> list[Member]:
        """Alive and suspect members, self included, by name: what MetalLB's UsableSpeakers() sees."""
        return sorted((m for m in self._nodes.values() if not m.dead_or_left), key=lambda m: m.name)

    def all_members(self) -> list[Member]:
        """Every known node (dead and left ones until they are reaped), by name."""
        return sorted(self._nodes.values(), key=lambda m: m.name)

    def member(self, name: str) -> Member | None:
        return self._nodes.get(name)

    def next_wakeup(self) -> float:
        """The earliest `now` at which tick() has something to do."""
        if self._left:
            return self._next_gossip_at if len(self._broadcasts) else math.inf
        times = [self._next_gossip_at, self._next_push_pull_at]
        probe = self._probe
        if probe is None:
            times.append(self._next_probe_at)
        else:
            times.append(probe.deadline if probe.indirect_started else probe.timeout_at)
        times.extend(relay.expires for relay in self._relays.values())
        times.extend(s.deadline for s in self._suspicions.values())
        return min(times)

    # ---- driving ----------------------------------------------------------------------------------------------

    def join(self, addrs: Sequence[tuple[str, int]], now: float) -> list[Output]:
        """memberlist Join(): a push-pull with Join=true to each address."""
        if self._left:
            return []
        out: list[Output] = []
        for host, port in addrs:
            self.stats.push_pulls_sent += 1
            out.append(PushPullRequest(host, port, True, self._local_state(join=True)))
        return out

    def tick(self, now: float) -> list[Output]:
        """Run every timer due by `now`."""
        out: list[Output] = []
        if self._left:
            self._run_gossip(now, out)
            return out
        self._run_relays(now, out)
        self._run_probe(now, out)
        self._run_suspicions(now, out)
        self._run_gossip(now, out)
        self._run_push_pull(now, out)
        return out

    def handle_packet(self, host: str, port: int, messages: Sequence[Message], now: float) -> list[Output]:
        """The messages of one UDP packet from host:port, in order (a compound already split by the codec)."""
        out: list[Output] = []
        if self._left:
            return out  # we said goodbye: answering now would only confuse peers that already marked us left
        for message in messages:
            self.stats.received[type(message).__name__] += 1
            if not _plausible(message):
                self.stats.invalid_messages += 1
                continue
            self._dispatch(host, port, message, now, out)
        return out

    def handle_stream(self, host: str, port: int, message: Message, now: float) -> tuple[Message | None, list[Output]]:
        """An inbound TCP stream's request. Returns the reply to write (None: just close) and the outputs."""
        out: list[Output] = []
        if self._left:
            return None, out
        self.stats.received[type(message).__name__] += 1
        if not _plausible(message):
            self.stats.invalid_messages += 1
            return None, out
        match message:
            case PushPull():
                self.stats.push_pulls_received += 1
                # memberlist sends its own state first, then merges the caller's: the reply is the state before.
                reply = self._local_state(join=message.join)
                self._merge(message, now, out, via=f"{host}:{port}")
                return reply, out
            case Ping():
                if message.node and message.node != self._name:
                    self.stats.pings_for_other_node += 1
                    return None, out
                return Ack(message.seq_no), out
            case _:
                return None, out

    def push_pull_reply(self, host: str, port: int, reply: PushPull, join: bool, now: float) -> list[Output]:
        """The peer's state from a PushPullRequest we made."""
        out: list[Output] = []
        if self._left or not _plausible(reply):
            return out
        self._merge(reply, now, out, via=f"{host}:{port}")
        return out

    def push_pull_failed(self, host: str, port: int, join: bool, now: float, error: str) -> list[Output]:
        """A PushPullRequest that could not complete (dial refused, timeout, remote error)."""
        self.stats.push_pull_failures += 1
        return []

    def handle_stream_ack(self, seq_no: int, now: float) -> list[Output]:
        """The TCP fallback ping of the running probe was answered. Like memberlist, the probe still waits for its
        deadline (a UDP ack may yet come), but it will not end in a suspicion."""
        probe = self._probe
        if probe is not None and probe.ping.seq_no == seq_no and now <= probe.deadline:
            probe.tcp_ok = True
        return []

    def leave(self, now: float) -> list[Output]:
        """Broadcast dead{node: self, from: self} (= left), hand it to gossip_nodes peers at once, stop the rest."""
        out: list[Output] = []
        if self._left:
            return out
        self._left = True
        me = self.local
        self._dead_node(Dead(me.incarnation, self._name, self._name), now, out, reason="left")
        self._probe = None
        self._relays.clear()
        self._suspicions.clear()
        self._gossip(now, out)
        return out

    def declare_dead(self, name: str, now: float, reason: str) -> list[Output]:
        """An external detector's verdict: dead{current incarnation, from: self}, gossiped at once (to the accused
        too, so that a live one refutes), plus a LEAVE event carrying `reason`."""
        out: list[Output] = []
        member = self._nodes.get(name)
        if self._left or member is None or name == self._name or member.dead_or_left:
            return out
        dead = Dead(member.incarnation, name, self._name)
        self._dead_node(dead, now, out, reason=reason)
        self.stats.deaths_declared += 1
        self._emit(out, SendPacket(member.host, member.port, (dead,), member.pmax >= 5))
        self._gossip(now, out)
        return out

    # ---- timers -----------------------------------------------------------------------------------------------

    def _stalled(self, due: float, now: float) -> bool:
        """We overslept a deadline by more than a probe interval: the process (or host) was not running, and the
        answers we 'missed' may be sitting unread in the socket."""
        return now - due > self._timing.probe_interval

    def _run_relays(self, now: float, out: list[Output]) -> None:
        for local_seq, relay in list(self._relays.items()):
            if now < relay.expires:
                continue
            del self._relays[local_seq]
            if relay.nack:
                self._send_msg(relay.host, relay.port, Nack(relay.seq_no), out)

    def _run_probe(self, now: float, out: list[Output]) -> None:
        probe = self._probe
        if probe is not None:
            if not probe.indirect_started and now >= probe.timeout_at:
                self._indirect_probe(probe, now, out)
            if now >= probe.deadline:
                self._finish_probe(probe, now, out)
        if self._probe is None and now >= self._next_probe_at:
            self._start_probe(now, out)

    def _run_suspicions(self, now: float, out: list[Output]) -> None:
        for name, suspicion in list(self._suspicions.items()):
            if now < suspicion.deadline:
                continue
            if self._stalled(suspicion.deadline, now):
                # Give the refutation that may have queued up while we were stopped a chance to be read.
                suspicion.deadline = now + self._timing.probe_interval
                continue
            self._suspicion_expired(name, now, out)

    def _run_gossip(self, now: float, out: list[Output]) -> None:
        if now < self._next_gossip_at:
            return
        self._gossip(now, out)
        self._next_gossip_at = _next_on_grid(self._next_gossip_at, self._timing.gossip_interval, now)

    def _run_push_pull(self, now: float, out: list[Output]) -> None:
        if now < self._next_push_pull_at:
            return
        if self._timing.push_pull_interval <= 0:
            self._next_push_pull_at = math.inf
            return
        peers = self._random_members(1, lambda m: m.name != self._name and m.state == NodeState.ALIVE)
        for peer in peers:
            self.stats.push_pulls_sent += 1
            out.append(PushPullRequest(peer.host, peer.port, False, self._local_state(join=False)))
        self._next_push_pull_at = now + push_pull_period(self._timing, len(self._order))

    # ---- probing ----------------------------------------------------------------------------------------------

    def _start_probe(self, now: float, out: list[Output]) -> None:
        self._next_probe_at = now + self._timing.probe_interval
        target = self._next_probe_target(now)
        if target is None:
            return
        # Lifeguard: a node that has been failing probes or refuting gives each probe longer before accusing.
        interval = self._timing.probe_interval * (self._awareness + 1)
        ping = Ping(self._next_seq(), target.name, self.local.addr, self.local.port, self._name)
        self._probe = _Probe(target, ping, now, now + self._timing.probe_timeout, now + interval)
        self.stats.probes_sent += 1
        if target.state == NodeState.ALIVE:
            self._send_msg(target.host, target.port, ping, out)
        else:
            # A suspect is told so with the ping itself, so that it can refute at once.
            accusation = Suspect(target.incarnation, target.name, self._name)
            self._emit(out, SendPacket(target.host, target.port, (ping, accusation), target.pmax >= 5))

    def _next_probe_target(self, now: float) -> Member | None:
        """state.go probe(): walk the shuffled order, skipping self, dead and left; re-shuffle at the wrap."""
        checked = 0
        while checked < len(self._order):
            if self._probe_index >= len(self._order):
                self._reset_order(now)
                self._probe_index = 0
                checked += 1
                continue
            member = self._nodes[self._order[self._probe_index]]
            self._probe_index += 1
            if member.name == self._name or member.dead_or_left:
                checked += 1
                continue
            return member
        return None

    def _reset_order(self, now: float) -> None:
        """resetNodes(): forget dead/left nodes once they stopped getting gossip, then shuffle."""
        keep: list[str] = []
        for name in self._order:
            member = self._nodes[name]
            reap = name != self._name and member.dead_or_left
            if reap and now - member.state_changed > self._timing.gossip_to_the_dead:
                del self._nodes[name]
                self._suspicions.pop(name, None)
            else:
                keep.append(name)
        self._rng.shuffle(keep)
        self._order = keep

    def _indirect_probe(self, probe: _Probe, now: float, out: list[Output]) -> None:
        probe.indirect_started = True
        target = probe.target
        peers = self._random_members(
            self._timing.indirect_checks,
            lambda m: m.name not in (self._name, target.name) and m.state == NodeState.ALIVE,
        )
        me = self.local
        for peer in peers:
            nack = peer.pmax >= 4  # only version-4 peers send nacks: only they count against our health
            probe.expected_nacks += nack
            request = IndirectPing(
                probe.ping.seq_no, target.addr, target.port, target.name, nack, me.addr, me.port, self._name
            )
            self.stats.indirect_pings_sent += 1
            self._send_msg(peer.host, peer.port, request, out)
        if not self._timing.disable_tcp_pings and target.pmax >= 3:
            self.stats.stream_pings_sent += 1
            out.append(StreamPing(target.host, target.port, probe.ping, probe.ping.seq_no, probe.deadline))

    def _probe_succeeded(self, probe: _Probe, now: float) -> None:
        self._probe = None
        self.stats.probe_acks += 1
        self.stats.rtts.append(now - probe.sent)
        self._apply_awareness(-1)
        self._next_probe_at = max(self._next_probe_at, now)

    def _finish_probe(self, probe: _Probe, now: float, out: list[Output]) -> None:
        """The deadline passed without a UDP ack."""
        self._probe = None
        self._next_probe_at = max(self._next_probe_at, now)
        if probe.tcp_ok:
            self.stats.tcp_only_acks += 1
            self.stats.probe_acks += 1
            self._apply_awareness(-1)
            return
        if self._stalled(probe.deadline, now):
            self.stats.probes_abandoned += 1
            self._apply_awareness(1)  # we missed our own soft real-time deadline: we are the unhealthy one
            return
        # Nack-verified health: peers that should have nacked but did not point at our own network; without
        # nack-capable peers any failed probe counts against us.
        if probe.expected_nacks > 0:
            self._apply_awareness(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self._apply_awareness(1)
        self.stats.probe_failures += 1
        target = probe.target
        accusation = Suspect(target.incarnation, target.name, self._name)
        self._suspect_node(accusation, now, out, reason="failed probe")

    def _apply_awareness(self, delta: int) -> None:
        self._awareness = min(max(self._awareness + delta, 0), self._timing.awareness_max_multiplier - 1)
        self.stats.health_score = self._awareness

    # ---- incoming packets -------------------------------------------------------------------------------------

    def _dispatch(self, host: str, port: int, message: Message, now: float, out: list[Output]) -> None:
        match message:
            case Ping():
                self._handle_ping(host, port, message, out)
            case IndirectPing():
                self._handle_indirect_ping(host, port, message, now, out)
            case Ack():
                self._handle_ack(message, now, out)
            case Nack():
                probe = self._probe
                if probe is not None and probe.ping.seq_no == message.seq_no:
                    probe.nacks += 1
                    self.stats.nacks_received += 1
            case Suspect():
                self._suspect_node(message, now, out, reason=f"suspected by {message.from_}")
            case Alive():
                self._alive_node(_with_port(message, self.local.port), now, out)
            case Dead():
                reason = "left" if message.is_leave else f"declared dead by {message.from_}"
                self._dead_node(message, now, out, reason=reason)
            case _:
                pass  # user messages (MetalLB sends none), stray push-pulls and errors: nothing to do

    def _handle_ping(self, host: str, port: int, ping: Ping, out: list[Output]) -> None:
        if ping.node and ping.node != self._name:
            # A ping meant for whoever had this address before us: acking it would vouch for a dead node.
            self.stats.pings_for_other_node += 1
            return
        reply_host, reply_port = _reply_address(host, port, ping.source_addr, ping.source_port)
        self._send_msg(reply_host, reply_port, Ack(ping.seq_no), out)

    def _handle_indirect_ping(self, host: str, port: int, request: IndirectPing, now: float, out: list[Output]) -> None:
        target_host = address_text(request.target)
        if not target_host:
            self.stats.invalid_messages += 1
            return
        me = self.local
        local_seq = self._next_seq()
        reply_host, reply_port = _reply_address(host, port, request.source_addr, request.source_port)
        expires = now + self._timing.probe_timeout
        self._relays[local_seq] = _Relay(request.seq_no, reply_host, reply_port, expires, request.nack)
        ping = Ping(local_seq, request.node, me.addr, me.port, self._name)
        self._send_msg(target_host, request.port or me.port, ping, out)

    def _handle_ack(self, ack: Ack, now: float, out: list[Output]) -> None:
        # Acks are taken even a little past their deadline as long as tick() has not acted on it yet: an ack in
        # hand is proof of life, whatever our timers say.
        probe = self._probe
        if probe is not None and probe.ping.seq_no == ack.seq_no:
            self._probe_succeeded(probe, now)
            return
        relay = self._relays.pop(ack.seq_no, None)
        if relay is not None:
            # An indirect ping we ran for a peer: forward the ack under the peer's sequence number (no nack then).
            self._send_msg(relay.host, relay.port, Ack(relay.seq_no), out)

    # ---- the membership rules (state.go) ----------------------------------------------------------------------

    def _alive_node(self, alive: Alive, now: float, out: list[Output]) -> None:
        """aliveNode(): learn, update or refute."""
        is_local = alive.node == self._name
        if self._left and is_local:
            return
        if not _sane_vsn(alive.vsn):
            self.stats.alive_rejected += 1
            return
        member = self._nodes.get(alive.node)
        is_new = member is None
        updates_address = False
        if member is None:
            if not address_text(alive.addr) or alive.incarnation == 0 or not alive.vsn:
                # Go would list it (incarnation 0: as a never-alive dead entry; no versions: as protocol 0, which
                # then fails every push-pull's verifyProtocol). No memberlist peer sends either: do not list it.
                self.stats.alive_rejected += 1
                return
            member = Member(alive.node, alive.addr, alive.port, 0, NodeState.DEAD, now, alive.meta, alive.vsn)
            self._add_member(member)
        elif member.addr != alive.addr or member.port != alive.port:
            reclaim = self._timing.dead_node_reclaim
            can_reclaim = reclaim > 0 and now - member.state_changed > reclaim
            if not address_text(alive.addr):
                # The same rule as for a new member: an address we could never probe is not taken over.
                self.stats.alive_rejected += 1
                return
            if member.state == NodeState.LEFT or (member.state == NodeState.DEAD and can_reclaim):
                updates_address = True
            else:
                # Two nodes claim one name (or a stale address): keep what we have, as memberlist does.
                self.stats.conflicting_addresses += 1
                return
        if alive.incarnation <= member.incarnation and not is_local and not updates_address:
            return
        if alive.incarnation < member.incarnation and is_local:
            return
        suspicion = self._suspicions.pop(alive.node, None)
        if is_local:
            if alive.incarnation == member.incarnation and alive.meta == member.meta and alive.vsn == member.vsn:
                return  # our own alive coming back to us
            self._refute(alive.incarnation, out, what=f"an alive with incarnation {alive.incarnation}")
            return
        self._broadcasts.queue(alive.node, alive)
        updated = replace(
            member,
            incarnation=alive.incarnation,
            meta=alive.meta,
            addr=alive.addr,
            port=alive.port,
            vsn=alive.vsn if alive.vsn else member.vsn,
            state=NodeState.ALIVE,
            state_changed=member.state_changed if member.state == NodeState.ALIVE else now,
        )
        self._nodes[alive.node] = updated
        self._alive_events(member, updated, is_new, suspicion is not None, out)

    def _alive_events(self, old: Member, new: Member, is_new: bool, was_suspected: bool, out: list[Output]) -> None:
        if old.dead_or_left:
            reason = "joined" if is_new else f"alive again (incarnation {new.incarnation})"
            out.append(MemberEvent(EventKind.JOIN, new, reason))
        elif old.meta != new.meta:
            out.append(MemberEvent(EventKind.UPDATE, new, "metadata changed"))
        elif old.state == NodeState.SUSPECT and was_suspected:
            self.stats.suspicions_refuted += 1
            out.append(MemberEvent(EventKind.REFUTE, new, f"refuted suspicion (incarnation {new.incarnation})"))

    def _suspect_node(self, suspect: Suspect, now: float, out: list[Output], reason: str) -> None:
        """suspectNode(): start a suspicion, confirm one, or refute an accusation about ourselves."""
        member = self._nodes.get(suspect.node)
        if member is None or suspect.incarnation < member.incarnation:
            return
        suspicion = self._suspicions.get(suspect.node)
        if suspicion is not None:
            if suspicion.confirm(suspect.from_, now):
                self._broadcasts.queue(suspect.node, suspect)  # new information: let it travel
                if suspicion.deadline <= now:
                    self._suspicion_expired(suspect.node, now, out)
            return
        if member.state != NodeState.ALIVE:
            return
        if suspect.node == self._name:
            self._refute(suspect.incarnation, out, what=f"a suspicion from {suspect.from_}")
            return
        self._broadcasts.queue(suspect.node, suspect)
        suspected = replace(member, incarnation=suspect.incarnation, state=NodeState.SUSPECT, state_changed=now)
        self._nodes[suspect.node] = suspected
        n = len(self._order)
        low, high = suspicion_timeout(self._timing, n)
        k = expected_confirmations(self._timing, n)
        self._suspicions[suspect.node] = _Suspicion.begin(suspect.from_, k, low, high, now)
        if suspect.from_ == self._name and reason == "failed probe":
            self.stats.suspicions_raised += 1
        out.append(MemberEvent(EventKind.SUSPECT, suspected, reason))

    def _suspicion_expired(self, name: str, now: float, out: list[Output]) -> None:
        suspicion = self._suspicions.pop(name, None)
        member = self._nodes.get(name)
        if suspicion is None or member is None or member.state != NodeState.SUSPECT:
            return
        if member.state_changed != suspicion.start:
            return  # the suspicion this timer belonged to is over
        self.stats.deaths_declared += 1
        reason = f"declared dead by {self._name} after suspicion ({suspicion.count} confirmations)"
        self._dead_node(Dead(member.incarnation, name, self._name), now, out, reason=reason)

    def _dead_node(self, dead: Dead, now: float, out: list[Output], reason: str) -> None:
        """deadNode(): mark dead (or left when it says so itself), or refute an accusation about ourselves."""
        member = self._nodes.get(dead.node)
        if member is None or dead.incarnation < member.incarnation:
            return
        self._suspicions.pop(dead.node, None)
        if member.dead_or_left:
            return
        if dead.node == self._name and not self._left:
            self._refute(dead.incarnation, out, what=f"a death notice from {dead.from_}")
            return
        self._broadcasts.queue(dead.node, dead)
        state = NodeState.LEFT if dead.is_leave else NodeState.DEAD
        gone = replace(member, incarnation=dead.incarnation, state=state, state_changed=now)
        self._nodes[dead.node] = gone
        out.append(MemberEvent(EventKind.LEAVE, gone, reason))

    def _refute(self, accused_incarnation: int, out: list[Output], what: str) -> None:
        """Beat the accusation's incarnation and broadcast that we are alive."""
        incarnation = self._incarnation + 1
        if accused_incarnation >= incarnation:
            incarnation = accused_incarnation + 1
        self._incarnation = incarnation & U32 or 1
        me = replace(self.local, incarnation=self._incarnation)
        self._nodes[self._name] = me
        self._apply_awareness(1)  # being accused is a hint that we are the slow one
        self.stats.refutations += 1
        self._broadcasts.queue(self._name, Alive(me.incarnation, me.name, me.addr, me.port, me.meta, me.vsn))
        out.append(MemberEvent(EventKind.REFUTE, me, f"refuted {what} (incarnation now {me.incarnation})"))

    def _add_member(self, member: Member) -> None:
        """Insert at a random position of the probe order (swap with the node there) so that a new node's first
        probe is not always a full round away, as memberlist does."""
        self._nodes[member.name] = member
        offset = self._rng.randrange(len(self._order)) if self._order else 0
        self._order.append(member.name)
        self._order[offset], self._order[-1] = self._order[-1], self._order[offset]

    # ---- push-pull --------------------------------------------------------------------------------------------

    def _local_state(self, join: bool) -> PushPull:
        nodes = tuple(
            PushNodeState(m.name, m.addr, m.port, m.incarnation, m.state, m.meta, m.vsn)
            for m in (self._nodes[name] for name in self._order)
        )
        return PushPull(join, nodes)

    def _merge(self, remote: PushPull, now: float, out: list[Output], via: str) -> None:
        """mergeRemoteState(): refuse incompatible protocol versions, then take each node's state as a message."""
        error = self._verify_protocol(remote.nodes)
        if error:
            self.stats.merges_refused += 1
            self.stats.last_merge_error = error
            return
        for node in remote.nodes:
            match node.state:
                case NodeState.ALIVE:
                    alive = Alive(node.incarnation, node.name, node.addr, node.port, node.meta, node.vsn)
                    self._alive_node(_with_port(alive, self.local.port), now, out)
                case NodeState.LEFT:
                    self._dead_node(Dead(node.incarnation, node.name, node.name), now, out, reason="left")
                case NodeState.DEAD | NodeState.SUSPECT:
                    # A peer's "dead" is only a suspicion here: we give the node its chance to refute.
                    reason = f"{NodeState(node.state).name.lower()} in push-pull from {via}"
                    self._suspect_node(Suspect(node.incarnation, node.name, self._name), now, out, reason=reason)

    def _verify_protocol(self, remote: Sequence[PushNodeState]) -> str:
        """verifyProtocol(): every node's current versions must lie within what every alive node understands."""
        if any(len(node.vsn) not in (0, 6) for node in remote):
            return "a node's version vector is not 6 bytes"
        ranges = [node.vsn for node in remote if node.state == NodeState.ALIVE and node.vsn]
        ranges += [m.vsn for m in self._nodes.values() if m.state == NodeState.ALIVE]
        max_pmin = max((v[0] for v in ranges), default=0)
        min_pmax = min((v[1] for v in ranges), default=255)
        max_dmin = max((v[3] for v in ranges), default=0)
        min_dmax = min((v[4] for v in ranges), default=255)
        currents = [(n.name, n.vsn or _ZERO_VSN) for n in remote] + [(m.name, m.vsn) for m in self._nodes.values()]
        for name, vsn in currents:
            if not max_pmin <= vsn[2] <= min_pmax:
                return f"node {name!r} protocol version ({vsn[2]}) is incompatible: [{max_pmin}, {min_pmax}]"
            if not max_dmin <= vsn[5] <= min_dmax:
                return f"node {name!r} delegate protocol version ({vsn[5]}) is incompatible: [{max_dmin}, {min_dmax}]"
        return ""

    # ---- sending ----------------------------------------------------------------------------------------------

    def _gossip(self, now: float, out: list[Output]) -> None:
        """gossip(): hand queued broadcasts to a few random alive/suspect peers, and to recently dead ones."""
        if not len(self._broadcasts):
            return
        targets = self._random_members(self._timing.gossip_nodes, lambda m: self._gossip_target(m, now))
        limit = self._timing.udp_buffer_size - COMPOUND_HEADER_OVERHEAD - ENCRYPT_OVERHEAD
        for target in targets:
            messages = self._broadcasts.take(COMPOUND_PART_OVERHEAD, limit, self._transmit_limit())
            if not messages:
                return
            self._emit(out, SendPacket(target.host, target.port, tuple(messages), target.pmax >= 5))

    def _gossip_target(self, member: Member, now: float) -> bool:
        if member.name == self._name:
            return False
        if member.state in (NodeState.ALIVE, NodeState.SUSPECT):
            return True
        # The dead still hear about themselves for a while, so a node that was wrongly declared dead can refute.
        return member.state == NodeState.DEAD and now - member.state_changed <= self._timing.gossip_to_the_dead

    def _send_msg(self, host: str, port: int, message: Message, out: list[Output]) -> None:
        """sendMsg(): one message, with as many queued broadcasts piggybacked as fit in the packet."""
        budget = self._timing.udp_buffer_size - estimated_size(message) - COMPOUND_HEADER_OVERHEAD - ENCRYPT_OVERHEAD
        extra = self._broadcasts.take(COMPOUND_PART_OVERHEAD, budget, self._transmit_limit())
        # memberlist looks the destination up by IP in a name-keyed map here, so these packets never carry a CRC.
        self._emit(out, SendPacket(host, port, (message, *extra), False))

    def _emit(self, out: list[Output], packet: SendPacket) -> None:
        for message in packet.messages:
            self.stats.sent[type(message).__name__] += 1
        out.append(packet)

    def _transmit_limit(self) -> int:
        return retransmit_limit(self._timing, len(self._order))

    # ---- helpers ----------------------------------------------------------------------------------------------

    def _random_members(self, k: int, keep: Callable[[Member], bool]) -> list[Member]:
        """Up to k distinct random members passing `keep` (kRandomNodes, without its habit of missing the only
        candidate of a small cluster now and then)."""
        candidates = [self._nodes[name] for name in self._order if keep(self._nodes[name])]
        if len(candidates) <= k:
            self._rng.shuffle(candidates)
            return candidates
        return self._rng.sample(candidates, k)

    def _alive_peers(self) -> list[Member]:
        return [m for m in self._nodes.values() if m.name != self._name and not m.dead_or_left]

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & U32
        return self._seq


def _next_on_grid(previous: float, interval: float, now: float) -> float:
    """The next tick of a fixed-rate ticker that last fired at `previous` (missed ticks are skipped, as Go's)."""
    steps = math.floor((now - previous) / interval) + 1
    return previous + steps * interval


def _reply_address(host: str, port: int, source_addr: bytes, source_port: int) -> tuple[str, int]:
    """Where an ack goes: the advertised SourceAddr:SourcePort when the ping carries one, else the UDP source."""
    source_host = address_text(source_addr)
    if source_host and source_port > 0:
        return source_host, source_port
    return host, port


def _with_port(alive: Alive, default_port: int) -> Alive:
    """handleAlive(): a zero port (protocol < 2) means our own bind port."""
    return alive if alive.port else replace(alive, port=default_port)


def _sane_vsn(vsn: bytes) -> bool:
    """aliveNode()'s check (pMin, pMax > 0, pMin <= pMax), plus a shape check memberlist would panic without."""
    if not vsn:
        return True
    if len(vsn) != 6:
        return False
    return vsn[0] != 0 and vsn[1] != 0 and vsn[0] <= vsn[1]


def _u32(value: int) -> bool:
    return 0 <= value <= U32


def _u16(value: int) -> bool:
    return 0 <= value <= 0xFFFF


def _plausible(message: Message) -> bool:
    """Fields within their wire types (u32 incarnations and sequence numbers, u16 ports, non-empty names)."""
    match message:
        case Ping():
            return _u32(message.seq_no) and _u16(message.source_port)
        case Ack() | Nack():
            return _u32(message.seq_no)
        case IndirectPing():
            return _u32(message.seq_no) and _u16(message.port) and _u16(message.source_port) and bool(message.node)
        case Alive():
            return _u32(message.incarnation) and _u16(message.port) and bool(message.node)
        case Suspect() | Dead():
            return _u32(message.incarnation) and bool(message.node)
        case PushPull():
            return all(_u32(n.incarnation) and _u16(n.port) and bool(n.name) for n in message.nodes)
        case _:
            return True
