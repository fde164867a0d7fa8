"""The one way the lab, the test control plane and the benchmarks run a child program: its output in a log file,
signalled and stopped by its own pid (never by name), a graceful stop that ends in SIGKILL after a timeout."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

# How a process is started: subprocess.Popen, or a lab's popen bound to a namespace (`ip netns exec` execs the
# program in place, so the pid is the program's own either way).
Launcher = Callable[..., "subprocess.Popen[bytes]"]

KILLED = -signal.SIGKILL  # what stop() reports for a program that had to be killed after its timeout


class ManagedProcess:
    """One child program. start() again after it ended runs it anew (appending to the same log)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        launch: Launcher = subprocess.Popen,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pids_file: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self._launch = launch
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        # Every pid started is appended here, so a later run can recognise (and end, by pid) a crashed run's.
        self._pids_file = pids_file
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, truncate: bool = False) -> ManagedProcess:
        if self.alive():
            return self
        with self.log.open("wb" if truncate else "ab") as out:
            self._proc = self._launch(self.argv, **self._spawn_options(out))
        if self._pids_file is not None:
            with self._pids_file.open("a") as pids:
                pids.write(f"{self._proc.pid}\n")
        return self

    def _spawn_options(self, out: IO[bytes]) -> dict[str, Any]:
        options: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": out, "stderr": subprocess.STDOUT}
        if self._env is not None:
            options["env"] = self._env
        if self._cwd is not None:
            options["cwd"] = self._cwd
        if self._pids_file is not None:
            # its own session: a Ctrl-C of the test run does not reach it before the teardown stops it in order
            options["start_new_session"] = True
        return options

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def send_signal(self, signum: int) -> None:
        if self.alive():
            assert self._proc is not None
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit status once it has ended; subprocess.TimeoutExpired if it is still running after `timeout`."""
        return self._proc.wait(timeout) if self._proc is not None else None

    def kill(self) -> int | None:
        """SIGKILL (a crash: no graceful shutdown) and wait until it is gone."""
        self.send_signal(signal.SIGKILL)
        return self.wait()

    def stop(self, timeout: float = 10.0, kill: bool = False) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`: then KILLED), or SIGKILL at once with `kill`. Its exit status;
        None if it was never started."""
        if self._proc is None:
            return None
        if kill:
            return self.kill()
        self.send_signal(signal.SIGTERM)
        return self.wait_or_kill(timeout)

    def wait_or_kill(self, timeout: float) -> int | None:
        """Wait for an exit already asked for (one SIGTERM only: a second one may cut a graceful shutdown short);
        SIGKILL after `timeout`, then KILLED."""
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()  # KILLED, or its own status if it ended just now

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
