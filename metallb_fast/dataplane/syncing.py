"""The sync sequence every backend shares (base.Responder): validate, resolve the interfaces, apply, report.

A backend (xdp.XdpResponder, ring.RingResponder, pyloop.PythonResponder) derives from SyncingResponder and writes
only `_apply`: put an owned table into effect on every interface it can serve (its own open/attach, tables or
maps, close/detach), set `_owned` to what it serves, and return the interfaces it could not serve with why. This
class validates first (nothing changes on a bad table), serialises sync(), serve_heartbeats() and close() under one
lock, refuses both after close(), keeps the heartbeat setting and says which interfaces failed
(ownership.InterfacesUnavailable) once everything else is applied. Not in base.py: ownership.py, which this uses,
imports base.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable

from metallb_fast.dataplane import ownership
from metallb_fast.dataplane.base import Owned, OwnedKey, ResponderError


class SyncingResponder(ABC):
    backend: str  # each backend's class attribute
    who: str  # how its messages name it ("ring backend", "xdp")

    def __init__(self, interfaces: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()  # sync, serve_heartbeats and close against each other
        self._closed = False
        self._fixed = tuple(dict.fromkeys(interfaces))  # listened on whether or not they own an address
        self._owned: dict[OwnedKey, bytes] = {}  # what _apply last put into effect
        self._heartbeat: tuple[int, tuple[str, ...]] = (0, ())  # serve_heartbeats(port, interfaces), checked

    def sync(self, owned: Owned) -> None:
        ownership.validate(owned, self.backend)
        with self._lock:
            self._refuse_if_closed("sync")
            failures = self._apply(owned)
        ownership.check_served(self.backend, failures)

    def serve_heartbeats(self, port: int, interfaces: Collection[str]) -> None:
        setting = ownership.heartbeat_interfaces(port, interfaces, self.backend)
        with self._lock:
            self._refuse_if_closed("serve_heartbeats")
            self._heartbeat = setting
            failures = self._apply(self._owned)
        ownership.check_served(self.backend, failures)

    def _refuse_if_closed(self, method: str) -> None:
        if self._closed:
            raise ResponderError(f"{self.who}: {method}() after close()")

    def _wanted(self, owned: Owned) -> list[str]:
        """The interfaces to listen on: those given at construction, those owning an address, those reflecting
        heartbeats, each once."""
        return ownership.interfaces(owned, (*self._fixed, *self._heartbeat[1]))

    @abstractmethod
    def _apply(self, owned: Owned) -> dict[str, str]:
        """Serve `owned` (valid) on every interface that can, set `_owned` to what is served, and return
        {interface: why} of those that cannot. Called with the lock held."""
