"""Our member as a process, `metallb-fast members --json`, driven exactly like a GoNode (same event lines: ready,
join, leave, update, suspect, members), so one test can mix both and kill either by its pid."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from tests.interop.gonode import GoNode


class PyNode(GoNode):
    def __init__(
        self,
        name: str,
        bind: str = "127.0.0.1",
        port: int = 0,
        join: Iterable[str] = (),
        secret: str | bytes | None = None,
        timing: str = "metallb",
        ready_timeout: float = 20.0,
    ) -> None:
        super().__init__(name, bind=bind, port=port, join=join, secret=secret, ready_timeout=ready_timeout)
        self.timing_preset = timing

    def binary(self) -> str:
        return sys.executable

    def command(self, binary: str, tmpdir: str) -> list[str]:
        cmd = [binary, "-m", "metallb_fast.cli", "members", "--name", self.name, "--bind", f"{self.bind}:{self.port}",
               "--json", "--timing", self.timing_preset, "--log-level", "debug"]
        if self.secret is not None:
            secret_file = Path(tmpdir) / "secretkey"
            secret_file.write_bytes(self.secret)
            cmd += ["--secret-file", str(secret_file)]
        for address in self.join:
            cmd += ["--join", address]
        return cmd
