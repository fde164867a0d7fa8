"""Split-brain rule (pure): a speaker answers only while it sees a majority of the speaker set it last knew.

A partition must not leave two nodes answering for one address. The side with a majority of the known speakers
keeps serving and takes over the others' addresses; a minority side withdraws everything and stays quiet until it
sees a majority again (it rejoins). The known set shrinks only in ways that cannot create a second majority:
- a graceful leave removes the member at once (it said goodbye: nobody is on the other side of a partition);
- a member the API server reports gone (its Node deleted, or not Ready) is removed at once: the node lifecycle
  controller's verdict does not depend on which side of a memberlist partition we are;
- a member dead for `forget_after` seconds is removed, but only while we hold a majority: the minority side of a
  partition never forgets the majority, so it never regains a majority by forgetting.
An exact half is a tie, won by the half holding the smallest node name, so that in a 2-node cluster exactly one
side keeps serving when the two cannot see each other. If the winner of the tie really died, the other node takes
over once the API server marks the dead node NotReady (its grace period, 40 s by default): slower, never double.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

FORGET_AFTER_S = 30.0  # memberlist's GossipToTheDeadTime: as long as the dead are remembered there


@dataclass(frozen=True)
class QuorumState:
    known: frozenset[str] = frozenset()
    absent_since: Mapping[str, float] = field(default_factory=dict)  # known members not seen live, since when


@dataclass(frozen=True)
class QuorumDecision:
    state: QuorumState
    serving: bool
    reason: str  # for logs: why this node answers or not

    @property
    def known(self) -> frozenset[str]:
        return self.state.known


def decide(
    state: QuorumState,
    me: str,
    live: Set[str],
    unreachable: Set[str],
    left: Set[str],
    gone: Set[str],
    now: float,
    forget_after: float = FORGET_AFTER_S,
) -> QuorumDecision:
    """One step of the rule.

    live: memberlist's live members (alive or suspect); unreachable: live members our data-path heartbeat cannot
    reach right now (they count as absent before memberlist says so: the minority must go quiet no later than the
    majority takes over); left: members that left gracefully; gone: names the API server reports deleted or not
    Ready.
    """
    present = (set(live) - set(unreachable)) | {me}
    known = (set(state.known) | present) - set(left) - (set(gone) - {me})
    absent_since = {name: state.absent_since.get(name, now) for name in known - present}
    majority = _has_majority(present & known, known)
    if majority:
        forgotten = {name for name, since in absent_since.items() if now - since >= forget_after}
        known -= forgotten
        for name in forgotten:
            del absent_since[name]
    seen = len(present & known)
    if majority:
        reason = f"sees {seen} of {len(known)} known speakers"
    else:
        reason = (f"sees {seen} of {len(known)} known speakers, no majority: not answering until it sees more "
                  f"(missing: {', '.join(sorted(known - present))})")
    return QuorumDecision(QuorumState(frozenset(known), absent_since), majority, reason)


def _has_majority(present: Set[str], known: Set[str]) -> bool:
    if 2 * len(present) > len(known):
        return True
    return 2 * len(present) == len(known) and bool(known) and min(known) in present
