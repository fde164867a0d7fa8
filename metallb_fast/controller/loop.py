"""The controller program: watch Services, Namespaces and the metallb.io config; apply decide() through k8s/.

Watch threads only enqueue; one reconcile thread owns the allocator and does every write, so decisions are made
in one order and never race. After a new Config (or a freed address) every Service is processed again, the ones
that already have an address first, so a restart never moves an address.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from metallb_fast.allocator.allocator import Allocator
from metallb_fast.controller.decide import Decision, SyncResult, apply_config, decide, forget, reprocess_order
from metallb_fast.k8s.client import ApiError, Json, KubeClient
from metallb_fast.k8s.configsource import ConfigSource, ConfigStateTarget
from metallb_fast.k8s.informer import EventType, Informer, Resource, object_key, retry_until_stopped, wait_synced
from metallb_fast.k8s.secrets import ensure_memberlist_secret
from metallb_fast.k8s.writers import EventRecorder, ObjectRef, service_path, write_service_state
from metallb_fast.obs import metrics
from metallb_fast.resources import Service
from metallb_fast.vocabulary import (
    ANNOTATION_IP_ALLOCATED_FROM_POOL,
    CONTROLLER_COMPONENT,
    CORE_V1_PATH,
    DEFAULT_NAMESPACE,
    DEPRECATED_ANNOTATION_IP_ALLOCATED_FROM_POOL,
)

log = logging.getLogger(__name__)

CONFIG = "config"
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
CONFLICT_ATTEMPTS = 5  # decisions in a row refused because the Service changed meanwhile
OWNED_ANNOTATIONS = (ANNOTATION_IP_ALLOCATED_FROM_POOL, DEPRECATED_ANNOTATION_IP_ALLOCATED_FROM_POOL)


@dataclass(order=True)
class _Retry:
    due: float
    key: str = field(compare=False)


class Controller:
    def __init__(
        self,
        client: KubeClient,
        namespace: str = DEFAULT_NAMESPACE,
        lb_class: str | None = None,
        memberlist_secret: str | None = None,
        deployment: str | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.lb_class = lb_class
        self.memberlist_secret = memberlist_secret
        self.deployment = deployment
        self.allocator = Allocator()
        self.recorder = EventRecorder(client, CONTROLLER_COMPONENT)
        self.queue: queue.Queue[str] = queue.Queue()
        self._retries: list[_Retry] = []
        self._attempts: dict[str, int] = {}
        self._stop = threading.Event()
        self.services = Informer(client, Resource(CORE_V1_PATH, "services"), self._on_service, name="services")
        self.namespaces = Informer(client, Resource(CORE_V1_PATH, "namespaces"), self._on_config, name="namespaces")
        self.config = ConfigSource(
            client, namespace, self._on_config, self.recorder, ConfigStateTarget("controller", "controller")
        )
        self.processed = 0  # reconciles done; read by tests and the benchmark

    @property
    def backlog(self) -> int:
        """Work not done yet: events queued and retries scheduled (0 and a steady `processed`: idle)."""
        return self.queue.qsize() + len(self._retries)

    # ------------------------------------------------------------------ watch threads: enqueue only
    def _on_service(self, _: EventType, obj: Json) -> None:
        self.queue.put(object_key(obj))

    def _on_config(self, _: EventType, __: Json) -> None:
        self.queue.put(CONFIG)

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask the loop to end after the write in flight (SIGTERM)."""
        self._stop.set()
        self.queue.put("")

    def run(self) -> None:
        if self.memberlist_secret:
            threading.Thread(target=self._ensure_memberlist_secret, name="memberlist-secret", daemon=True).start()
        self.services.start()
        self.namespaces.start()
        self.config.start()
        try:
            if not wait_synced((self.services, self.namespaces, *self.config.informers), self._stop.is_set):
                return
            log.info("caches synced", extra={"op": "startup", "services": len(self.services.cache)})
            self.queue.put(CONFIG)
            self._loop()
            # The work left for a restart to redo (counting the stop's own wake-up when it is still queued).
            log.info("stopped", extra={"op": "shutdown", "pending": self.backlog})
        finally:
            self.recorder.close()
            self.services.stop()
            self.namespaces.stop()
            self.config.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            timeout = None
            if self._retries:
                timeout = max(0.0, self._retries[0].due - time.monotonic())
            pending: set[str] = set()
            with contextlib.suppress(queue.Empty):
                pending.add(self.queue.get(timeout=timeout))
            # Coalesce a burst of events (e.g. a relist) into one pass per key, with every retry now due.
            while len(pending) < 10000:
                try:
                    pending.add(self.queue.get_nowait())
                except queue.Empty:
                    break
            now = time.monotonic()
            while self._retries and self._retries[0].due <= now:
                pending.add(heapq.heappop(self._retries).key)
            pending.discard("")
            if self._stop.is_set():
                return
            if CONFIG in pending:
                pending.discard(CONFIG)
                if self._guarded(CONFIG, self._reload_config):
                    pending.clear()  # every Service is processed by the reload
            for item in sorted(pending):
                if self._stop.is_set():
                    return
                self._guarded(item, functools.partial(self._sync_service, item))

    def _guarded(self, key: str, action: Callable[[], bool | None]) -> bool:
        """Run one unit of work; a failure (the API server gone, or a bug) is logged and the key retried with
        exponential backoff, instead of ending the only thread that makes decisions."""
        try:
            result = action()
        except Exception as error:
            metrics.update_errors.inc()
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
            log.warning(
                "reconcile of %s failed (attempt %d), retrying in %.1fs: %s",
                key,
                attempts,
                delay,
                error,
                extra={"op": "reconcile"},
                exc_info=not isinstance(error, ApiError),
            )
            heapq.heappush(self._retries, _Retry(time.monotonic() + delay, key))
            return False
        self._attempts.pop(key, None)
        return bool(result)

    def _ensure_memberlist_secret(self) -> None:
        """The speakers' memberlist key, created when missing; retried with backoff while the API server says no
        (unreachable, or a permission missing: the log line says which)."""
        assert self.memberlist_secret is not None
        secret, deployment = self.memberlist_secret, self.deployment
        created = retry_until_stopped(
            lambda: ensure_memberlist_secret(self.client, self.namespace, secret, deployment),
            self._stop,
            f"ensuring the memberlist secret {self.namespace}/{secret}",
            "memberlist",
        )
        if created:
            log.info("created the memberlist secret", extra={"op": "memberlist", "secret": secret})

    # ------------------------------------------------------------------ reconcile
    def _reload_config(self) -> bool:
        changed = self.config.reload()
        namespaces = {
            (ns.get("metadata") or {}).get("name", ""): (ns.get("metadata") or {}).get("labels") or {}
            for ns in self.namespaces.snapshot()
        }
        if not changed and self.config.current is not None and namespaces == getattr(self, "_namespaces", None):
            return False
        self._namespaces = namespaces
        if self.config.current is None:
            return False
        apply_config(self.allocator, self.config.current, namespaces)
        self._update_pool_metrics()
        self._sync_all()
        return True

    def _sync_all(self) -> None:
        """Every Service, those with addresses first (so nothing is stolen from them), then by age and name."""

        def age(obj: Json) -> tuple[str, str, str]:
            meta = obj.get("metadata") or {}
            return (meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name") or "")

        services = [Service.from_dict(obj) for obj in sorted(self.services.snapshot(), key=age)]
        for service in reprocess_order(services):
            if self._stop.is_set():
                return
            self._guarded(service.key, functools.partial(self._sync_service, service.key, reprocess=False))

    def _sync_service(self, key: str, reprocess: bool = True) -> None:
        self.processed += 1
        metrics.updates.inc()
        obj = self.services.get(key)
        if obj is None:
            result = forget(self.allocator, key)
            self._update_pool_metrics()
            if result is SyncResult.REPROCESS_ALL and reprocess:
                self._sync_all()
            return
        for _ in range(CONFLICT_ATTEMPTS):
            service = Service.from_dict(obj)
            decision = decide(self.allocator, service, self.lb_class)
            try:
                self._write(service, decision)
                break
            except ApiError as error:
                if error.status == 404:
                    return  # deleted meanwhile; the DELETED event follows
                if error.status != 409:
                    raise  # retried with backoff by _guarded
            # Changed since the copy decided on: its write was refused. Decide again on the version there is now,
            # at once, so that what the allocator holds for it is what the API server shows.
            obj = self._fetch(key)
            if obj is None:
                return
        else:
            raise ApiError("PATCH", key, 409, {"message": f"still conflicting after {CONFLICT_ATTEMPTS} decisions"})
        if decision.changed:
            self._update_pool_metrics()
        if decision.result is SyncResult.REPROCESS_ALL and reprocess:
            self._sync_all()

    def _fetch(self, key: str) -> Json | None:
        """The Service as the API server has it now (put in the cache), None when it is gone."""
        namespace, _, name = key.partition("/")
        try:
            obj = self.client.get(service_path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        self.services.remember_write(obj)
        return obj

    def _write(self, service: Service, decision: Decision) -> None:
        ref = ObjectRef("Service", service.namespace, service.name, service.uid)
        if decision.handled and decision.changed:
            current = service.annotation_map
            desired = dict(decision.annotations)
            patch: dict[str, str | None] = {
                name: desired.get(name) for name in OWNED_ANNOTATIONS if current.get(name) != desired.get(name)
            }
            ingress = list(decision.ingress_ips) if tuple(decision.ingress_ips) != service.ingress_ips else None
            if patch or ingress is not None:
                written = write_service_state(
                    self.client, service.namespace, service.name, patch, ingress, service.resource_version
                )
                self.services.remember_write(written)
            log.info(
                "service updated",
                extra={"op": "updateService", "service": service.key, "ips": list(decision.ingress_ips)},
            )
        for event in decision.events:
            self.recorder.record(ref, event.type, event.reason, event.message)

    def _update_pool_metrics(self) -> None:
        figures: dict[str, tuple[int, int]] = {}
        for name in self.allocator.pool_names():
            counters = self.allocator.counters(name)
            in_use = counters.assigned_ipv4 + counters.assigned_ipv6
            figures[name] = (in_use, in_use + counters.available_ipv4 + counters.available_ipv6)
        metrics.export_pool_addresses(figures)
