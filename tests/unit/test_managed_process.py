"""lab/processes.py: the one child-process helper of the lab, the test control plane and the benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path

from metallb_fast.lab.processes import KILLED, ManagedProcess
from metallb_fast.lab.waiting import wait_for

PRINT_AND_WAIT = "import sys, time; print(sys.argv[1], flush=True); time.sleep(60)"
IGNORE_SIGTERM = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "time.sleep(60)"
)


def test_output_goes_to_the_log_and_a_restart_appends(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    proc = ManagedProcess("p", [sys.executable, "-c", PRINT_AND_WAIT, "first"], log).start(truncate=True)
    wait_for(lambda: "first" in proc.tail(), timeout=10, what="the first run's line")
    assert proc.stop(timeout=5) == -15  # SIGTERM's default action
    assert not proc.alive() and proc.returncode == -15

    proc.argv[-1] = "second"
    proc.start()
    wait_for(lambda: "second" in proc.tail(), timeout=10, what="the second run's line")
    assert proc.tail().splitlines() == ["first", "second"]
    assert proc.kill() == KILLED


def test_a_program_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    proc = ManagedProcess("stubborn", [sys.executable, "-c", IGNORE_SIGTERM], tmp_path / "s.log").start()
    wait_for(lambda: "ready" in proc.tail(), timeout=10, what="the handler to be installed")
    assert proc.stop(timeout=0.5) == KILLED
    assert not proc.alive()


def test_pids_are_recorded_and_a_never_started_process_stops_as_none(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    never = ManagedProcess("never", ["true"], tmp_path / "n.log", pids_file=pids)
    assert never.stop() is None and never.pid is None and never.returncode is None
    done = ManagedProcess("done", ["true"], tmp_path / "d.log", pids_file=pids).start()
    assert done.wait(10) == 0
    assert pids.read_text().split() == [str(done.pid)]
