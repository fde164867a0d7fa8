"""List-then-watch informers with a cache keyed by namespace/name.

One thread per resource: list (paged), then watch from the list's resourceVersion with bookmarks. A `410 Gone`
(or an ERROR event carrying it) relists and emits the difference as events, so consumers never miss a deletion
that happened while disconnected. A dropped connection reconnects with jittered exponential backoff.
Handlers run on the informer thread and must only enqueue.

Lean caches (client-go's cache transforms): an informer may be given a `parse` function that turns each object into
the frozen view its program decides on (resources.Service, Node, EndpointSlice). The cache then holds only those
views, one per object, shared by every reader, and an update whose view did not change (a Node's heartbeat, a
Service's managedFields) reaches no handler: the cost of an event does not grow with what decisions never read.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

import urllib3

from metallb_fast import vocabulary
from metallb_fast.k8s.client import ApiError, Json, KubeClient, iter_json_lines

T = TypeVar("T")
V = TypeVar("V")

log = logging.getLogger(__name__)


class EventType(str, Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


Handler = Callable[[EventType, Any], None]  # (event, the object's view: the JSON itself without a parse function)


def object_key(obj: Json) -> str:
    """The cache key: `namespace/name`, or the name of a cluster-scoped object."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return vocabulary.object_key(namespace, str(meta.get("name"))) if namespace else str(meta.get("name"))


@dataclass(frozen=True)
class Resource:
    """Where a kind lives, e.g. Resource("/apis/metallb.io/v1beta1", "ipaddresspools")."""

    group_version_path: str
    plural: str
    namespace: str | None = None  # None = all namespaces
    label_selector: str | None = None

    @property
    def path(self) -> str:
        if self.namespace:
            return f"{self.group_version_path}/namespaces/{self.namespace}/{self.plural}"
        return f"{self.group_version_path}/{self.plural}"


def wait_synced(informers: Iterable[Informer], stop: Callable[[], bool]) -> bool:
    """Block until every informer has listed once; False as soon as `stop()` says the program is stopping."""
    for informer in informers:
        while not informer.synced.wait(0.5):
            if stop():
                return False
    return True


class GoneError(Exception):
    """The watch's resourceVersion is too old: relist."""


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 10.0
    current: float = field(default=0.0)

    def next_delay(self) -> float:
        self.current = min(self.maximum, self.current * 2 if self.current else self.initial)
        return self.current * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.current = 0.0


def retry_until_stopped(action: Callable[[], T], stop: threading.Event, what: str, op: str) -> T | None:
    """Call `action` until it gets past the API server (an ApiError is logged and retried with jittered backoff);
    None when `stop` is set first."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            return action()
        except ApiError as error:
            delay = backoff.next_delay()
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, error, extra={"op": op})
            stop.wait(delay)
    return None


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    resource_version: str
    view: V


def _identity(obj: Json) -> Any:
    return obj


class Informer(Generic[V]):
    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        handler: Handler,
        *,
        parse: Callable[[Json], V] = _identity,
        page_size: int = 500,
        watch_timeout_seconds: int = 300,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.handler = handler
        self.parse = parse
        self.page_size = page_size
        self.watch_timeout_seconds = watch_timeout_seconds
        self.name = name or resource.plural
        self._cache: dict[str, _Entry[V]] = {}
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)
        self.relists = 0
        self.reconnects = 0
        self.unchanged = 0  # updates dropped because the view did not change

    def start(self) -> Informer[V]:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            # Closing the socket unblocks the watch read at once.
            try:
                response.shutdown()
            except Exception:
                response.close()
        self._thread.join(timeout=5)

    def __len__(self) -> int:
        return len(self._cache)

    def snapshot(self) -> list[V]:
        with self._lock:
            return [entry.view for entry in self._cache.values()]

    def items(self) -> list[tuple[str, V]]:
        with self._lock:
            return [(key, entry.view) for key, entry in self._cache.items()]

    def versions(self) -> dict[str, str]:
        """key -> resourceVersion of what the cache holds (what a test compares with the API server)."""
        with self._lock:
            return {key: entry.resource_version for key, entry in self._cache.items()}

    def get(self, key: str) -> V | None:
        with self._lock:
            entry = self._cache.get(key)
        return None if entry is None else entry.view

    def remember_write(self, obj: Json) -> None:
        """Put the object a write returned into the cache, so the next decision does not read a stale copy
        before the watch catches up. Older versions never replace newer ones."""
        key, version = object_key(obj), _resource_version(obj)
        entry = _Entry(version, self.parse(obj))
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or _newer_or_equal(version, cached.resource_version):
                self._cache[key] = entry

    def _run(self) -> None:
        backoff = Backoff()
        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                    self.synced.set()
                    backoff.reset()
                resource_version = self._watch(resource_version, backoff)
            except GoneError:
                log.info("informer %s: resourceVersion too old, relisting", self.name)
                resource_version = None
            except (urllib3.exceptions.HTTPError, OSError, ApiError, ValueError) as error:
                if self._stop.is_set():
                    return
                if isinstance(error, ApiError) and error.status == 410:
                    resource_version = None
                    continue
                delay = backoff.next_delay()
                self.reconnects += 1
                log.warning("informer %s: %s; reconnecting in %.1fs", self.name, error, delay)
                self._stop.wait(delay)

    def _relist(self) -> str:
        items: dict[str, _Entry[V]] = {}
        continue_token: str | None = None
        while True:
            page = self.client.get(
                self.resource.path,
                limit=self.page_size,
                labelSelector=self.resource.label_selector,
                **({"continue": continue_token} if continue_token else {}),
            )
            kind = str(page.get("kind") or "").removesuffix("List")
            api_version = page.get("apiVersion")
            for item in page.get("items") or []:
                # List items carry no kind/apiVersion; consumers dispatch on them.
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", api_version)
                key, version = object_key(item), _resource_version(item)
                cached = self._cache.get(key)
                # An unchanged object keeps its view: a relist of thousands re-parses only what changed.
                items[key] = (
                    cached
                    if cached is not None and cached.resource_version == version
                    else (_Entry(version, self.parse(item)))
                )
            continue_token = (page.get("metadata") or {}).get("continue")
            if not continue_token:
                resource_version = str((page.get("metadata") or {}).get("resourceVersion") or "")
                break
        self.relists += 1
        with self._lock:
            old_cache = self._cache
            self._cache = items
        for key, entry in old_cache.items():
            if key not in items:
                self.handler(EventType.DELETED, entry.view)
        for key, entry in items.items():
            old = old_cache.get(key)
            if old is None:
                self.handler(EventType.ADDED, entry.view)
            elif old is not entry and old.view != entry.view:
                self.handler(EventType.MODIFIED, entry.view)
        return resource_version

    def _watch(self, resource_version: str, backoff: Backoff) -> str:
        query: dict[str, Any] = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.watch_timeout_seconds,
            "labelSelector": self.resource.label_selector,
        }
        response = self.client.open(
            "GET", self.resource.path, query=query, timeout=(10.0, self.watch_timeout_seconds + 30.0)
        )
        self._response = response
        if self._stop.is_set():  # stop() ran while the watch was opening: it could not close it
            response.release_conn()
            return resource_version
        try:
            for event in iter_json_lines(response):
                event_type = event.get("type")
                obj = event.get("object") or {}
                if event_type == "ERROR":
                    if obj.get("code") == 410:
                        raise GoneError()
                    raise ApiError("WATCH", self.resource.path, int(obj.get("code") or 500), obj)
                backoff.reset()  # only a good event proves the connection healthy
                resource_version = _resource_version(obj) or resource_version
                if event_type == "BOOKMARK":
                    continue
                self._apply(EventType(event_type), obj)
        finally:
            self._response = None
            response.release_conn()
        return resource_version

    def _apply(self, event_type: EventType, obj: Json) -> None:
        key, version = object_key(obj), _resource_version(obj)
        view = self.parse(obj)
        with self._lock:
            cached = self._cache.get(key)
            if event_type is EventType.DELETED:
                self._cache.pop(key, None)
            elif cached is not None and _newer(cached.resource_version, version):
                # A write of ours already put a newer version in the cache (remember_write); deciding on this
                # older one would undo it until the watch catches up.
                return
            else:
                self._cache[key] = _Entry(version, view)
        if event_type is EventType.MODIFIED and cached is not None and cached.view == view:
            self.unchanged += 1
            return
        self.handler(event_type, view)


def _newer(a: str, b: str) -> bool:
    return a.isdigit() and b.isdigit() and int(a) > int(b)


def _newer_or_equal(a: str, b: str) -> bool:
    """resourceVersions are opaque, but etcd's are integers; when they are not, trust the watch instead."""
    return a.isdigit() and b.isdigit() and int(a) >= int(b)


def _resource_version(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
