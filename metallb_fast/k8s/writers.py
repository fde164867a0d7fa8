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
from typing import TypeVar

from metallb_fast.k8s.client import ApiError, Json, KubeClient

log = logging.getLogger(__name__)

METALLB_GROUP_PATH = "/apis/metallb.io/v1beta1"
POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"

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
    return f"/api/v1/namespaces/{namespace}/services/{name}"


def write_service_status(client: KubeClient, namespace: str, name: str, ingress_ips: list[str]) -> Json:
    """Replace status.loadBalancer.ingress through the status subresource."""
    ingress = [{"ip": ip} for ip in ingress_ips]
    patch = {"status": {"loadBalancer": {"ingress": ingress or None}}}
    return retry_on_conflict(lambda: client.merge_patch(service_path(namespace, name) + "/status", patch))


def write_pool_annotation(client: KubeClient, namespace: str, name: str, pool: str | None) -> Json:
    """Set (or remove, with None) the metallb.io/ip-allocated-from-pool annotation."""
    patch = {"metadata": {"annotations": {POOL_ANNOTATION: pool}}}
    return retry_on_conflict(lambda: client.merge_patch(service_path(namespace, name), patch))


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
                    f"/api/v1/namespaces/{obj.namespace}/events/{event_name}",
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
        self.client.create(f"/api/v1/namespaces/{obj.namespace}/events", body)
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
    path = f"{METALLB_GROUP_PATH}/namespaces/{namespace}/configurationstates"
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
            "apiVersion": "metallb.io/v1beta1",
            "kind": "ConfigurationState",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        }
        client.create(path, body)
    # "add" replaces the whole status, so a stale errorSummary does not survive a now-valid configuration.
    operations = [{"op": "add", "path": "/status", "value": status}]
    retry_on_conflict(lambda: client.json_patch(f"{path}/{name}/status", operations))


class ServiceL2StatusWriter:
    """Keeps the ServiceL2Status objects of one node equal to the desired set, keyed by service namespace/name."""

    def __init__(self, client: KubeClient, namespace: str, node: str, owner: Json | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.node = node
        self.owner = owner  # ownerReference to the speaker's pod, when running in one
        self.path = f"{METALLB_GROUP_PATH}/namespaces/{namespace}/servicel2statuses"

    def current(self) -> dict[tuple[str, str], Json]:
        listing = self.client.get(self.path, labelSelector=f"metallb.io/node={self.node}")
        result: dict[tuple[str, str], Json] = {}
        for item in listing.get("items") or []:
            labels = (item.get("metadata") or {}).get("labels") or {}
            key = (labels.get("metallb.io/service-namespace", ""), labels.get("metallb.io/service-name", ""))
            if key in result:  # a duplicate from an interrupted earlier run
                self._delete(item)
                continue
            result[key] = item
        return result

    def apply(self, desired: Mapping[tuple[str, str], Json]) -> None:
        """desired: (service namespace, service name) -> ServiceL2Status body (generateName, labels, status)."""
        existing = self.current()
        for key, item in existing.items():
            if key not in desired:
                self._delete(item)
        for key, body in desired.items():
            item = existing.get(key)
            if item is None:
                created = dict(body)
                metadata = dict(created.get("metadata") or {})
                if self.owner:
                    metadata["ownerReferences"] = [self.owner]
                created["metadata"] = metadata
                created.pop("status", None)
                made = self.client.create(self.path, created)
                name = made["metadata"]["name"]
                self._write_status(name, body)
            elif (item.get("status") or {}) != (body.get("status") or {}):
                self._write_status(item["metadata"]["name"], body)

    def _write_status(self, name: str, body: Json) -> None:
        # "add" replaces the whole status, so a field dropped from the desired status is dropped here too.
        operations = [{"op": "add", "path": "/status", "value": body.get("status") or {}}]
        self.client.json_patch(f"{self.path}/{name}/status", operations)

    def _delete(self, item: Json) -> None:
        try:
            self.client.delete(f"{self.path}/{item['metadata']['name']}")
        except ApiError as error:
            if error.status != 404:
                raise

