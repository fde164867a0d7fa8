"""`metallb-fast members`: join a memberlist (ours or MetalLB's speakers') and print its membership events."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import UTC, datetime

import orjson

HELP = "join a memberlist (metallb-fast's or MetalLB's speakers') and print one line per membership event"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from metallb_fast.membership.timing import TIMINGS

    parser.add_argument("--name", required=True, help="this member's name (MetalLB uses the node name)")
    parser.add_argument("--bind", required=True, metavar="HOST:PORT", help="address to listen on (TCP and UDP)")
    parser.add_argument("--join", action="append", default=[], metavar="HOST:PORT",
                        help="a member to join (repeatable; a bare HOST uses the bind port, as MetalLB does)")
    parser.add_argument("--secret-file", help="the memberlist Secret's `secretkey` (a file, or a directory holding "
                                              "it); the AES key is derived from it as MetalLB does")
    parser.add_argument("--timing", default="metallb", choices=sorted(TIMINGS), help="memberlist timers")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--log-level", default="warn", choices=["debug", "info", "warn", "error"])


class UsageError(ValueError):
    pass


def split_host_port(text: str, default_port: int | None, what: str) -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT, or a bare HOST when a default port is given."""
    from metallb_fast.membership.settings import SettingsError, parse_port

    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise UsageError(f"{what} {text!r}: no host (expected HOST:PORT)")
    if port is None:
        if default_port is None:
            raise UsageError(f"{what} {text!r}: no port (expected HOST:PORT)")
        return host, default_port
    try:
        return host, parse_port(port, what)
    except SettingsError as error:
        raise UsageError(str(error)) from None


def emit(record: dict[str, object], as_json: bool) -> None:
    """One line on stdout: JSON (`t` in Unix seconds, as the interop tests' Go node prints) or a table row."""
    now = time.time()
    if as_json:
        line = orjson.dumps({"t": now, **record}).decode()
    else:
        when = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S.%f")[:-3]
        if record["event"] == "members":
            rows = record["members"]
            assert isinstance(rows, list)
            line = "\n".join(f"{when}  member   {m['name']:<24} {m['addr']:<24} {m['state']}" for m in rows)
        else:
            line = (f"{when}  {record['event']:<8} {record.get('name', ''):<24} {record.get('addr', ''):<24} "
                    f"{record.get('reason', '')}").rstrip()
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from metallb_fast.commands.common import install_stop_signals, setup_logging
    from metallb_fast.membership.messages import address_text
    from metallb_fast.membership.node import MemberlistNode, MembershipError, NodeConfig
    from metallb_fast.membership.settings import SettingsError, load_keyring
    from metallb_fast.membership.swim import Member, MemberEvent
    from metallb_fast.membership.timing import TIMINGS

    setup_logging(args.log_level)
    try:
        host, port = split_host_port(args.bind, None, "--bind")
        joins = [split_host_port(j, port, "--join") for j in args.join]
        keyring = load_keyring(args.secret_file or "", "--secret-file")
    except (UsageError, SettingsError) as error:
        sys.stderr.write(f"metallb-fast members: {error}\n")
        return 2
    lock = threading.Lock()

    def address(member: Member) -> str:
        return f"{address_text(member.addr)}:{member.port}"

    def show(record: dict[str, object]) -> None:
        with lock:
            emit(record, args.json)

    def on_event(event: MemberEvent) -> None:
        member = event.member
        show({"event": str(event.kind), "name": member.name, "addr": address(member), "reason": event.reason})

    def show_members() -> None:
        members = [{"name": m.name, "addr": address(m), "state": m.state.name.lower()}
                   for m in sorted(node.members(), key=lambda m: m.name)]
        show({"event": "members", "members": members})

    config = NodeConfig(name=args.name, bind_host=host, bind_port=port, timing=TIMINGS[args.timing], keyring=keyring)
    node = MemberlistNode(config, on_event)
    try:
        node.start()
    except MembershipError as error:
        sys.stderr.write(f"metallb-fast members: --bind {args.bind}: {error}\n")
        return 2
    stop = threading.Event()
    install_stop_signals(stop.set)
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: show_members())  # kill -USR1: print the member list
    show({"event": "ready", "name": args.name, "addr": f"{node.address[0]}:{node.address[1]}"})
    node.join(joins)
    rejected_seen = 0
    while not stop.wait(0.5):
        rejected = sum(node.rejected.values())
        if rejected > rejected_seen and _authentication_failures(node.rejected):
            sys.stderr.write(
                f"metallb-fast members: {rejected} packets/streams refused "
                f"({', '.join(f'{k} {v}' for k, v in sorted(node.rejected.items()))}): "
                + ("wrong secret key?" if keyring.enabled else "the peers encrypt: pass --secret-file") + "\n"
            )
            rejected_seen = rejected
    node.leave(timeout=1.0)
    node.stop()
    return 0


def _authentication_failures(rejected: dict[str, int]) -> bool:
    from metallb_fast.membership import wire

    return any(rejected.get(reason) for reason in (wire.DECRYPT_FAILED, wire.NOT_ENCRYPTED,
                                                   wire.UNEXPECTED_ENCRYPTION, wire.LABEL_MISMATCH))
