"""When every Service is processed again, and in which order: MetalLB's reprocessAll, pure, with one copy for the
running controller (controller/loop.py) and `metallb-fast plan` (planning.py), so `plan` cannot drift from what a
cluster settles on.

- A full pass is due after a new configuration (or new Namespace labels) and after a decision that freed
  addresses (SyncResult.REPROCESS_ALL): Services still waiting for an address may fit now.
- A full pass processes the Services with more status addresses first, so that no Service takes an address that is
  still in another's status; then the older first (creationTimestamp); among equals, in the order given: the
  controller gives namespace/name order (the API server's list order), `plan` the order of the documents (the
  order kubectl creates them in, which a timestamp of one-second resolution cannot tell). MetalLB's order among
  equals is its cache's, i.e. arbitrary.
- A full pass in which some decision freed addresses is followed by another (MetalLB's reprocessAll returns a retry
  error then): a Service processed before the one that freed its addresses gets its chance.
- A Service whose decision changed it is seen once more: its write comes back as a watch event.
"""

from __future__ import annotations

from collections.abc import Iterable

from metallb_fast.controller.decide import SyncResult
from metallb_fast.resources import Service


def full_pass_order(services: Iterable[Service]) -> list[Service]:
    return sorted(services, key=lambda s: (-len(s.ingress_ips), s.creation_timestamp))  # stable: ties keep order


def frees_addresses(result: SyncResult) -> bool:
    """Whether this decision's outcome makes a full pass due (after the current one, if one is running)."""
    return result is SyncResult.REPROCESS_ALL
