"""List-then-watch informers with a cache keyed by namespace/name.

One thread per resource: list (paged), then watch from the list's resourceVersion with bookmarks. A `410 Gone`
(or an ERROR event carrying it) relists and emits the difference as events, so consumers never miss a deletion
that happened while disconnected. A dropped connection reconnects with jittered exponential backoff.
Handlers run on the informer thread and must only enqueue.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import urllib3

from metallb_fast import vocabulary
from metallb_fast.k8s.client import ApiError, Json, KubeClient, iter_json_lines

T = TypeVar("T")

log = logging.getLogger(__name__)


class EventType(str, Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


Handler = Callable[[EventType, Json], None]


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


class Informer:
    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        handler: Handler,
        *,
        page_size: int = 500,
        watch_timeout_seconds: int = 300,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.handler = handler
        self.page_size = page_size
        self.watch_timeout_seconds = watch_timeout_seconds
        self.name = name or resource.plural
        self.cache: dict[str, Json] = {}
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)
        self.relists = 0
        self.reconnects = 0

    def start(self) -> Informer:
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

    def snapshot(self) -> list[Json]:
        with self._lock:
            return list(self.cache.values())

    def get(self, key: str) -> Json | None:
        with self._lock:
            return self.cache.get(key)

    def remember_write(self, obj: Json) -> None:
        """Put the object a write returned into the cache, so the next decision does not read a stale copy
        before the watch catches up. Older versions never replace newer ones."""
        key = object_key(obj)
        with self._lock:
            cached = self.cache.get(key)
            if cached is None or _newer_or_equal(obj, cached):
                self.cache[key] = obj

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
        items: dict[str, Json] = {}
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
                items[object_key(item)] = item
            continue_token = (page.get("metadata") or {}).get("continue")
            if not continue_token:
                resource_version = str((page.get("metadata") or {}).get("resourceVersion") or "")
                break
        self.relists += 1
        with self._lock:
            previous = self.cache
            self.cache = items
        for key, obj in previous.items():
            if key not in items:
                self.handler(EventType.DELETED, obj)
        for key, obj in items.items():
            old = previous.get(key)
            if old is None:
                self.handler(EventType.ADDED, obj)
            elif _resource_version(old) != _resource_version(obj):
                self.handler(EventType.MODIFIED, obj)
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
                key = object_key(obj)
                with self._lock:
                    cached = self.cache.get(key)
                    if event_type == "MODIFIED" and cached is not None and _newer(cached, obj):
                        # A write of ours already put a newer version in the cache (remember_write); deciding
                        # on this older one would undo it until the watch catches up.
                        continue
                    if event_type == "DELETED":
                        self.cache.pop(key, None)
                    else:
                        self.cache[key] = obj
                self.handler(EventType(event_type), obj)
        finally:
            self._response = None
            response.release_conn()
        return resource_version


def _newer(a: Json, b: Json) -> bool:
    ra, rb = _resource_version(a), _resource_version(b)
    return ra.isdigit() and rb.isdigit() and int(ra) > int(rb)


def _newer_or_equal(a: Json, b: Json) -> bool:
    """resourceVersions are opaque, but etcd's are integers; when they are not, trust the watch instead."""
    ra, rb = _resource_version(a), _resource_version(b)
    return ra.isdigit() and rb.isdigit() and int(ra) >= int(rb)


def _resource_version(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
