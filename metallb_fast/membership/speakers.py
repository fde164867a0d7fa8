"""The speakers' memberlist, as the speaker uses it (MetalLB's internal/speakerlist): a member under the node's
name, joined to the other speaker Pods' IPs at start and again every minute, reporting membership changes.

The election's candidates are the live members (alive or suspect, as memberlist's Members()): a node leaves the
candidate set when memberlist declares it dead or it leaves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from metallb_fast.membership.messages import address_text
from metallb_fast.membership.node import MemberlistNode, NodeConfig
from metallb_fast.membership.swim import EventKind, MemberEvent
from metallb_fast.obs.metrics import MembershipFigures

log = logging.getLogger(__name__)

REJOIN_EVERY_S = 60.0  # MetalLB's join ticker
REJOIN_MISSING_EVERY_S = 2.0  # ours: a listed speaker that is not a member is tried again this often
SETTLE_TIMEOUT_S = 3.0  # how long a starting speaker waits for its first join before deciding alone


class SpeakerMembership:
    def __init__(
        self,
        config: NodeConfig,
        discover: Callable[[], list[str]],
        on_change: Callable[[MemberEvent], None],
    ) -> None:
        self._discover = discover
        self._on_change = on_change
        self.node = MemberlistNode(config, self._event)
        self._stop = threading.Event()
        self._rejoin_now = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_change: MemberEvent | None = None
        self._settled = threading.Event()
        self._started_at = 0.0
        self._expected: set[str] | None = None  # the speaker Pod IPs of the first listing

    @property
    def settled(self) -> bool:
        """True once the first join has had its chance: every speaker Pod found is a member, or
        SETTLE_TIMEOUT_S passed. Before that a starting speaker would see only some of the others (or only
        itself) and claim their addresses for a moment."""
        if not self._settled.is_set():
            expected = self._expected
            members = {address_text(member.addr) for member in self.node.members()}
            if (expected is not None and expected <= members) or \
                    time.monotonic() - self._started_at >= SETTLE_TIMEOUT_S:
                self._settled.set()
        return self._settled.is_set()

    def start(self) -> None:
        self._started_at = time.monotonic()
        self.node.start()
        self._thread = threading.Thread(target=self._rejoin_loop, name="memberlist-join", daemon=True)
        self._thread.start()

    def live_nodes(self) -> frozenset[str]:
        return frozenset(member.name for member in self.node.members())

    def figures(self) -> MembershipFigures:
        """What the metrics show (members by state, probe round trips, suspicions, messages, refusals)."""
        snapshot = self.node.snapshot()
        stats = snapshot.stats
        rtts = sorted(stats.rtts)
        quantiles = {q: rtts[min(len(rtts) - 1, int(float(q) * len(rtts)))] for q in ("0.5", "0.9", "0.99")} \
            if rtts else {}
        messages = {("received", kind): n for kind, n in stats.received.items()}
        messages.update({("sent", kind): n for kind, n in stats.sent.items()})
        return MembershipFigures(
            members_by_state=Counter(member.state.name.lower() for member in snapshot.members),
            rtt_quantiles=quantiles,
            suspicions_raised=stats.suspicions_raised,
            suspicions_refuted=stats.suspicions_refuted,
            refutations=stats.refutations,
            messages=messages,
            rejected=snapshot.rejected,
            health_score=stats.health_score,
        )

    def rejoin(self) -> None:
        """Join the speakers not yet members now (MetalLB does so when this node's Node object changes)."""
        self._rejoin_now.set()

    def leave_and_stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._rejoin_now.set()
        if not self.node.leave(timeout):
            log.warning("memberlist: the leave message was not sent in time", extra={"op": "memberlist"})
        self.node.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _event(self, event: MemberEvent) -> None:
        self.last_change = event
        member = event.member
        if event.kind is EventKind.LEAVE and "left" not in event.reason:
            self._rejoin_now.set()  # dead, or cut off: keep knocking (the partition may heal)
        level = logging.INFO if event.kind in (EventKind.JOIN, EventKind.LEAVE) else logging.DEBUG
        log.log(
            level,
            "node event - forcing sync",
            extra={"op": "memberlist", "event": str(event.kind), "node": member.name, "reason": event.reason},
        )
        self._on_change(event)

    def _rejoin_loop(self) -> None:
        """MetalLB lists the speaker Pods and joins the missing ones every minute. Ours lists as often, but while
        some listed speaker is not a member (dead, or on the other side of a healed partition) it tries that one
        again every REJOIN_MISSING_EVERY_S from the last list: a partition heals in seconds, not a minute."""
        ips: list[str] | None = None
        listed_at = -1e9
        while not self._stop.is_set():
            relist = self._rejoin_now.is_set()
            self._rejoin_now.clear()
            if ips is None or relist or time.monotonic() - listed_at >= REJOIN_EVERY_S:
                ips = self._list() or ips
                listed_at = time.monotonic()
            missing = self._join_missing(ips or [])
            self._rejoin_now.wait(REJOIN_MISSING_EVERY_S if missing else REJOIN_EVERY_S)

    def _list(self) -> list[str] | None:
        try:
            return self._discover()
        except Exception as error:
            log.warning("memberlist: cannot list the speaker Pods: %s", error, extra={"op": "memberlist"})
            return None

    def _join_missing(self, ips: list[str]) -> bool:
        """Join the listed speakers that are not live members; True when some were missing."""
        own_host, port = self.node.address
        known = {address_text(member.addr) for member in self.node.members()}
        missing = [ip for ip in ips if ip not in known and ip != own_host]
        if self._expected is None:
            self._expected = {*ips, own_host}
        if missing:
            log.debug("memberlist: joining %s", missing, extra={"op": "memberlist"})
            self.node.join([(ip, port) for ip in missing])
        return bool(missing)
