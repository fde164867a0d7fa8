"""Log lines in MetalLB's shape (go-kit's JSON logger): sorted keys, caller, warn, RFC 3339 ts; and start-up
failures of the programs as one such line and a non-zero exit, never a traceback."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from metallb_fast.obs.logs import JsonFormatter


def formatted(level: int, message: str, **extra: object) -> tuple[str, dict[str, object]]:
    record = logging.LogRecord("metallb_fast.speaker.loop", level, str(Path("/x/metallb_fast/speaker/loop.py")), 42,
                               message, None, None)
    record.__dict__.update(extra)
    line = JsonFormatter().format(record)
    return line, orjson.loads(line)


def test_a_line_has_metallb_s_keys_and_levels() -> None:
    line, entry = formatted(logging.WARNING, "withdrawing", op="deleteBalancer", ips=["192.0.2.10"])
    assert entry["level"] == "warn" and entry["caller"] == "speaker/loop.py:42"
    assert entry["op"] == "deleteBalancer" and entry["msg"] == "withdrawing"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(entry["ts"]))
    assert list(entry) == sorted(entry)  # go-kit writes keys in order
    assert "\n" not in line
    assert formatted(logging.CRITICAL, "x")[1]["level"] == "error"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metallb_fast.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def one_json_line(stderr: str) -> dict[str, object]:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return dict(orjson.loads(lines[0]))


def test_no_kubeconfig_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = run("controller", "--metrics-port", "0", env=env)
    entry = one_json_line(done.stderr)
    assert done.returncode == 1 and entry["op"] == "startup" and entry["level"] == "error"
    assert "no kubeconfig" in str(entry["msg"]) and "--kubeconfig" in str(entry["msg"])


def test_an_unreachable_api_server_is_one_line_and_exit_1(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]\n'
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n")
    for program in (["controller"], ["speaker", "--node-name", "n1"]):  # the speaker: before it loads XDP
        done = run(*program, "--kubeconfig", str(kubeconfig), "--api-wait", "0.5", "--metrics-port", "0")
        entry = one_json_line(done.stderr)
        assert done.returncode == 1 and "unreachable" in str(entry["msg"]) and "Connection refused" in str(entry["msg"])


def test_a_bad_flag_of_a_program_is_one_json_line_and_exit_2() -> None:
    done = run("speaker", "--metrics-port", "lots")
    entry = one_json_line(done.stderr)
    assert done.returncode == 2 and "--metrics-port" in str(entry["msg"]) and entry["op"] == "startup"
    # an operator tool keeps argparse's usage text
    assert run("plan", "--output", "yaml").stderr.startswith("usage:")


class ScriptedClient:
    """Answers GET /api with the given errors in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.closed = False
        self.connection = type("Connection", (), {"server": "https://192.0.2.1:6443"})()

    def request(self, *_: object, **__: object) -> dict[str, object]:
        if self.errors:
            raise self.errors.pop(0)
        return {}

    def close(self) -> None:
        self.closed = True


def test_startup_waits_for_a_server_that_is_up_but_not_serving_and_fails_at_once_when_refused() -> None:
    from metallb_fast.commands.startup import StartupError, _reach
    from metallb_fast.k8s.client import ApiError

    slept: list[float] = []
    busy = ScriptedClient(ApiError("GET", "/api", 503, {"message": "etcd not ready"}), ApiError("GET", "/api", 429, {}))
    assert _reach(busy, None, 30.0, slept.append) is busy  # type: ignore[arg-type]
    assert slept == [1.0, 1.0] and not busy.closed

    forbidden = ScriptedClient(ApiError("GET", "/api", 403, {"message": "forbidden"}))
    with pytest.raises(StartupError, match="refused GET /api with HTTP 403"):
        _reach(forbidden, None, 30.0, slept.append)  # type: ignore[arg-type]
    assert forbidden.closed and slept == [1.0, 1.0]

    down_too_long = ScriptedClient(*[ApiError("GET", "/api", 503, {"message": "etcd not ready"})] * 3)
    with pytest.raises(StartupError, match="HTTP 503: etcd not ready"):
        _reach(down_too_long, None, 0.0, slept.append)  # type: ignore[arg-type]


@pytest.mark.parametrize(("level", "shown"), [("all", "DEBUG"), ("debug", "DEBUG"), ("info", "INFO"),
                                              ("warn", "WARNING"), ("error", "ERROR"), ("none", None)])
def test_every_log_level_flag_value_sets_a_level(level: str, shown: str | None) -> None:
    from metallb_fast.obs.logs import configure_logging

    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    try:
        configure_logging(level)
        assert logging.getLevelName(root.level) == shown if shown else root.level > logging.CRITICAL
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
