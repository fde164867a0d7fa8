"""`metallb-fast respond`: answer ARP/NDP for given addresses on one interface until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from metallb_fast.commands.fastpath_options import add_fastpath_arguments, flood_limit_from_args
from metallb_fast.dataplane import ownership
from metallb_fast.dataplane.backends import CHOICES, open_responder
from metallb_fast.dataplane.base import IPAddress, Owned, Responder, ResponderError, ResponderStats
from metallb_fast.dataplane.floodlimit import FloodLimitError
from metallb_fast.dataplane.packets import format_mac, parse_mac
from metallb_fast.dataplane.pinning import default_pin_dir

HELP = "answer ARP/NDP for addresses on an interface (a responder backend as an operator tool)"
EXIT_USAGE = 2


class InputError(ValueError):
    """Bad command-line input; the message names what is wrong."""


@dataclass(frozen=True)
class AddressSpec:
    address: IPAddress
    mac: bytes | None  # None: the interface's own MAC


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interface", required=True, metavar="IF", help="interface to answer on")
    parser.add_argument(
        "--address",
        action="append",
        required=True,
        metavar="IP[=MAC]",
        help="address to answer for, optionally with the MAC to answer with (default: the interface's)",
    )
    parser.add_argument("--backend", choices=CHOICES, default="auto", help="responder backend (default: auto)")
    parser.add_argument("--announce", action="store_true", help="send gratuitous ARP / unsolicited NA at start")
    parser.add_argument("--json", action="store_true", help="print the counters as JSON")
    parser.add_argument(
        "--liveness",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="stop answering this long after this process stops refreshing the deadline, e.g. when it was killed "
        "with SIGKILL and could not detach (default 10; 0 = no deadline)",
    )
    parser.add_argument(
        "--keep-serving-on-exit",
        action="store_true",
        help="xdp: on SIGINT/SIGTERM leave the program attached and its maps pinned, answering until the liveness "
        "deadline; a new respond with the same --pin-dir adopts them without a gap (a restart in place)",
    )
    parser.add_argument(
        "--pin-dir",
        metavar="DIR",
        help="xdp: pin the maps in DIR on a bpf filesystem and adopt those an earlier run left there (default with "
        "--keep-serving-on-exit: /sys/fs/bpf/metallb-fast/respond-net<netns inode>-<interface>)",
    )
    add_fastpath_arguments(parser, from_env=False)


def parse_address_spec(text: str) -> AddressSpec:
    ip_text, sep, mac_text = text.partition("=")
    try:
        address = ipaddress.ip_address(ip_text.strip())
    except ValueError:
        raise InputError(f"--address {text!r}: {ip_text!r} is not an IPv4 or IPv6 address") from None
    if not sep:
        return AddressSpec(address, None)
    try:
        return AddressSpec(address, parse_mac(mac_text))
    except ValueError as exc:
        raise InputError(f"--address {text!r}: {exc}") from None


def interface_mac(interface: str) -> bytes:
    """The interface's hardware address (ioctl: works in any namespace, unlike /sys from outside it)."""
    try:
        socket.if_nametoindex(interface)
    except OSError:
        raise InputError(f"--interface {interface!r}: no such interface in this network namespace") from None
    try:
        return ownership.interface_mac(interface, "respond")
    except ResponderError as exc:
        raise InputError(f"--interface {interface!r}: cannot read its MAC address: {exc}") from None


def owned_from_args(interface: str, specs: Sequence[str]) -> Owned:
    own_mac = interface_mac(interface)
    owned: dict[tuple[IPAddress, str], bytes] = {}
    for text in specs:
        spec = parse_address_spec(text)
        owned[(spec.address, interface)] = spec.mac or own_mac
    return owned


def pin_dir_from_args(args: argparse.Namespace) -> str | None:
    """Where the xdp backend pins its maps: --pin-dir, else a directory of this netns and interface when
    --keep-serving-on-exit asks for a restart in place, else nowhere."""
    if args.keep_serving_on_exit and args.liveness <= 0:
        raise InputError(
            "--keep-serving-on-exit needs a liveness deadline (--liveness > 0): without one the "
            "kernel would answer for the addresses forever after this process exits"
        )
    if args.pin_dir is not None or not args.keep_serving_on_exit:
        return args.pin_dir
    netns = os.stat("/proc/self/ns/net").st_ino
    try:
        return str(default_pin_dir(f"respond-net{netns}-{args.interface}"))
    except ValueError as exc:
        raise InputError(f"--interface {args.interface!r}: {exc}; give --pin-dir") from None


def run(args: argparse.Namespace) -> int:
    try:
        owned = owned_from_args(args.interface, args.address)
        pin_dir = pin_dir_from_args(args)
        flood_limit = flood_limit_from_args(args)
    except (InputError, FloodLimitError) as exc:
        print(f"metallb-fast respond: {exc}", file=sys.stderr)
        return EXIT_USAGE
    options = xdp_options(args, pin_dir)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            responder = open_responder(args.backend, [args.interface], flood_limit=flood_limit, **options)
        except ResponderError as exc:
            print(f"metallb-fast respond: backend {args.backend!r} cannot load: {exc}", file=sys.stderr)
            return 1
        keep_serving = False
        try:
            responder.sync(owned)
            if args.announce:
                for address, name in owned:
                    responder.announce(address, name)
            keep_alive(responder, args.liveness)
            print("ready", flush=True)
            while not stop.wait(0.5):  # a timed wait: signal handlers run promptly in the main thread
                keep_alive(responder, args.liveness)
            stats = responder.stats()
            attachments = _attachments(responder)
            keep_serving = args.keep_serving_on_exit  # only on the way out by signal, never after an error
            if keep_serving:
                keep_alive(responder, args.liveness)  # the whole deadline for the next run to take over
        finally:
            responder.close(keep_serving=keep_serving)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print_stats(stats, owned, sys.stdout, as_json=args.json, attachments=attachments)
    if keep_serving:
        if responder.backend == "xdp":
            print(
                f"metallb-fast respond: the XDP program stays attached, maps pinned in {pin_dir}: answering for up "
                f"to {args.liveness:g} s, or until a respond with --pin-dir {pin_dir} adopts them",
                file=sys.stderr,
            )
        else:
            print(
                f"metallb-fast respond: --keep-serving-on-exit: the {responder.backend} backend cannot answer "
                "after this process exits; it stopped",
                file=sys.stderr,
            )
    return 0


def xdp_options(args: argparse.Namespace, pin_dir: str | None) -> dict[str, Any]:
    """What only the xdp backend takes (auto passes it to xdp alone): the attach mode, where to pin its maps
    (ring and python cannot outlive this process)."""
    if args.backend not in ("xdp", "auto"):
        return {}
    return {"mode": args.xdp_mode, **({"pin_dir": pin_dir} if pin_dir is not None else {})}


def keep_alive(responder: Responder, liveness_s: float) -> None:
    if liveness_s > 0:
        responder.set_liveness_deadline(time.monotonic_ns() + int(liveness_s * 1e9))


def _attachments(responder: object) -> list[dict[str, Any]]:
    """Where the xdp backend attached its program (mode, program id); other backends attach nothing."""
    found = getattr(responder, "attachments", None) or {}
    return [
        {"interface": a.interface, "mode": a.mode, "prog_id": a.prog_id}
        for a in found.values()
        if hasattr(a, "prog_id")
    ]


def stats_document(stats: ResponderStats, owned: Owned, attachments: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    rows = []
    for (address, interface), mac in owned.items():
        counters = stats.per_address.get((address, interface))
        rows.append(
            {
                "address": str(address),
                "interface": interface,
                "mac": format_mac(mac),
                "requests": counters.requests if counters else 0,
                "replies": counters.replies if counters else 0,
            }
        )
    return {
        "backend": stats.backend,
        "addresses": rows,
        "requests": stats.requests,
        "replies": stats.replies,
        "declined": {verdict.value: count for verdict, count in stats.declined.items()},
        "attachments": list(attachments),
    }


def print_stats(
    stats: ResponderStats,
    owned: Owned,
    out: TextIO,
    as_json: bool,
    attachments: Sequence[dict[str, Any]] = (),
) -> None:
    document = stats_document(stats, owned, attachments)
    if as_json:
        out.write(orjson.dumps(document).decode() + "\n")
        out.flush()
        return
    rows = [("ADDRESS", "INTERFACE", "MAC", "REQUESTS", "REPLIES")]
    rows += [
        (r["address"], r["interface"], r["mac"], str(r["requests"]), str(r["replies"])) for r in document["addresses"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out.write(f"backend: {document['backend']}\n")
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
    declined = ", ".join(f"{reason}={count}" for reason, count in document["declined"].items() if count)
    out.write(f"declined: {declined or 'none'}\n")
    for a in document["attachments"]:
        out.write(f"xdp: program {a['prog_id']} was attached to {a['interface']} ({a['mode']} mode)\n")
    out.flush()
