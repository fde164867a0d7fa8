"""controller/loop.py's full-pass scheduling (MetalLB's reprocessAll retry): one pass per batch, retried with
backoff while passes keep freeing addresses, the backoff reset by a pass that freed nothing."""

from __future__ import annotations

import urllib3

from metallb_fast.controller.loop import FULL_PASS, Controller
from metallb_fast.k8s.client import KubeClient
from metallb_fast.k8s.connection import Connection


def controller_with_passes(freed: list[bool]) -> tuple[Controller, list[int]]:
    """A controller (never started: no request is made) whose passes free addresses as `freed` says."""
    controller = Controller(KubeClient(Connection("https://127.0.0.1:9", urllib3.PoolManager(retries=0))))
    passes: list[int] = []

    def sync_all() -> bool:
        passes.append(len(passes))
        return freed[len(passes) - 1]

    controller._sync_all = sync_all  # type: ignore[method-assign]
    return controller, passes


def scheduled(controller: Controller) -> list[str]:
    return [retry.key for retry in controller._retries]


def test_a_pass_that_freed_addresses_schedules_one_more_with_growing_backoff() -> None:
    controller, passes = controller_with_passes([True, True, False])
    controller._full_pass()
    assert scheduled(controller) == [FULL_PASS] and controller._attempts[FULL_PASS] == 1
    first_due = controller._retries[0].due
    controller._full_pass()  # due again before the first retry ran: still one retry, at its time
    assert scheduled(controller) == [FULL_PASS] and controller._retries[0].due == first_due

    controller._retries.clear()  # the loop popped it and ran the pass
    controller._full_pass()
    assert passes == [0, 1, 2]
    assert scheduled(controller) == [] and FULL_PASS not in controller._attempts  # freed nothing: reset


def test_a_pass_that_raises_is_retried_not_fatal() -> None:
    controller, _ = controller_with_passes([])

    def broken() -> bool:
        raise RuntimeError("a bug in the ordering")

    controller._sync_all = broken  # type: ignore[method-assign]
    controller._full_pass()
    assert scheduled(controller) == [FULL_PASS]
