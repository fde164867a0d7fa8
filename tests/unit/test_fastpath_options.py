"""`respond` and `speaker` take --flood-rate/--flood-burst/--flood-action and --xdp-mode (speaker: also from the
environment); what reaches the responder constructors."""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stderr

import pytest

from metallb_fast.cli import build_parser
from metallb_fast.commands import respond, speaker
from metallb_fast.commands.fastpath_options import ENV, flood_limit_from_args
from metallb_fast.dataplane.floodlimit import FloodLimit, FloodLimitError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(list(argv)).parse_args(list(argv))


RESPOND = ("respond", "--interface", "lo", "--address", "192.0.2.10")
SPEAKER = ("speaker", "--node-name", "node0")


@pytest.fixture(autouse=True)
def no_fastpath_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("command", [RESPOND, SPEAKER])
def test_defaults_are_floodlimit_s(command: tuple[str, ...]) -> None:
    args = parse(*command)
    assert flood_limit_from_args(args) == FloodLimit()
    assert args.xdp_mode == "auto"


@pytest.mark.parametrize("command", [RESPOND, SPEAKER])
def test_options_make_the_limit(command: tuple[str, ...]) -> None:
    args = parse(*command, "--flood-rate", "50", "--flood-burst", "7", "--flood-action", "drop", "--xdp-mode", "native")
    assert flood_limit_from_args(args) == FloodLimit(rate=50, burst=7, action="drop")
    assert args.xdp_mode == "native"
    assert not flood_limit_from_args(parse(*command, "--flood-rate", "0")).enabled


@pytest.mark.parametrize("command", [RESPOND, SPEAKER])
@pytest.mark.parametrize(
    ("option", "value"),
    [("--flood-action", "reject"), ("--xdp-mode", "offload"), ("--flood-rate", "fast"), ("--flood-burst", "1.5")],
)
def test_bad_values_are_usage_errors(command: tuple[str, ...], option: str, value: str) -> None:
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exited:
        parse(*command, option, value)
    assert exited.value.code == 2 and option in err.getvalue()


def test_a_limit_floodlimit_refuses_names_the_options() -> None:
    with pytest.raises(FloodLimitError, match=r"--flood-rate/--flood-burst/--flood-action: flood limit burst 0"):
        flood_limit_from_args(parse(*RESPOND, "--flood-burst", "0"))
    err = io.StringIO()
    with redirect_stderr(err):
        assert respond.run(parse(*RESPOND, "--flood-rate", "-3")) == respond.EXIT_USAGE
    assert "metallb-fast respond: --flood-rate/--flood-burst/--flood-action: flood limit rate -3" in err.getvalue()


def test_speaker_reads_the_environment_and_options_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALLB_FAST_FLOOD_RATE", "25")
    monkeypatch.setenv("METALLB_FAST_FLOOD_BURST", "9")
    monkeypatch.setenv("METALLB_FAST_FLOOD_ACTION", "drop")
    monkeypatch.setenv("METALLB_FAST_XDP_MODE", "generic")
    args = parse(*SPEAKER)
    assert flood_limit_from_args(args) == FloodLimit(rate=25, burst=9, action="drop")
    assert args.xdp_mode == "generic"
    args = parse(*SPEAKER, "--flood-rate", "0", "--xdp-mode", "native")
    assert not flood_limit_from_args(args).enabled and args.xdp_mode == "native"
    assert flood_limit_from_args(parse(*RESPOND)) == FloodLimit(), "respond, an operator tool, ignores them"


def test_speaker_env_values_are_checked_like_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALLB_FAST_FLOOD_RATE", "lots")
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit):
        parse(*SPEAKER)
    assert "--flood-rate: invalid float value: 'lots'" in err.getvalue()


def test_the_attach_mode_goes_to_xdp_only() -> None:
    assert respond.xdp_options(parse(*RESPOND, "--xdp-mode", "native"), None) == {"mode": "native"}
    assert respond.xdp_options(parse(*RESPOND, "--backend", "xdp"), "/sys/fs/bpf/x") == {
        "mode": "auto",
        "pin_dir": "/sys/fs/bpf/x",
    }
    assert respond.xdp_options(parse(*RESPOND, "--backend", "ring", "--xdp-mode", "native"), None) == {}
    assert speaker.xdp_options(parse(*SPEAKER, "--pin-dir", "none", "--xdp-mode", "generic")) == {"mode": "generic"}
    assert speaker.xdp_options(parse(*SPEAKER, "--backend", "python")) == {}
    options = speaker.xdp_options(parse(*SPEAKER, "--backend", "xdp"))
    assert options["mode"] == "auto" and str(options["pin_dir"]).endswith("speaker-node0")
