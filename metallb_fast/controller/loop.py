"""The controller program: watch Services, Namespaces and the metallb.io config; apply decide() through k8s/.

Watch threads only enqueue; one reconcile thread owns the allocator and makes every decision, so decisions are
made in one order and never race. Their writes run on a small pool (k8s/pipeline.py), in order per Service, so a
burst of creations is paced by the API server rather than by one round trip per Service; a write refused because
the Service changed meanwhile (409) re-reads it and sends it back to the decision thread. After a new Config (or a
freed address) every Service is processed again, the ones that already have an address first, so a restart never
moves an address.
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
from metallb_fast.controller.decide import Decision, apply_config, decide, forget
from metallb_fast.controller.reprocess import frees_addresses, full_pass_order
from metallb_fast.k8s.client import ApiError, Json, KubeClient
from metallb_fast.k8s.configsource import ConfigSource, ConfigStateTarget
from metallb_fast.k8s.informer import EventType, Informer, Resource, retry_until_stopped, wait_synced
from metallb_fast.k8s.pipeline import KeyedPipeline
from metallb_fast.k8s.secrets import ensure_memberlist_secret
from metallb_fast.k8s.writers import EventRecorder, ObjectRef, service_path, write_service_state
from metallb_fast.obs import memory, metrics
from metallb_fast.obs.health import Health
from metallb_fast.resources import Namespace, Service
from metallb_fast.vocabulary import (
    ANNOTATION_IP_ALLOCATED_FROM_POOL,
    CONTROLLER_COMPONENT,
    CORE_V1_PATH,
    DEFAULT_NAMESPACE,
    DEPRECATED_ANNOTATION_IP_ALLOCATED_FROM_POOL,
)

log = logging.getLogger(__name__)

CONFIG = "config"
FULL_PASS = "full-pass"  # queue keys that are not Services (a Service key always has a '/')
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
CONFLICT_ATTEMPTS = 5  # decisions in a row refused because the Service changed meanwhile
WRITERS = 8  # concurrent Service writes: enough to cover the API server's latency, few enough to be polite
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
        health: Health | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.lb_class = lb_class
        self.memberlist_secret = memberlist_secret
        self.deployment = deployment
        self.health = health or Health()
        self.allocator = Allocator()
        self.recorder = EventRecorder(client, CONTROLLER_COMPONENT)
        self.queue: queue.Queue[str] = queue.Queue()
        self._retries: list[_Retry] = []
        self._retries_lock = threading.Lock()  # writers schedule retries too
        self._attempts: dict[str, int] = {}
        self._conflicts: dict[str, int] = {}  # writes refused in a row per Service (touched by writers only)
        self._stop = threading.Event()
        self.services: Informer[Service] = Informer(
            client, Resource(CORE_V1_PATH, "services"), self._on_service, parse=Service.from_dict, name="services"
        )
        self.namespaces: Informer[Namespace] = Informer(
            client, Resource(CORE_V1_PATH, "namespaces"), self._on_config, parse=Namespace.from_dict, name="namespaces"
        )
        self.writes = KeyedPipeline("service-writes", workers=WRITERS)
        self.config = ConfigSource(
            client, namespace, self._on_config, self.recorder, ConfigStateTarget("controller", "controller")
        )
        self.processed = 0  # reconciles done; read by tests and the benchmark

    @property
    def backlog(self) -> int:
        """Work not done yet: events queued and retries scheduled (0 and a steady `processed`: idle)."""
        return self.queue.qsize() + len(self._retries) + self.writes.pending

    # ------------------------------------------------------------------ watch threads: enqueue only
    def _on_service(self, _: EventType, service: Service) -> None:
        self.queue.put(service.key)

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
            log.info("caches synced", extra={"op": "startup", "services": len(self.services)})
            memory.settle_after_startup()
            self.health.set_ready(True, "caches synced")
            self.queue.put(CONFIG)
            self._loop()
            self.writes.close(timeout=10.0)
            # The work left for a restart to redo (counting the stop's own wake-up when it is still queued).
            log.info("stopped", extra={"op": "shutdown", "pending": self.backlog})
        finally:
            self.health.stopped("the controller loop has ended")
            self.writes.close(timeout=0)
            self.recorder.close()
            self.services.stop()
            self.namespaces.stop()
            self.config.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            timeout = None
            with self._retries_lock:
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
            with self._retries_lock:
                while self._retries and self._retries[0].due <= now:
                    pending.add(heapq.heappop(self._retries).key)
            pending.discard("")
            if self._stop.is_set():
                return
            full_pass = FULL_PASS in pending
            pending.discard(FULL_PASS)
            if CONFIG in pending:
                pending.discard(CONFIG)
                full_pass |= self._guarded(CONFIG, self._reload_config)
            # The pass processes every Service there is; a deleted one is forgotten first, or its addresses
            # would stay taken. Without a pass, one is due after this batch if a decision in it freed addresses
            # (once for the batch, as MetalLB queues one reload however many deletions asked for it).
            for item in sorted(pending if not full_pass else (k for k in pending if self.services.get(k) is None)):
                if self._stop.is_set():
                    return
                full_pass |= self._guarded(item, functools.partial(self._sync_service, item))
            if full_pass:
                self._full_pass()

    def _guarded(self, key: str, action: Callable[[], bool | None]) -> bool:
        """Run one unit of work; a failure (the API server gone, or a bug) is logged and the key retried with
        exponential backoff, instead of ending the only thread that makes decisions."""
        try:
            result = action()
        except Exception as error:
            self._retry_later(key, error)
            return False
        with self._retries_lock:
            self._attempts.pop(key, None)
        return bool(result)

    def _retry_later(self, key: str, error: Exception) -> None:
        metrics.update_errors.inc()
        attempts, delay = self._back_off(key)
        log.warning(
            "reconcile of %s failed (attempt %d), retrying in %.1fs: %s",
            key,
            attempts,
            delay,
            error,
            extra={"op": "reconcile"},
            exc_info=not isinstance(error, ApiError),
        )

    def _back_off(self, key: str) -> tuple[int, float]:
        """Schedule `key` again, later each time in a row (jittered exponential backoff); (attempts, delay). A key
        already scheduled keeps its time (one full pass is due however many asked for it)."""
        with self._retries_lock:
            scheduled = next((retry for retry in self._retries if retry.key == key), None)
            if scheduled is not None:
                return self._attempts.get(key, 0), max(0.0, scheduled.due - time.monotonic())
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
            heapq.heappush(self._retries, _Retry(time.monotonic() + delay, key))
        self.queue.put("")  # the loop may be sleeping without a timeout: it must see the new retry
        return attempts, delay

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
        """Take a new configuration or new Namespace labels; whether a full pass is due."""
        changed = self.config.reload()
        namespaces = {ns.name: dict(ns.labels) for ns in self.namespaces.snapshot()}
        if not changed and self.config.current is not None and namespaces == getattr(self, "_namespaces", None):
            return False
        self._namespaces = namespaces
        if self.config.current is None:
            return False
        apply_config(self.allocator, self.config.current, namespaces)
        self._update_pool_metrics()
        return True

    def _full_pass(self) -> None:
        """One full pass (controller/reprocess.py); another one later, backing off, when it freed addresses."""
        try:
            freed = self._sync_all()
        except Exception as error:  # not a Service's failure (each is guarded): e.g. a bug in the ordering
            self._retry_later(FULL_PASS, error)
            return
        if freed:
            # Later, not at once: the statuses written by this pass must come back through the watch first, or
            # the next pass decides on the same stale ones.
            self._back_off(FULL_PASS)
        else:
            with self._retries_lock:
                self._attempts.pop(FULL_PASS, None)

    def _sync_all(self) -> bool:
        """Every Service once, in full_pass_order; whether some decision freed addresses."""
        freed = False
        by_key = sorted(self.services.snapshot(), key=lambda s: (s.namespace, s.name))
        for service in full_pass_order(by_key):
            if self._stop.is_set():
                return False
            freed |= self._guarded(service.key, functools.partial(self._sync_service, service.key))
        return freed

    def _sync_service(self, key: str) -> bool:
        """Decide one Service and submit its writes; whether it freed addresses (a full pass is then due)."""
        self.processed += 1
        metrics.updates.inc()
        service = self.services.get(key)
        if service is None:
            result = forget(self.allocator, key)
            self._update_pool_metrics()
        else:
            decision = decide(self.allocator, service, self.lb_class)
            self._submit_write(service, decision)
            if decision.changed:
                self._update_pool_metrics()
            result = decision.result
        return frees_addresses(result)

    def _submit_write(self, service: Service, decision: Decision) -> None:
        patch: dict[str, str | None] = {}
        ingress: list[str] | None = None
        if decision.handled and decision.changed:
            current = service.annotation_map
            desired = dict(decision.annotations)
            patch = {name: desired.get(name) for name in OWNED_ANNOTATIONS if current.get(name) != desired.get(name)}
            ingress = list(decision.ingress_ips) if tuple(decision.ingress_ips) != service.ingress_ips else None
        if patch or ingress is not None or decision.events:
            self.writes.submit(service.key, functools.partial(self._write, service, decision, patch, ingress))

    def _write(
        self, service: Service, decision: Decision, patch: dict[str, str | None], ingress: list[str] | None
    ) -> None:
        """On a writer thread: the decision's write, then its events. A write refused because the Service changed
        since the copy decided on (409) re-reads it and sends it back to be decided again, at once, so that what
        the allocator holds for it is what the API server shows."""
        key = service.key
        if patch or ingress is not None:
            try:
                written = write_service_state(
                    self.client, service.namespace, service.name, patch, ingress, service.resource_version
                )
            except ApiError as error:
                if error.status == 404:
                    return  # deleted meanwhile; the DELETED event follows
                if error.status != 409:
                    self._retry_later(key, error)
                    return
                self._on_conflict(key)
                return
            except Exception as error:  # the API server unreachable: retried with backoff like a failed decision
                self._retry_later(key, error)
                return
            self._conflicts.pop(key, None)
            self.services.remember_write(written)
            log.info(
                "service updated", extra={"op": "updateService", "service": key, "ips": list(decision.ingress_ips)}
            )
        ref = ObjectRef("Service", service.namespace, service.name, service.uid)
        for event in decision.events:
            self.recorder.record(ref, event.type, event.reason, event.message)

    def _on_conflict(self, key: str) -> None:
        conflicts = self._conflicts.get(key, 0) + 1
        self._conflicts[key] = conflicts
        if conflicts >= CONFLICT_ATTEMPTS:
            self._conflicts.pop(key, None)
            self._retry_later(
                key, ApiError("PATCH", key, 409, {"message": f"still conflicting after {conflicts} decisions"})
            )
            return
        try:
            self._fetch(key)
        except Exception as error:
            self._retry_later(key, error)
            return
        self.queue.put(key)

    def _fetch(self, key: str) -> None:
        """The Service as the API server has it now, into the cache (a 404: the DELETED event follows)."""
        namespace, _, name = key.partition("/")
        try:
            obj = self.client.get(service_path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return
            raise
        self.services.remember_write(obj)

    def _update_pool_metrics(self) -> None:
        figures: dict[str, tuple[int, int]] = {}
        for name in self.allocator.pool_names():
            counters = self.allocator.counters(name)
            in_use = counters.assigned_ipv4 + counters.assigned_ipv6
            figures[name] = (in_use, in_use + counters.available_ipv4 + counters.available_ipv6)
        metrics.export_pool_addresses(figures)
