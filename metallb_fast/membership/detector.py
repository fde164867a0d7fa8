"""Fast dead-node detection through the data path (pure: values in, outputs out, injected clock).

Every `interval` this node sends each peer a heartbeat that the peer's fast path reflects in the kernel, under the
same liveness gate as its ARP/NDP answers (docs/failover.md). So a peer whose speaker is paused or throttled but
whose kernel still answers is alive; a dead node, link, kernel or an expired liveness deadline stops the replies.
- `unreachable_after` consecutive misses: the peer counts as absent for the split-brain rule (so a node cut off
  from the others goes quiet early, before the majority takes over);
- `dead_after` consecutive misses: ask up to `relays` other reachable peers to heartbeat it for us (indirect
  confirmation, as SWIM's indirect probes); a relay that also gets no reply confirms, one that gets a reply clears
  it. Confirmed (or with no relay to ask, in a 2-node cluster) -> a DEAD verdict, which the speaker gossips into
  memberlist as `dead` for the peer's current incarnation.
A stall of our own (the loop woke far too late) forgets the outstanding heartbeats instead of counting them as
misses: we could not have seen the replies.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

Address = tuple[str, int]
DECLARED_EVERY = 4


@dataclass(frozen=True)
class DetectorTiming:
    interval: float = 0.025
    reply_timeout: float = 0.06  # a heartbeat without a reply by then is a miss
    unreachable_after: int = 3
    dead_after: int = 5
    relays: int = 2
    relay_timeout: float = 0.06
    stall: float = 0.2  # a wake-up this late means we were not running: forget, do not count

    def __post_init__(self) -> None:
        for name in ("interval", "reply_timeout", "relay_timeout", "stall"):
            if getattr(self, name) <= 0:
                raise ValueError(f"detector timing {name}: must be > 0, got {getattr(self, name)}")
        if not 1 <= self.unreachable_after <= self.dead_after:
            raise ValueError("detector timing: need 1 <= unreachable_after <= dead_after")

    @property
    def detection_time(self) -> float:
        """From the last answered heartbeat to a DEAD verdict, at most (relays answering in time)."""
        return self.dead_after * self.interval + self.reply_timeout + self.relay_timeout


@dataclass(frozen=True)
class SendHeartbeat:
    to: Address
    nonce: int
    seq: int


@dataclass(frozen=True)
class SendRelayRequest:
    to: Address  # the relay
    target: Address
    nonce: int


@dataclass(frozen=True)
class SendRelayReply:
    to: Address  # who asked
    nonce: int  # theirs
    alive: bool


@dataclass(frozen=True)
class DeadVerdict:
    name: str
    reason: str


@dataclass(frozen=True)
class Recovered:
    """A peer we declared dead answers again (a link back, a partition healed) but has not refuted yet: it may not
    know it was declared dead. The speaker then pushes its state to it, so it learns and refutes at once, rather
    than at the next anti-entropy round (30 s), while it answers its addresses beside the node that took them."""

    name: str


Output = SendHeartbeat | SendRelayRequest | SendRelayReply | DeadVerdict | Recovered


@dataclass
class _Peer:
    address: Address
    incarnation: int
    outstanding: dict[int, float] = field(default_factory=dict)  # nonce -> sent at
    misses: int = 0
    replied: bool = False  # at least one heartbeat answered since we started watching it
    confirming: dict[int, float] = field(default_factory=dict)  # our relay-request nonces -> deadline
    confirmations: int = 0
    declared: bool = False
    quiet_rounds: int = 0  # a declared peer is still heartbeated, every DECLARED_EVERY rounds
    recovered: bool = False  # Recovered was reported for this declaration


@dataclass
class _Relaying:
    requester: Address
    their_nonce: int
    deadline: float


class Detector:
    def __init__(self, timing: DetectorTiming, rng: random.Random, now: float) -> None:
        self.timing = timing
        self._rng = rng
        self._peers: dict[str, _Peer] = {}
        self._by_nonce: dict[int, str] = {}  # our heartbeat and relay-request nonces -> peer name
        self._relaying: dict[int, _Relaying] = {}  # nonce of a heartbeat we send for someone else
        self._next_round = now
        self._last_tick = now
        self._seq = 0
        self.stalls = 0

    # ------------------------------------------------------------------ inputs
    def set_peers(self, peers: Mapping[str, tuple[Address, int]]) -> None:
        """The members to watch (not ourselves), each with its address and memberlist incarnation. A new member,
        one at a new address, or one with a new incarnation (it came back after we declared it dead) starts
        afresh."""
        for name in list(self._peers):
            peer = self._peers[name]
            if peers.get(name) != (peer.address, peer.incarnation):
                self._drop(name)
        for name, (address, incarnation) in peers.items():
            self._peers.setdefault(name, _Peer(address, incarnation))

    def on_reply(self, nonce: int, now: float) -> list[Output]:
        """A reflected heartbeat came back (the I/O matched its payload; replies we never asked for are ignored)."""
        relaying = self._relaying.pop(nonce, None)
        if relaying is not None:
            return [SendRelayReply(relaying.requester, relaying.their_nonce, alive=True)]
        name = self._by_nonce.get(nonce)
        peer = self._peers.get(name) if name else None
        if peer is None or nonce not in peer.outstanding:
            return []
        del self._by_nonce[nonce]
        del peer.outstanding[nonce]
        peer.misses = 0
        if peer.declared:  # alive again in the data path, dead in memberlist until it refutes
            if peer.recovered or name is None:
                return []
            peer.recovered = True
            return [Recovered(name)]
        peer.replied = True
        self._clear_confirmation(peer)
        return []

    def on_relay_request(self, requester: Address, target: Address, their_nonce: int, now: float) -> list[Output]:
        nonce = self._nonce()
        self._relaying[nonce] = _Relaying(requester, their_nonce, now + self.timing.relay_timeout * 0.8)
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return [SendHeartbeat(target, nonce, self._seq)]

    def on_relay_reply(self, nonce: int, alive: bool, now: float) -> list[Output]:
        name = self._by_nonce.get(nonce)
        peer = self._peers.get(name) if name else None
        if name is None or peer is None or nonce not in peer.confirming:
            return []
        del self._by_nonce[nonce]
        del peer.confirming[nonce]
        if alive:
            peer.misses = 0
            self._clear_confirmation(peer)
            return []
        peer.confirmations += 1
        return self._maybe_declare(name, peer, now)

    # ------------------------------------------------------------------ time
    def tick(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        if now - self._last_tick > self.timing.stall:
            self.stalls += 1
            self._forget_outstanding()
            self._next_round = now
        self._last_tick = now
        outputs.extend(self._expire_relaying(now))
        for name, peer in self._peers.items():
            outputs.extend(self._expire(name, peer, now))
        if now >= self._next_round:
            self._next_round = max(self._next_round + self.timing.interval, now)
            outputs.extend(self._round())
        return outputs

    def next_wakeup(self) -> float:
        times = [self._next_round]
        for peer in self._peers.values():
            times.extend(sent + self.timing.reply_timeout for sent in peer.outstanding.values())
            times.extend(peer.confirming.values())
        times.extend(r.deadline for r in self._relaying.values())
        return min(times)

    def unreachable(self) -> set[str]:
        return {name for name, peer in self._peers.items() if peer.misses >= self.timing.unreachable_after}

    def reachable(self) -> set[str]:
        """Peers whose kernel answers our heartbeats now: alive in the sense that matters to a client."""
        return {name for name, peer in self._peers.items()
                if peer.replied and peer.misses < self.timing.unreachable_after}

    def misses(self, name: str) -> int:
        peer = self._peers.get(name)
        return peer.misses if peer else 0

    # ------------------------------------------------------------------ internals
    def _nonce(self) -> int:
        while True:
            nonce = self._rng.getrandbits(64)
            if nonce and nonce not in self._by_nonce and nonce not in self._relaying:
                return nonce

    def _round(self) -> list[Output]:
        outputs: list[Output] = []
        for name, peer in self._peers.items():
            if peer.declared:
                peer.quiet_rounds = (peer.quiet_rounds + 1) % DECLARED_EVERY
                if peer.quiet_rounds:
                    continue
            nonce = self._nonce()
            self._seq = (self._seq + 1) & 0xFFFFFFFF
            peer.outstanding[nonce] = self._last_tick
            self._by_nonce[nonce] = name
            outputs.append(SendHeartbeat(peer.address, nonce, self._seq))
        return outputs

    def _expire(self, name: str, peer: _Peer, now: float) -> list[Output]:
        outputs: list[Output] = []
        for nonce, sent in list(peer.outstanding.items()):
            if now - sent >= self.timing.reply_timeout:
                del peer.outstanding[nonce]
                self._by_nonce.pop(nonce, None)
                peer.misses += 1
        for nonce, deadline in list(peer.confirming.items()):
            if now >= deadline:  # the relay did not answer at all: no evidence either way
                del peer.confirming[nonce]
                self._by_nonce.pop(nonce, None)
        if peer.declared or peer.misses < self.timing.dead_after or peer.confirming:
            return outputs
        relays = [p.address for n, p in self._peers.items()
                  if n != name and not p.declared and p.misses < self.timing.unreachable_after]
        if not relays:
            return outputs + self._maybe_declare(name, peer, now, alone=True)
        if peer.confirmations:
            return outputs
        for relay in self._rng.sample(relays, min(self.timing.relays, len(relays))):
            nonce = self._nonce()
            peer.confirming[nonce] = now + self.timing.relay_timeout
            self._by_nonce[nonce] = name
            outputs.append(SendRelayRequest(relay, peer.address, nonce))
        return outputs

    def _maybe_declare(self, name: str, peer: _Peer, now: float, alone: bool = False) -> list[Output]:
        if peer.declared or (not alone and peer.confirmations < 1):
            return []
        peer.declared = True
        peer.replied = False
        how = "no other member to confirm" if alone else f"confirmed by {peer.confirmations} other member(s)"
        return [DeadVerdict(name, f"data-path heartbeat: {peer.misses} missed in a row, {how}")]

    def _expire_relaying(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        for nonce, relaying in list(self._relaying.items()):
            if now >= relaying.deadline:
                del self._relaying[nonce]
                outputs.append(SendRelayReply(relaying.requester, relaying.their_nonce, alive=False))
        return outputs

    def _clear_confirmation(self, peer: _Peer) -> None:
        for nonce in peer.confirming:
            self._by_nonce.pop(nonce, None)
        peer.confirming.clear()
        peer.confirmations = 0

    def _forget_outstanding(self) -> None:
        for peer in self._peers.values():
            for nonce in peer.outstanding:
                self._by_nonce.pop(nonce, None)
            peer.outstanding.clear()
            self._clear_confirmation(peer)

    def _drop(self, name: str) -> None:
        peer = self._peers.pop(name)
        for nonce in (*peer.outstanding, *peer.confirming):
            self._by_nonce.pop(nonce, None)
