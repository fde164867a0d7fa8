"""The I/O of the data-path detector: one UDP socket on the heartbeat port and one thread that feeds the pure
Detector. Heartbeat requests go out from this socket; the peers' fast paths reflect them in the kernel, so the
replies arrive here. Relay requests and replies (userspace to userspace) share the socket.

Requests that peers send us are answered by our own fast path (XDP/ring/python serve_heartbeats), never here: a
speaker that is paused must still look alive while its kernel answers, and one whose fast path went quiet must not.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping

from metallb_fast.dataplane import heartbeat as wire
from metallb_fast.membership import relay_wire
from metallb_fast.membership.detector import (
    Address,
    DeadVerdict,
    Detector,
    DetectorTiming,
    Output,
    Recovered,
    SendHeartbeat,
    SendRelayReply,
    SendRelayRequest,
)

log = logging.getLogger(__name__)


class DataPathWatch:
    def __init__(
        self,
        bind_host: str,
        port: int,
        on_dead: Callable[[str, str], None],
        on_change: Callable[[], None] = lambda: None,
        on_recovered: Callable[[str], None] = lambda _: None,
        timing: DetectorTiming | None = None,
        key: bytes | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.bind_host = bind_host
        self.port = port
        self._on_dead = on_dead
        self._on_change = on_change
        self._on_recovered = on_recovered
        self._seen: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
        self._key = relay_wire.relay_key(key)
        self._detector = Detector(timing or DetectorTiming(), rng or random.Random(), time.monotonic())
        self._lock = threading.Lock()  # the detector is touched by the loop and by set_peers
        self._stop = threading.Event()
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((bind_host, port))
        except OSError as error:
            self._sock.close()
            raise OSError(error.errno, f"heartbeat port {bind_host}:{port}: {error.strerror}") from error
        self.port = self._sock.getsockname()[1]
        self._sock.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="datapath-watch", daemon=True)
        self.sent = self.replies = self.ignored = 0

    def start(self) -> DataPathWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def set_peers(self, peers: Mapping[str, tuple[Address, int]]) -> None:
        with self._lock:
            self._detector.set_peers(peers)

    def unreachable(self) -> set[str]:
        with self._lock:
            return self._detector.unreachable()

    def reachable(self) -> set[str]:
        with self._lock:
            return self._detector.reachable()

    def _notice_changes(self) -> None:
        """Wake the speaker when a peer becomes (un)reachable: the split-brain rule must react at once."""
        with self._lock:
            seen = (frozenset(self._detector.reachable()), frozenset(self._detector.unreachable()))
        if seen != self._seen:
            self._seen = seen
            self._on_change()

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                with self._lock:
                    wait = self._detector.next_wakeup() - time.monotonic()
                if selector.select(timeout=min(max(0.0, wait), 0.1)):
                    self._receive()
                with self._lock:
                    outputs = self._detector.tick(time.monotonic())
                self._carry_out(outputs)
                self._notice_changes()
        except Exception:
            log.exception("data-path watch failed", extra={"op": "heartbeat"})
        finally:
            selector.close()

    def _receive(self) -> None:
        for _ in range(256):
            try:
                data, source = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            now = time.monotonic()
            reply = wire.parse_reply(data)
            if reply is not None:
                self.replies += 1
                with self._lock:
                    outputs = self._detector.on_reply(reply.nonce, now)
                self._carry_out(outputs)
                continue
            message = relay_wire.decode(data, self._key)
            with self._lock:
                if isinstance(message, relay_wire.RelayRequest):
                    outputs = self._detector.on_relay_request((source[0], source[1]), message.target,
                                                              message.nonce, now)
                elif isinstance(message, relay_wire.RelayReply):
                    outputs = self._detector.on_relay_reply(message.nonce, message.alive, now)
                else:
                    self.ignored += 1  # a request our fast path reflects, or junk
                    outputs = []
            self._carry_out(outputs)

    def _carry_out(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, DeadVerdict | Recovered):
                try:
                    if isinstance(output, DeadVerdict):
                        self._on_dead(output.name, output.reason)
                    else:
                        self._on_recovered(output.name)
                except Exception:
                    log.exception("data-path verdict handler failed", extra={"op": "heartbeat"})
                continue
            if isinstance(output, SendHeartbeat):
                data = wire.build_request(output.nonce, output.seq)
            elif isinstance(output, SendRelayRequest):
                data = relay_wire.encode(relay_wire.RelayRequest(output.nonce, output.target), self._key)
            else:
                assert isinstance(output, SendRelayReply)
                data = relay_wire.encode(relay_wire.RelayReply(output.nonce, output.alive), self._key)
            with contextlib.suppress(OSError):  # an unreachable peer is what the detector measures
                self._sock.sendto(data, output.to)
                self.sent += 1
