"""`metallb-fast members`: bad arguments exit 2 naming what is wrong (before anything is bound or sent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metallb_fast.cli import main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--bind", "127.0.0.1"], "--bind '127.0.0.1': no port"),
        (["--bind", "127.0.0.1:http"], "--bind 'http': must be a port number"),
        (["--bind", "127.0.0.1:70000"], "--bind 70000: must be a port number"),
        (["--bind", ":7946"], "--bind ':7946': no host"),
        (["--bind", "0.0.0.0:0"], "not a wildcard"),
        (["--bind", "node-a:7946"], "must be an IP address"),
        (["--bind", "127.0.0.1:0", "--join", "127.0.0.2:x"], "--join 'x': must be a port number"),
        (["--bind", "127.0.0.1:0", "--secret-file", "/nonexistent/secret"], "--secret-file /nonexistent/secret"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["members", "--name", "n1", *argv]) == 2
    assert expected in capsys.readouterr().err


def test_an_empty_secret_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secretkey"
    secret.write_text("")
    assert main(["members", "--name", "n1", "--bind", "127.0.0.1:0", "--secret-file", str(secret)]) == 2
    assert str(secret) in capsys.readouterr().err
