"""Memberlist settings as MetalLB's speaker takes them (flags with environment defaults), turned into a NodeConfig.

MetalLB: --ml-bindaddr/METALLB_ML_BIND_ADDR, --ml-bindport/METALLB_ML_BIND_PORT, --ml-labels/METALLB_ML_LABELS,
--ml-namespace/METALLB_ML_NAMESPACE, --ml-secret-key-path/METALLB_ML_SECRET_KEY_PATH. Memberlist is off when the
bind address or the labels are empty, exactly as in MetalLB. --ml-timing is ours.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass

from metallb_fast.dataplane.heartbeat import heartbeat_meta
from metallb_fast.membership import wire
from metallb_fast.membership.node import NodeConfig
from metallb_fast.membership.timing import TIMINGS

DEFAULT_PORT = 7946


class SettingsError(ValueError):
    """A memberlist flag is wrong; the message names the flag and what would be right."""


def add_membership_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    group = parser.add_argument_group("memberlist (fast dead-node detection, wire-compatible with MetalLB's)")
    group.add_argument("--ml-bindaddr", default=env("METALLB_ML_BIND_ADDR", ""),
                       help="this speaker's memberlist address, the Pod IP (default: $METALLB_ML_BIND_ADDR; "
                            "empty = memberlist off)")
    group.add_argument("--ml-bindport", default=env("METALLB_ML_BIND_PORT", str(DEFAULT_PORT)),
                       help="memberlist TCP+UDP port (default: $METALLB_ML_BIND_PORT, else 7946)")
    group.add_argument("--ml-labels", default=env("METALLB_ML_LABELS", ""),
                       help="label selector of the speaker Pods to join (default: $METALLB_ML_LABELS; "
                            "empty = memberlist off)")
    group.add_argument("--ml-namespace", default=env("METALLB_ML_NAMESPACE", ""),
                       help="namespace of the speaker Pods (default: $METALLB_ML_NAMESPACE, else --namespace)")
    group.add_argument("--ml-secret-key-path", default=env("METALLB_ML_SECRET_KEY_PATH", ""),
                       help="directory holding the memberlist Secret's `secretkey` (default: "
                            "$METALLB_ML_SECRET_KEY_PATH; empty = unencrypted)")
    group.add_argument("--ml-timing", default=env("METALLB_ML_TIMING", "metallb"), choices=sorted(TIMINGS),
                       help="metallb: memberlist's LAN defaults, as MetalLB runs them; tuned: the fastest MetalLB 0.16 "
                            "config; fast (ours): data-path heartbeats answered by the fast path + memberlist "
                            "timers that survive a paused speaker (README: Membership)")
    group.add_argument("--heartbeat-port", type=int, default=int(env("METALLB_FAST_HEARTBEAT_PORT", "7947")),
                       help="UDP port of the data-path heartbeats between speakers (with --ml-timing=fast)")


# The timings whose dead-node detection is the data-path heartbeat (memberlist then only gossips its verdicts).
HEARTBEAT_TIMINGS = frozenset({"fast"})


@dataclass(frozen=True)
class MembershipSettings:
    node: NodeConfig
    labels: str
    namespace: str
    encrypted: bool
    heartbeat_port: int | None = None  # None: no data-path heartbeats

    @property
    def key(self) -> bytes | None:
        return self.node.keyring.keys[0] if self.node.keyring.enabled else None


def parse_port(text: str, flag: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise SettingsError(f"{flag} {text!r}: must be a port number (1-65535)") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{flag} {port}: must be a port number (1-65535)")
    return port


def load_keyring(path: str, flag: str = "--ml-secret-key-path") -> wire.Keyring:
    if not path:
        return wire.Keyring.none()
    try:
        return wire.Keyring((wire.read_secret_key(path),))
    except (OSError, ValueError) as error:
        raise SettingsError(f"{flag} {path}: {error}") from error


def membership_settings(args: argparse.Namespace, node_name: str, namespace: str) -> MembershipSettings | None:
    """None when memberlist is off (no bind address or no labels, as in MetalLB)."""
    if not args.ml_bindaddr or not args.ml_labels:
        return None
    keyring = load_keyring(args.ml_secret_key_path)
    node = NodeConfig(
        name=node_name,
        bind_host=args.ml_bindaddr,
        bind_port=parse_port(args.ml_bindport, "--ml-bindport"),
        timing=TIMINGS[args.ml_timing],
        keyring=keyring,
    )
    heartbeat = None
    if args.ml_timing in HEARTBEAT_TIMINGS:
        heartbeat = parse_port(str(args.heartbeat_port), "--heartbeat-port")
    if heartbeat == node.bind_port:
        raise SettingsError(f"--heartbeat-port {heartbeat}: must differ from --ml-bindport (memberlist's UDP port)")
    if heartbeat is not None:  # the others heartbeat only members that say they reflect them
        node = dataclasses.replace(node, meta=heartbeat_meta(heartbeat))
    return MembershipSettings(node, args.ml_labels, args.ml_namespace or namespace, keyring.enabled, heartbeat)
