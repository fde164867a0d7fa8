"""This node's layer-2 plan kept per Service, so that one watch event costs one Service's election.

Pure: the speaker loop (speaker/loop.py) feeds it ServicePlans computed by layer2.plan_service and reads back the
`owned` table for the fast path, what changed for events and ServiceL2Status, and the announced Services. The
union over Services is kept with a claim count per (address, interface): Services sharing an address both claim
it, and it stays answered until the last of them lets go.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass

from metallb_fast.dataplane.base import OwnedKey
from metallb_fast.speaker.election import ElectionContext
from metallb_fast.speaker.layer2 import ServiceAnnouncement, ServicePlan


@dataclass(frozen=True)
class PlanChange:
    """One Service's plan before and after an update (None: no plan, the Service is gone or not ours)."""

    key: str
    before: ServicePlan | None
    after: ServicePlan | None

    @property
    def announcement_changed(self) -> bool:
        old = self.before.announcement if self.before else None
        new = self.after.announcement if self.after else None
        return old != new


class PlanBook:
    def __init__(self) -> None:
        self._plans: dict[str, ServicePlan] = {}
        self._claims: dict[OwnedKey, dict[str, bytes]] = {}
        self.owned: dict[OwnedKey, bytes] = {}
        self.revision = 0  # changes when `owned` does, and only then: callers need not compare tables

    def __len__(self) -> int:
        return len(self._plans)

    def keys(self) -> set[str]:
        return set(self._plans)

    def get(self, key: str) -> ServicePlan | None:
        return self._plans.get(key)

    def put(self, key: str, plan: ServicePlan | None) -> PlanChange | None:
        """Record `key`'s new plan (None removes it); the change, or None when nothing changed."""
        before = self._plans.get(key)
        if before == plan:
            return None
        # A new plan that owns what the old one did (new warnings, a new Standing) leaves the claims as they are.
        same_owned = before is not None and plan is not None and before.owned == plan.owned
        if before is not None and not same_owned:
            self._release(key, before.owned)
        if plan is None:
            self._plans.pop(key, None)
        else:
            self._plans[key] = plan
            if not same_owned:
                self._claim(key, plan.owned)
        return PlanChange(key, before, plan)

    def affected_by(self, changed: Set[str], context: ElectionContext) -> set[str]:
        """The Services whose election may come out differently now that the `changed` nodes differ (`context`
        holds the new nodes and live set); the others' plans stand as they are."""
        return {
            key
            for key, plan in self._plans.items()
            if plan.standing is not None and plan.standing.may_change(changed, context)
        }

    def announcements(self) -> Iterator[ServiceAnnouncement]:
        return (plan.announcement for plan in self._plans.values() if plan.announcement is not None)

    def _claim(self, key: str, owned: Mapping[OwnedKey, bytes]) -> None:
        for pair, mac in owned.items():
            claims = self._claims.setdefault(pair, {})
            claims[key] = mac
            if self.owned.get(pair) != mac:
                self.owned[pair] = mac
                self.revision += 1

    def _release(self, key: str, owned: Mapping[OwnedKey, bytes]) -> None:
        for pair in owned:
            claims = self._claims.get(pair)
            if claims is None:
                continue
            claims.pop(key, None)
            if claims:
                mac = next(iter(claims.values()))
                if self.owned.get(pair) != mac:
                    self.owned[pair] = mac
                    self.revision += 1
            else:
                del self._claims[pair]
                if self.owned.pop(pair, None) is not None:
                    self.revision += 1
