"""The I/O of membership: one UDP socket and one TCP listener on the bind address, and one thread that feeds the
pure state machine (`swim.Swim`) with what arrives and carries out what it returns.

Only the loop thread touches the state machine. A TCP exchange (push-pull, a stream ping, an incoming stream) can
block for up to the TCP timeout, so each runs on a short-lived worker thread that hands its result back to the
loop through a queue; the loop never waits on a peer.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import logging
import os
import queue
import random
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from metallb_fast.membership import wire
from metallb_fast.membership.messages import Message, PushPull, address_bytes
from metallb_fast.membership.swim import (
    Member,
    MemberEvent,
    Output,
    PushPullRequest,
    SendPacket,
    StreamPing,
    Swim,
    SwimStats,
)
from metallb_fast.membership.timing import Timing

log = logging.getLogger(__name__)

UDP_BUFFER = 65536
# memberlist's UDPBufferSize: what a Go peer expects a packet to fit in (it reads 64 KiB, but sends <= 1400).
PACKET_BUDGET = 1400
AUTH_LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class NodeSnapshot:
    members: tuple[Member, ...]
    stats: SwimStats
    rejected: dict[str, int]


class MembershipError(Exception):
    """Membership cannot start (the bind address is not usable, ...): the message says what and where."""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    bind_host: str
    bind_port: int = 7946
    timing: Timing | None = None  # None: memberlist's LAN defaults ("metallb")
    keyring: wire.Keyring = field(default_factory=wire.Keyring.none)
    label: bytes = b""
    meta: bytes = b""  # memberlist node metadata, gossiped with this node's alive messages (MetalLB sends none)


EventHandler = Callable[[MemberEvent], None]
Work = Callable[[Swim, float], list[Output]]


class MemberlistNode:
    """A memberlist member: start(), join(), members(), leave(), stop(). Thread-safe."""

    def __init__(self, config: NodeConfig, on_event: EventHandler, rng: random.Random | None = None) -> None:
        from metallb_fast.membership.timing import TIMINGS

        self.config = config
        self._on_event = on_event
        self._timing = config.timing or TIMINGS["metallb"]
        self._rng = rng or random.Random()
        self._udp = self._tcp = None  # type: socket.socket | None
        self._swim: Swim | None = None
        self._work: queue.Queue[Work] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._members: list[Member] = []
        self._snapshot = NodeSnapshot((), SwimStats(), {})
        self._left = threading.Event()
        self.rejected: Counter[str] = Counter()  # packets/streams refused, by codec problem
        self._auth_logged_at = -1e9

    # ------------------------------------------------------------------ public
    @property
    def address(self) -> tuple[str, int]:
        return self.config.bind_host, self.port

    @property
    def port(self) -> int:
        return self._udp.getsockname()[1] if self._udp else self.config.bind_port

    def start(self) -> MemberlistNode:
        self._udp, self._tcp = self._bind()
        now = time.monotonic()
        addr = address_bytes(self.config.bind_host)
        self._swim = Swim(self.config.name, addr, self.port, self._timing, self._rng, now, meta=self.config.meta)
        self._members = self._swim.members()
        self._thread = threading.Thread(target=self._run, name=f"memberlist-{self.config.name}", daemon=True)
        self._thread.start()
        return self

    def join(self, addresses: Sequence[tuple[str, int]]) -> None:
        """Push-pull with each address (join); results arrive as events."""
        targets = list(addresses)
        if targets:
            self._submit(lambda swim, now: swim.join(targets, now))

    def members(self) -> list[Member]:
        """Alive and suspect members including ourselves (memberlist's Members(), MetalLB's candidates)."""
        with self._lock:
            return list(self._members)

    def snapshot(self) -> NodeSnapshot:
        """Every known member (also dead and left ones, until reaped) and the counters, as of the loop's last
        pass: safe to read from any thread."""
        with self._lock:
            return self._snapshot

    def declare_dead(self, name: str, reason: str) -> None:
        self._submit(lambda swim, now: swim.declare_dead(name, now, reason))

    def leave(self, timeout: float = 1.0) -> bool:
        """Tell the others we are leaving (a `dead` about ourselves) and wait until it has been sent."""
        if self._thread is None or not self._thread.is_alive():
            return False

        def leave(swim: Swim, now: float) -> list[Output]:
            self._carry_out(swim.leave(now))
            self._left.set()  # only once the packets are out: the caller may close the socket next
            return []

        self._submit(leave)
        return self._left.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # ------------------------------------------------------------------ sockets
    def _bind(self) -> tuple[socket.socket, socket.socket]:
        try:
            bind_ip = ipaddress.ip_address(self.config.bind_host)
        except ValueError:
            raise MembershipError(
                f"memberlist bind address {self.config.bind_host!r}: must be an IP address (the Pod's, "
                "status.podIP, as MetalLB's METALLB_ML_BIND_ADDR)"
            ) from None
        if bind_ip.is_unspecified:
            raise MembershipError(
                f"memberlist bind address {self.config.bind_host}: must be this node's own address, not a wildcard "
                "(peers learn the address to reach us from it)"
            )
        family = socket.AF_INET6 if ":" in self.config.bind_host else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Port 0 (tests): let UDP pick, then TCP takes the same number, as memberlist does.
            udp.bind((self.config.bind_host, self.config.bind_port))
            tcp.bind((self.config.bind_host, udp.getsockname()[1]))
            tcp.listen(64)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
        except OSError as error:
            udp.close()
            tcp.close()
            raise MembershipError(
                f"memberlist: cannot listen on {self.config.bind_host}:{self.config.bind_port} (TCP and UDP): "
                f"{error.strerror or error}"
            ) from error
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full pipe: already awake; closed: stopped
            os.write(self._wake_w, b"x")

    def _submit(self, work: Work) -> None:
        self._work.put(work)
        self._wake()

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        assert self._swim is not None and self._udp is not None and self._tcp is not None
        selector = selectors.DefaultSelector()
        selector.register(self._udp, selectors.EVENT_READ, "udp")
        selector.register(self._tcp, selectors.EVENT_READ, "tcp")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stop.is_set():
                timeout = max(0.0, self._swim.next_wakeup() - time.monotonic())
                for key, _ in selector.select(timeout=min(timeout, 1.0)):
                    if key.data == "udp":
                        self._receive_packets()
                    elif key.data == "tcp":
                        self._accept_streams()
                    else:
                        self._drain_wake()
                self._run_submitted()
                self._carry_out(self._swim.tick(time.monotonic()))
                self._publish()
        except Exception:
            log.exception("memberlist loop failed", extra={"op": "memberlist"})
            raise
        finally:
            selector.close()

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _run_submitted(self) -> None:
        assert self._swim is not None
        while True:
            try:
                work = self._work.get_nowait()
            except queue.Empty:
                return
            self._carry_out(work(self._swim, time.monotonic()))

    def _publish(self) -> None:
        assert self._swim is not None
        members = self._swim.members()
        snapshot = NodeSnapshot(tuple(self._swim.all_members()), copy.deepcopy(self._swim.stats), dict(self.rejected))
        with self._lock:
            self._members = members
            self._snapshot = snapshot

    def _receive_packets(self) -> None:
        assert self._swim is not None and self._udp is not None
        for _ in range(64):  # bounded: timers must still run under a flood
            try:
                data, source = self._udp.recvfrom(UDP_BUFFER)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.debug("memberlist: receive failed: %s", error)
                return
            decoded = wire.decode_packet(data, keyring=self.config.keyring, label=self.config.label)
            if not decoded.authenticated:
                self._refused(source[0], decoded.problems, "packet")
                continue
            for problem in decoded.problems:
                self.rejected[problem.reason] += 1
            if decoded.messages:
                self._carry_out(self._swim.handle_packet(source[0], source[1], decoded.messages, time.monotonic()))

    def _refused(self, host: str, problems: Sequence[wire.Problem], what: str) -> None:
        reasons = [p.reason for p in problems] or ["unauthenticated"]
        for reason in reasons:
            self.rejected[reason] += 1
        now = time.monotonic()
        if now - self._auth_logged_at >= AUTH_LOG_EVERY_S:
            self._auth_logged_at = now
            log.warning(
                "memberlist: refused a %s from %s: %s (a different secret key, or encryption on one side only?)",
                what,
                host,
                ", ".join(reasons),
                extra={"op": "memberlist", "rejected": dict(self.rejected)},
            )

    def _carry_out(self, outputs: Sequence[Output]) -> None:
        for output in outputs:
            if isinstance(output, SendPacket):
                self._send_packet(output)
            elif isinstance(output, PushPullRequest):
                self._spawn(self._push_pull, output)
            elif isinstance(output, StreamPing):
                self._spawn(self._stream_ping, output)
            elif isinstance(output, MemberEvent):
                self._publish()  # whoever the event wakes must read the member list it announces
                try:
                    self._on_event(output)
                except Exception:
                    log.exception("memberlist event handler failed", extra={"op": "memberlist"})

    def _send_packet(self, output: SendPacket) -> None:
        assert self._udp is not None
        for packet in self._packets(output.messages, output.crc):
            try:
                self._udp.sendto(packet, (output.host, output.port))
            except OSError as error:
                log.debug("memberlist: send to %s:%d failed: %s", output.host, output.port, error)

    def _packets(self, messages: Sequence[Message], crc: bool) -> list[bytes]:
        """As few packets as fit the budget: a compound of as many messages as fit, the rest in the next one."""
        encode = lambda batch: wire.encode_packet(  # noqa: E731
            batch, keyring=self.config.keyring, label=self.config.label, crc=crc
        )
        packets: list[bytes] = []
        batch: list[Message] = []
        for message in messages:
            if batch and (len(batch) >= 255 or len(encode([*batch, message])) > PACKET_BUDGET):
                packets.append(encode(batch))
                batch = []
            batch.append(message)
        if batch:
            packets.append(encode(batch))
        return packets

    # ------------------------------------------------------------------ streams (worker threads)
    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        threading.Thread(target=target, args=args, name="memberlist-stream", daemon=True).start()

    def _dial(self, host: str, port: int) -> socket.socket:
        sock = socket.create_connection(
            (host, port), timeout=self._timing.tcp_timeout, source_address=(self.config.bind_host, 0)
        )
        sock.settimeout(self._timing.tcp_timeout)
        return sock

    def _read_stream(self, sock: socket.socket) -> Message:
        buffer = b""
        while True:
            result = wire.decode_stream(buffer, keyring=self.config.keyring, label=self.config.label)
            if result.problem is not None:
                raise StreamRefused(result.problem)
            if not result.need_more and result.message is not None:
                return result.message
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the peer closed the stream early")
            buffer += chunk

    def _write_stream(self, sock: socket.socket, message: Message) -> None:
        sock.sendall(wire.encode_stream(message, keyring=self.config.keyring, label=self.config.label))

    def _push_pull(self, request: PushPullRequest) -> None:
        try:
            with self._dial(request.host, request.port) as sock:
                self._write_stream(sock, request.state)
                reply = self._read_stream(sock)
            if not isinstance(reply, PushPull):
                raise ConnectionError(f"expected a push-pull answer, got {type(reply).__name__}")
        except StreamRefused as refused:
            self._refused(request.host, [refused.problem], "push-pull answer")
            error = f"refused: {refused.problem.reason}"
            self._submit(lambda swim, now: swim.push_pull_failed(request.host, request.port, request.join, now, error))
            return
        except (OSError, ConnectionError) as exc:
            error = str(exc) or type(exc).__name__
            log.debug("memberlist: push-pull with %s:%d failed: %s", request.host, request.port, error)
            self._submit(lambda swim, now: swim.push_pull_failed(request.host, request.port, request.join, now, error))
            return
        self._submit(lambda swim, now: swim.push_pull_reply(request.host, request.port, reply, request.join, now))

    def _stream_ping(self, request: StreamPing) -> None:
        try:
            with self._dial(request.host, request.port) as sock:
                self._write_stream(sock, request.ping)
                reply = self._read_stream(sock)
        except (OSError, ConnectionError, StreamRefused):
            return  # the probe's own timer decides; a failed TCP ping only means no extra evidence
        if getattr(reply, "seq_no", None) == request.seq_no:
            self._submit(lambda swim, now: swim.handle_stream_ack(request.seq_no, now))

    def _accept_streams(self) -> None:
        assert self._tcp is not None
        while True:
            try:
                sock, source = self._tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.debug("memberlist: accept failed: %s", error)
                return
            self._spawn(self._serve_stream, sock, source)

    def _serve_stream(self, sock: socket.socket, source: tuple[str, int]) -> None:
        """Read one request, let the loop thread answer it, write the answer."""
        with sock:
            sock.settimeout(self._timing.tcp_timeout)
            try:
                message = self._read_stream(sock)
            except StreamRefused as refused:
                self._refused(source[0], [refused.problem], "stream")
                return
            except (OSError, ConnectionError):
                return
            answered = threading.Event()
            answer: list[Message | None] = [None]

            def handle(swim: Swim, now: float) -> list[Output]:
                reply, outputs = swim.handle_stream(source[0], source[1], message, now)
                answer[0] = reply
                answered.set()
                return outputs

            self._submit(handle)
            if not answered.wait(self._timing.tcp_timeout) or answer[0] is None:
                return
            try:
                self._write_stream(sock, answer[0])
            except OSError:
                return


class StreamRefused(Exception):
    def __init__(self, problem: wire.Problem) -> None:
        super().__init__(problem.reason)
        self.problem = problem

