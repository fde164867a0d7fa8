"""Who is alive, and whether this node may answer at all: memberlist's members, the data-path heartbeats and the
split-brain rule, in one place for the speaker loop (docs/failover.md states the rules and how they fit).

- Candidates (the election's live nodes): memberlist's live members, plus every peer whose kernel answers our
  heartbeats right now. A node whose fast path still answers ARP must stay a candidate, or two nodes would answer
  one address (a speaker paused, restarting, or killed but within its liveness deadline).
- Dead: a peer our heartbeats and a relay's cannot reach is declared dead into memberlist (gossiped to every
  member, MetalLB's too), but only while this node holds a majority: a node cut off from the rest accuses nobody.
- Serving: only while this node sees a majority of the speakers it knew (speaker/quorum.py); after regaining it,
  only once it has held it for HOLD_DOWN_S, so that the others have seen us back before we answer again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metallb_fast.dataplane.base import Responder
from metallb_fast.dataplane.heartbeat import heartbeat_port_of
from metallb_fast.membership.messages import NodeState, address_text
from metallb_fast.membership.settings import MembershipSettings
from metallb_fast.membership.speakers import SpeakerMembership
from metallb_fast.membership.swim import Member, MemberEvent
from metallb_fast.obs import metrics
from metallb_fast.resources import Node
from metallb_fast.speaker import quorum
from metallb_fast.speaker.links import interface_with_address

if TYPE_CHECKING:
    from metallb_fast.membership.datapath import DataPathWatch

log = logging.getLogger(__name__)

HOLD_DOWN_S = 0.2


@dataclass(frozen=True)
class Assessment:
    live: frozenset[str]
    serving: bool
    reason: str
    recheck_at: float | None = None  # when serving may change without any event (the hold-down ends)


class ClusterView:
    def __init__(
        self,
        settings: MembershipSettings,
        node_name: str,
        discover: Callable[[], list[str]],
        responder: Responder,
        wake: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.node_name = node_name
        self._responder = responder
        self._wake = wake
        self.membership = SpeakerMembership(settings.node, discover, self._on_change)
        self.watch: DataPathWatch | None = None  # --ml-timing=fast
        self.last_change: MemberEvent | None = None
        self._quorum = quorum.QuorumState()
        self._lost_majority = False  # since then, answer again only after HOLD_DOWN_S with a majority
        self._regained_at: float | None = None
        self._serving = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if not self.settings.encrypted:
            log.warning("memberlist traffic will not be encrypted (no secret key)", extra={"op": "startup"})
        self.membership.start()
        metrics.watch_membership(self.membership.figures)
        if self.settings.heartbeat_port is not None:
            self._start_heartbeats(self.settings.heartbeat_port)

    def _start_heartbeats(self, port: int) -> None:
        from metallb_fast.membership.datapath import DataPathWatch  # only with --ml-timing=fast

        host = self.settings.node.bind_host
        interface = interface_with_address(host)
        if interface is None:
            raise RuntimeError(f"data-path heartbeats: no interface holds the memberlist address {host}")
        self._responder.serve_heartbeats(port, [interface])
        self.watch = DataPathWatch(host, port, self._on_dead, on_change=self._wake, on_recovered=self._on_recovered,
                                   key=self.settings.key).start()
        log.info("data-path heartbeats on", extra={"op": "startup", "interface": interface, "port": port})

    def stop(self, leave: bool) -> None:
        """leave: tell the others we are gone for good (a drain); otherwise just stop (a restart: the fast path
        keeps answering and the peers see us back before they would give up)."""
        if self.watch is not None:
            self.watch.stop()
        if leave:
            self.membership.leave_and_stop()
        else:
            self.membership.node.stop()

    @property
    def settled(self) -> bool:
        return self.membership.settled

    def rejoin(self) -> None:
        self.membership.rejoin()

    # ------------------------------------------------------------------ decisions
    def assess(self, nodes: Mapping[str, Node], now: float) -> Assessment:
        snapshot = self.membership.node.snapshot()
        self._update_watch(snapshot.members)
        reachable = self.watch.reachable() if self.watch else set()
        unreachable = self.watch.unreachable() if self.watch else set()
        live = set(self.membership.live_nodes()) | reachable
        left = {m.name for m in snapshot.members if m.state is NodeState.LEFT} - reachable
        gone = {name for name in self._quorum.known if name not in nodes or not nodes[name].condition_is_true("Ready")}
        decision = quorum.decide(self._quorum, self.node_name, live, unreachable, left, gone, now)
        self._quorum = decision.state
        recheck = None
        if not decision.serving:
            self._regained_at = None
            self._lost_majority = True
            serving = False
        elif self._lost_majority:
            self._regained_at = self._regained_at if self._regained_at is not None else now
            serving = now - self._regained_at >= HOLD_DOWN_S
            recheck = None if serving else self._regained_at + HOLD_DOWN_S
            self._lost_majority = not serving
        else:
            serving = True
        if serving != self._serving:
            (log.info if serving else log.warning)(
                "answering" if serving else "not answering: no majority",
                extra={"op": "splitBrain", "reason": decision.reason},
            )
            self._serving = serving
        return Assessment(frozenset(live), serving, decision.reason, recheck)

    # ------------------------------------------------------------------ events
    def _on_change(self, event: MemberEvent) -> None:
        self.last_change = event
        self._wake()

    def _on_dead(self, name: str, reason: str) -> None:
        if not self._serving:
            log.info("not declaring %s dead: this node has no majority", name, extra={"op": "heartbeat"})
            return
        log.info("declaring %s dead", name, extra={"op": "heartbeat", "node": name, "reason": reason})
        self.membership.node.declare_dead(name, reason)

    def _on_recovered(self, name: str) -> None:
        """A node we declared dead answers heartbeats again: push-pull with it, so that it learns it was declared
        dead and refutes now (then every member counts it again, and the address goes back to it once)."""
        member = next((m for m in self.membership.node.snapshot().members if m.name == name), None)
        if member is None:
            return
        log.info("%s answers again: telling it it was declared dead", name, extra={"op": "heartbeat", "node": name})
        self.membership.node.join([(address_text(member.addr), member.port)])

    def _update_watch(self, members: tuple[Member, ...]) -> None:
        if self.watch is None or self.settings.heartbeat_port is None:
            return
        watched = {}
        for m in members:
            port = heartbeat_port_of(m.meta)
            if m.name != self.node_name and m.state is not NodeState.LEFT and port is not None:
                watched[m.name] = ((address_text(m.addr), port), m.incarnation)
        self.watch.set_peers(watched)
