"""Everything metallb-fast writes to the API server: Service status and annotation, Events, ServiceL2Status,
ConfigurationState. Each writer retries on conflict and reports, never raises into the reconcile loop unchecked.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from metallb_fast.k8s.client import ApiError, Json, KubeClient
from metallb_fast.vocabulary import (
    API_VERSION_V1BETA1,
    CORE_V1_PATH,
    LABEL_STATUS_NODE,
    LABEL_STATUS_SERVICE_NAME,
    LABEL_STATUS_SERVICE_NAMESPACE,
    METALLB_V1BETA1_PATH,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def retry_on_conflict(action: Callable[[], T], attempts: int = 5) -> T:
    for attempt in range(attempts):
        try:
            return action()
        except ApiError as error:
            if error.status != 409 or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def service_path(namespace: str, name: str) -> str:
    return f"{CORE_V1_PATH}/namespaces/{namespace}/services/{name}"


def write_service_state(
    client: KubeClient,
    namespace: str,
    name: str,
    annotations: Mapping[str, str | None],
    ingress_ips: list[str] | None,
    resource_version: str,
) -> Json:
    """Write the pool annotation (None removes one) and, unless None, status.loadBalancer.ingress, in one merge
    patch of the status subresource. The API server keeps metadata changes made through a Service's /status (its
    status strategy resets only the spec), which is how MetalLB writes the annotation with nothing but
    `services/status` granted: no write access to Services themselves is needed.

    The write is for the version of the Service the decision was made on: `resource_version` is a precondition
    (as in MetalLB's status update), and an ApiError 409 says the Service has changed since (decide again)."""
    metadata: Json = {"resourceVersion": resource_version} if resource_version else {}
    if annotations:
        metadata["annotations"] = dict(annotations)
    patch: Json = {"metadata": metadata} if metadata else {}
    if ingress_ips is not None:
        patch["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress_ips] or None}}
    return client.merge_patch(service_path(namespace, name) + "/status", patch)


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str
    uid: str = ""
    api_version: str = "v1"
    resource_version: str = ""

    def as_involved_object(self) -> Json:
        ref: Json = {"kind": self.kind, "namespace": self.namespace, "name": self.name, "apiVersion": self.api_version}
        if self.uid:
            ref["uid"] = self.uid
        if self.resource_version:
            ref["resourceVersion"] = self.resource_version
        return ref


class EventRecorder:
    """core/v1 Events with client-go's aggregation: a repeat of the same (object, type, reason, message) bumps
    `count` and `lastTimestamp` on the existing Event instead of creating another one.

    Like client-go's recorder, `record` only enqueues: a background thread writes, so a burst of decisions is not
    paced by one Event round trip each. `flush()` waits for what is queued (used at shutdown and by tests).
    """

    MAX_REMEMBERED = 4096  # client-go's aggregation cache size

    def __init__(self, client: KubeClient, component: str, host: str | None = None) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._seen: OrderedDict[tuple[str, str, str, str, str], tuple[str, int]] = OrderedDict()
        self._queue: queue.Queue[tuple[ObjectRef, str, str, str] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name=f"events-{component}", daemon=True)
        self._worker.start()

    def record(self, obj: ObjectRef, event_type: str, reason: str, message: str) -> None:
        self._queue.put((obj, event_type, reason, message))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every recorded Event was written (or given up on); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end the writer thread."""
        self.flush(timeout)
        self._queue.put(None)
        self._worker.join(timeout=1.0)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            obj, event_type, reason, message = item
            try:
                self._write(obj, event_type, reason, message)
            except Exception as error:  # a lost connection must not end the writer thread
                log.warning("event %s on %s/%s: %s", reason, obj.namespace, obj.name, error)
            finally:
                self._queue.task_done()

    def _write(self, obj: ObjectRef, event_type: str, reason: str, message: str) -> None:
        key = (obj.namespace, obj.name, event_type, reason, message)
        seen = self._seen.get(key)
        if seen is not None:
            event_name, count = seen
            try:
                self.client.merge_patch(
                    f"{CORE_V1_PATH}/namespaces/{obj.namespace}/events/{event_name}",
                    {"count": count + 1, "lastTimestamp": _now()},
                )
                self._remember(key, event_name, count + 1)
                return
            except ApiError as error:
                if error.status != 404:  # 404: the Event expired (TTL); create a new one
                    raise
        event_name = f"{obj.name}.{uuid.uuid4().hex[:16]}"
        source: Json = {"component": self.component}
        if self.host:
            source["host"] = self.host
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": obj.namespace},
            "involvedObject": obj.as_involved_object(),
            "type": event_type,
            "reason": reason,
            "message": message,
            "source": source,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "reportingComponent": self.component,
            "reportingInstance": self.host or "",
        }
        self.client.create(f"{CORE_V1_PATH}/namespaces/{obj.namespace}/events", body)
        self._remember(key, event_name, 1)

    def _remember(self, key: tuple[str, str, str, str, str], event_name: str, count: int) -> None:
        self._seen[key] = (event_name, count)
        self._seen.move_to_end(key)
        while len(self._seen) > self.MAX_REMEMBERED:
            self._seen.popitem(last=False)


def write_configuration_state(
    client: KubeClient, namespace: str, name: str, valid: bool, error_summary: str, labels: Mapping[str, str]
) -> None:
    """Create or update a ConfigurationState object (MetalLB >= 0.15) with result Valid/Invalid."""
    path = f"{METALLB_V1BETA1_PATH}/namespaces/{namespace}/configurationstates"
    status: Json = {"result": "Valid" if valid else "Invalid"}
    if error_summary:
        # Omitted rather than "" when valid: the 1.20 apiserver decodes an empty string in a CR as null.
        status["errorSummary"] = error_summary
    try:
        client.get(f"{path}/{name}")
    except ApiError as error:
        if error.status != 404:
            raise
        body: Json = {
            "apiVersion": API_VERSION_V1BETA1,
            "kind": "ConfigurationState",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        }
        client.create(path, body)
    # "add" replaces the whole status, so a stale errorSummary does not survive a now-valid configuration.
    operations = [{"op": "add", "path": "/status", "value": status}]
    retry_on_conflict(lambda: client.json_patch(f"{path}/{name}/status", operations))


class ServiceL2StatusWriter:
    """Keeps the ServiceL2Status objects of one node equal to the desired set, keyed by service namespace/name.

    What this node has written is remembered (listed once, with a label selector for this node): an update costs
    the writes it needs, not a LIST of every node's objects, which in a large cluster would grow with the number
    of Services. A failed write forgets it, so the next apply lists again."""

    def __init__(self, client: KubeClient, namespace: str, node: str, owner: Json | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.node = node
        self.owner = owner  # ownerReference to the speaker's pod, when running in one
        self.path = f"{METALLB_V1BETA1_PATH}/namespaces/{namespace}/servicel2statuses"
        self._ours: dict[tuple[str, str], tuple[str, Json]] | None = None  # service -> (object name, status)

    def _list(self, **labels: str) -> list[Json]:
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        return self.client.get(self.path, labelSelector=selector).get("items") or []

    def _list_ours(self) -> dict[tuple[str, str], tuple[str, Json]]:
        ours: dict[tuple[str, str], tuple[str, Json]] = {}
        for item in self._list(**{LABEL_STATUS_NODE: self.node}):
            key = _service_of(item)
            if key in ours:  # a duplicate from an interrupted earlier run
                self._delete(item)
                continue
            ours[key] = (item["metadata"]["name"], item.get("status") or {})
        return ours

    def apply(self, desired: Mapping[tuple[str, str], Json]) -> None:
        """desired: (service namespace, service name) -> ServiceL2Status body (generateName, labels, status).

        As MetalLB's announcing speaker does, another node's object for a Service this node starts announcing is
        deleted: after a failover the old node (perhaps dead, its Pod never evicted) would otherwise be shown
        announcing forever."""
        if self._ours is None:
            self._ours = self._list_ours()
        ours = self._ours
        try:
            for key in [k for k in ours if k not in desired]:
                self._delete_named(ours[key][0])
                del ours[key]
            for key, body in desired.items():
                status = body.get("status") or {}
                found = ours.get(key)
                if found is None:
                    ours[key] = (self._create(key, body), status)
                elif found[1] != status:
                    self._write_status(found[0], body)
                    ours[key] = (found[0], status)
        except Exception:
            self._ours = None
            raise

    def _create(self, key: tuple[str, str], body: Json) -> str:
        namespace, name = key
        labels = {LABEL_STATUS_SERVICE_NAMESPACE: namespace, LABEL_STATUS_SERVICE_NAME: name}
        for item in self._list(**labels):
            if ((item.get("metadata") or {}).get("labels") or {}).get(LABEL_STATUS_NODE) != self.node:
                self._delete(item)
        created = dict(body)
        metadata = dict(created.get("metadata") or {})
        if self.owner:
            metadata["ownerReferences"] = [self.owner]
        created["metadata"] = metadata
        created.pop("status", None)
        made = self.client.create(self.path, created)
        object_name = str(made["metadata"]["name"])
        self._write_status(object_name, body)
        return object_name

    def _write_status(self, name: str, body: Json) -> None:
        # "add" replaces the whole status, so a field dropped from the desired status is dropped here too.
        operations = [{"op": "add", "path": "/status", "value": body.get("status") or {}}]
        self.client.json_patch(f"{self.path}/{name}/status", operations)

    def _delete(self, item: Json) -> None:
        self._delete_named(item["metadata"]["name"])

    def _delete_named(self, name: str) -> None:
        try:
            self.client.delete(f"{self.path}/{name}")
        except ApiError as error:
            if error.status != 404:
                raise


def _service_of(item: Json) -> tuple[str, str]:
    labels = (item.get("metadata") or {}).get("labels") or {}
    return (labels.get(LABEL_STATUS_SERVICE_NAMESPACE, ""), labels.get(LABEL_STATUS_SERVICE_NAME, ""))


class LatestStateWriter(Generic[T]):
    """Applies the most recent desired state on a background thread, retrying with backoff until it sticks.

    The speaker's reconcile loop must never wait on the API server: it also keeps the fast path's liveness
    deadline fresh, and a slow API server must not make every node stop answering. Intermediate states that
    were superseded before they could be written are skipped, which is what a level-triggered writer wants.
    """

    def __init__(self, name: str, apply: Callable[[T], None], max_delay: float = 30.0) -> None:
        self._apply = apply
        self._max_delay = max_delay
        self._condition = threading.Condition()
        self._pending: tuple[T] | None = None
        self._closed = False
        self._busy = False
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name=f"writer-{name}", daemon=True)
        self._thread.start()

    def submit(self, state: T) -> None:
        with self._condition:
            self._pending = (state,)
            self._condition.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the last submitted state was written (or given up on at close); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending is not None or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self._condition:
                while self._pending is None and not self._closed:
                    self._condition.wait()
                if self._closed and self._pending is None:
                    return
                assert self._pending is not None
                (state,) = self._pending
                self._pending = None
                self._busy = True
            try:
                self._apply(state)
                delay = 0.0
            except Exception as error:
                self.failures += 1
                delay = min(self._max_delay, delay * 2 if delay else 0.5)
                log.warning("write failed, retrying in %.1fs: %s", delay, error, extra={"op": "write"})
                with self._condition:
                    closing = self._closed
                    if self._pending is None and not closing:
                        self._pending = (state,)  # retry unless a newer state arrived meanwhile
                if not closing:
                    time.sleep(delay)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()
