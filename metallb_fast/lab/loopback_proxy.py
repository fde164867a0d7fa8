"""Make a TCP service of the host namespace appear on 127.0.0.1 inside lab namespaces.

The lab's API server listens on the host's loopback; speakers run inside node namespaces, which have their own
loopback. A socket keeps the namespace it was created in, so one thread can listen inside each node namespace and
connect out from the host namespace: no address, route or link is added anywhere, and the TLS certificate made
for 127.0.0.1 stays valid for the speakers. Stopping the proxy (or the server behind it) cuts every connection,
exactly as a lost API server would.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections.abc import Iterable

from metallb_fast.dataplane.netns import in_netns

log = logging.getLogger(__name__)


class LoopbackProxy:
    def __init__(self, namespaces: Iterable[str], port: int, target_port: int, target_host: str = "127.0.0.1"):
        self.port = port
        self.target = (target_host, target_port)
        self._listeners: list[socket.socket] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        for name in namespaces:
            with in_netns(name):
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(64)
            listener.setblocking(False)
            self._listeners.append(listener)
            self._selector.register(listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._accept_loop, name="loopback-proxy", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.2):
                listener = key.fileobj
                assert isinstance(listener, socket.socket)
                try:
                    inside, _ = listener.accept()
                except OSError:
                    continue
                threading.Thread(target=self._serve, args=(inside,), daemon=True).start()

    def _serve(self, inside: socket.socket) -> None:
        inside.setblocking(True)
        try:
            outside = socket.create_connection(self.target, timeout=5)
        except OSError:
            inside.close()  # the server is down: the client sees a refused/reset connection, as it would directly
            return
        outside.settimeout(None)
        with self._lock:
            self._connections.update((inside, outside))
        pump = threading.Thread(target=self._pump, args=(outside, inside), daemon=True)
        pump.start()
        self._pump(inside, outside)
        pump.join()
        with self._lock:
            self._connections.difference_update((inside, outside))
        inside.close()
        outside.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                source.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> None:
        """Cut every open connection (the listeners stay): what clients see when the server restarts."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.drop_connections()
        for listener in self._listeners:
            self._selector.unregister(listener)
            listener.close()
        self._selector.close()

    def __enter__(self) -> LoopbackProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
