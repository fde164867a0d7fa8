"""The control plane's ~5 minute build says it is alive: a line with the elapsed time and the current step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from metallb_fast.testing.kubeenv import build_progress_line, build_step, watch_build

LOG = """\
+++ [1202 15:00:01] Building go targets for linux/amd64:
    cmd/kube-apiserver
+++ [1202 15:02:11] Generating prerelease lifecycle code for 27 targets
go: downloading nothing
"""


def test_the_step_is_the_last_marked_line_without_its_timestamp() -> None:
    assert build_step(LOG) == "Generating prerelease lifecycle code for 27 targets"
    assert build_step("compiling something\n") == "compiling something"
    assert build_step("") == "starting"
    assert build_progress_line(185.2, LOG).startswith("[install-kube] still building, 3m05s elapsed")


def test_the_watcher_prints_until_the_build_exits(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text(LOG)
    build = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    lines: list[str] = []
    try:
        watch_build(log, build.pid, every_s=0.1, write=lines.append)  # returns once the build is gone
    finally:
        build.wait()
    assert lines and all("Generating prerelease lifecycle code" in line for line in lines)
