"""The fast-path options `respond` and `speaker` share: the per-source flood limit and the XDP attach mode."""

from __future__ import annotations

import argparse
import os
from typing import Any

from metallb_fast.dataplane import floodlimit
from metallb_fast.dataplane.floodlimit import FloodLimit
from metallb_fast.dataplane.xdp import MODES as XDP_MODES  # bcc and pyroute2 load only when a program does

ENV = {  # speaker: Kubernetes sets options through the environment, as for the other speaker options
    "flood_rate": "METALLB_FAST_FLOOD_RATE",
    "flood_burst": "METALLB_FAST_FLOOD_BURST",
    "flood_action": "METALLB_FAST_FLOOD_ACTION",
    "xdp_mode": "METALLB_FAST_XDP_MODE",
}


def add_fastpath_arguments(parser: argparse.ArgumentParser, from_env: bool) -> None:
    """--flood-rate/--flood-burst/--flood-action and --xdp-mode; with `from_env`, each defaults to its ENV
    variable when set (argparse converts a string default with the option's type, so a bad value is named)."""

    def default(dest: str, value: object) -> Any:
        return os.environ.get(ENV[dest], value) if from_env else value

    def env_note(dest: str) -> str:
        return f"; ${ENV[dest]}" if from_env else ""

    parser.add_argument(
        "--flood-rate",
        type=float,
        default=default("flood_rate", floodlimit.DEFAULT_RATE),
        metavar="PPS",
        help="answer at most this many ARP/NS requests per second from one source (source MAC + sender IP), "
        f"after a burst of --flood-burst; 0 = off (default {floodlimit.DEFAULT_RATE:g}{env_note('flood_rate')})",
    )
    parser.add_argument(
        "--flood-burst",
        type=int,
        default=default("flood_burst", floodlimit.DEFAULT_BURST),
        metavar="N",
        help=f"requests one source may send back to back before --flood-rate applies (default "
        f"{floodlimit.DEFAULT_BURST}{env_note('flood_burst')})",
    )
    parser.add_argument(
        "--flood-action",
        choices=floodlimit.ACTIONS,
        default=default("flood_action", floodlimit.DEFAULT_ACTION),
        help="a request over its source's limit is not answered and is passed to the kernel untouched (pass) or, "
        f"with xdp, dropped (drop) (default {floodlimit.DEFAULT_ACTION}{env_note('flood_action')})",
    )
    parser.add_argument(
        "--xdp-mode",
        choices=XDP_MODES,
        default=default("xdp_mode", "auto"),
        help="xdp: attach in the driver (native), in the kernel's generic path (generic), or auto: generic on veth "
        "(native XDP_TX on a veth is delivered only when its peer runs XDP), native elsewhere, generic where the "
        f"driver has no XDP (default auto{env_note('xdp_mode')})",
    )


def flood_limit_from_args(args: argparse.Namespace) -> FloodLimit:
    """The FloodLimit the options ask for; floodlimit.FloodLimitError (a ValueError) naming the option if none."""
    try:
        return FloodLimit(rate=args.flood_rate, burst=args.flood_burst, action=args.flood_action)
    except floodlimit.FloodLimitError as exc:
        raise floodlimit.FloodLimitError(f"--flood-rate/--flood-burst/--flood-action: {exc}") from None
