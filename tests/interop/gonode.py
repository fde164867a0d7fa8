"""Run mlnode (a Go hashicorp/memberlist member configured like MetalLB's speaker) from tests.

    with GoNode("n1", bind="127.0.0.1") as a, GoNode("n2", join=[a.addr]) as b:
        b.wait_event("join", "n1")
        assert [m["name"] for m in a.members()] == ["n1", "n2"]

Each node prints JSON event lines (see mlnode/main.go); a reader thread keeps them all, with the time we read
them, so a test can both wait for an event and measure when memberlist emitted it (`Event.t`, the node's clock,
the same wall clock as `time.time()` here). Addresses must be loopback (127.0.0.0/8) or inside a lab network
namespace: never anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.conftest import require

SOURCE = Path(__file__).with_name("mlnode") / "main.go"
BUILD_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "metallb-fast" / "mlnode"


def mlnode_binary() -> str:
    """The mlnode built by `make install` (scripts/install.sh), checked against the current main.go."""
    binary = BUILD_DIR / "mlnode"
    require(os.access(binary, os.X_OK), f"the Go memberlist test node {binary} (run `make install`)")
    # A binary built from an older main.go would test yesterday's harness: treat it as missing.
    want = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    stamp = BUILD_DIR / "stamp"
    have = stamp.read_text().strip() if stamp.exists() else ""
    require(have == want, f"an mlnode built from the current {SOURCE.name} (run `make install`)")
    return str(binary)


def free_port(*hosts: str) -> int:
    """A port free for both TCP and UDP (memberlist binds both) on every one of `hosts` (default 127.0.0.1),
    for tests that run several nodes on one port the way MetalLB does (every speaker on 7946, joined by bare IP).
    Without that need, port 0 has no race: mlnode reports the port memberlist chose in its ready line."""
    hosts = hosts or ("127.0.0.1",)
    for _ in range(50):
        with ExitStack() as held:
            probe = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
            try:
                for host in hosts:
                    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                        if (host, kind) != (hosts[0], socket.SOCK_STREAM):
                            held.enter_context(socket.socket(socket.AF_INET, kind)).bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no port free for TCP and UDP on {', '.join(hosts)}")


def go_duration(seconds: float) -> str:
    """Go's time.ParseDuration syntax; integer nanoseconds so no float formatting (1e-05) can break it."""
    return f"{round(seconds * 1e9)}ns"


@dataclass(frozen=True)
class Event:
    """One line from mlnode: kind is "ready", "joined", "join", "leave", "update" or "members"."""

    kind: str
    t: float  # when mlnode emitted it (Unix seconds)
    received: float  # when our reader thread parsed it (Unix seconds)
    data: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str | None:
        return self.data.get("name")

    @property
    def addr(self) -> str | None:
        return self.data.get("addr")


class GoNode:
    """One mlnode process. Start it with `with GoNode(...) as node:` or `start()`; leaving the block kills it.

    name/bind/port: memberlist Name, BindAddr, BindPort = AdvertisePort (0: memberlist picks, see `addr`).
    join: "ip:port" addresses to Join() once at start (a bare ip joins on the node's own port, as MetalLB does).
    secret: MetalLB's memberlist secret (file content, used unmodified); None = no encryption.
    probe_interval/probe_timeout/gossip_interval (seconds) and suspicion_mult: MetalLB 0.16's config.json
    overrides; None keeps DefaultLANConfig.
    """

    def __init__(
        self,
        name: str,
        bind: str = "127.0.0.1",
        port: int = 0,
        join: Iterable[str] = (),
        secret: str | bytes | None = None,
        probe_interval: float | None = None,
        probe_timeout: float | None = None,
        suspicion_mult: int | None = None,
        gossip_interval: float | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.bind = bind
        self.port = port
        self.join = list(join)
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.timing = {
            "-probe-interval": go_duration(probe_interval) if probe_interval is not None else None,
            "-probe-timeout": go_duration(probe_timeout) if probe_timeout is not None else None,
            "-suspicion-mult": str(suspicion_mult) if suspicion_mult is not None else None,
            "-gossip-interval": go_duration(gossip_interval) if gossip_interval is not None else None,
        }
        self.ready_timeout = ready_timeout
        self.addr = ""  # "ip:port" from the ready line
        self.ready: Event | None = None
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._eof = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def command(self, binary: str, tmpdir: str) -> list[str]:
        cmd = [binary, "-name", self.name, "-bind", self.bind, "-port", str(self.port)]
        if self.secret is not None:
            secret_file = Path(tmpdir) / "secretkey"
            secret_file.write_bytes(self.secret)
            cmd += ["-secret-file", str(secret_file)]
        for address in self.join:
            cmd += ["-join", address]
        for flag, value in self.timing.items():
            if value is not None:
                cmd += [flag, value]
        return cmd

    def binary(self) -> str:
        """The program to run (subclasses run another member implementation with the same event lines)."""
        return mlnode_binary()

    def start(self) -> GoNode:
        binary = self.binary()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"mlnode-{self.name}-")
        # stderr (memberlist's DEBUG log) goes to a file: a pipe nobody drains would block the node.
        self._stderr = open(Path(self._tmp.name) / "stderr.log", "w+b")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            self.command(binary, self._tmp.name),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._reader = threading.Thread(target=self._read, name=f"mlnode-{self.name}", daemon=True)
        self._reader.start()
        try:
            self.ready = self.wait_event("ready", timeout=self.ready_timeout)
        except BaseException:
            self.close()
            raise
        self.addr = str(self.ready.addr)
        return self

    def __enter__(self) -> GoNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> float:
        """SIGKILL (a crash: no Leave); returns the time it was sent. Waits until the process is gone."""
        assert self._proc is not None, "not started"
        sent = time.time()
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        return sent

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM: mlnode does Leave(1s), Shutdown() and exits 0, as MetalLB's speaker does. Returns the exit
        code; SIGKILLs the node if it has not exited in `timeout` seconds."""
        assert self._proc is not None, "not started"
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGTERM)
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def close(self) -> None:
        """Kill if still running and release the pipe, log file and temporary directory."""
        if self._proc is not None:
            self.kill()
        # The reader ends on its own at EOF now that the process is gone; only then is the pipe ours to close.
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- events ----------------------------------------------------------------------------------------------

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            for line in self._proc.stdout:
                received = time.time()
                data = json.loads(line)
                event = Event(str(data["event"]), float(data["t"]), received, data)
                with self._cond:
                    self._events.append(event)
                    self._cond.notify_all()
        except ValueError:  # a non-JSON line means the node is broken: waiters then see EOF and its log
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    @property
    def events(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def mark(self) -> int:
        """The number of events so far: pass it as `since` to wait only for events that come after now."""
        with self._cond:
            return len(self._events)

    def _match(self, kind: str, name: str | None, start: int) -> Event | None:
        for event in self._events[start:]:
            if event.kind == kind and (name is None or event.name == name):
                return event
        return None

    def wait_event(self, kind: str, name: str | None = None, timeout: float = 10.0, since: int = 0) -> Event:
        """The first event of `kind` (and about `name`, if given) among events number `since` onwards,
        waiting up to `timeout` seconds for it. Raises TimeoutError (with the log tail) otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (event := self._match(kind, name, since)) is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    what = "exited" if self._eof else f"nothing in {timeout} s"
                    raise TimeoutError(f"{self.name}: no {kind} event{f' for {name}' if name else ''} ({what})\n"
                                       f"{self.log_tail()}")
                self._cond.wait(left)
            return event

    def members(self, timeout: float = 5.0) -> list[dict[str, str]]:
        """memberlist's Members() (alive and suspect nodes) sorted by name: [{"name", "addr", "state"}]."""
        since = self.mark()
        os.kill(self.pid, signal.SIGUSR1)
        return list(self.wait_event("members", timeout=timeout, since=since).data["members"])

    def log_tail(self, lines: int = 30) -> str:
        """The end of memberlist's log (stderr), for failure messages."""
        if self._tmp is None:
            return ""
        log = Path(self._tmp.name) / "stderr.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
