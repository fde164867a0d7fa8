"""`metallb-fast speaker`: announce this node's load-balancer addresses (layer 2), answering in the kernel."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from metallb_fast.commands.common import add_program_arguments
from metallb_fast.commands.fastpath_options import add_fastpath_arguments
from metallb_fast.membership.settings import add_membership_arguments
from metallb_fast.speaker.exclusions import DEFAULT_PATH as DEFAULT_EXCLUDE_L2_FILE

HELP = "run the speaker: elect announcers, answer ARP/NDP for owned addresses, report status"
JSON_ERRORS = True  # a bad flag is logged as the program logs (cli.py)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_program_arguments(parser)
    parser.add_argument(
        "--node-name", default=os.environ.get("METALLB_NODE_NAME"), help="this node (default: $METALLB_NODE_NAME)"
    )
    parser.add_argument(
        "--ignore-exclude-lb",
        action="store_true",
        help="also announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers",
    )
    parser.add_argument("--backend", default="auto", choices=["auto", "xdp", "ring", "python"])
    parser.add_argument(
        "--exclude-l2-file",
        type=Path,
        default=DEFAULT_EXCLUDE_L2_FILE,
        help="the metallb-excludel2 ConfigMap's announcedInterfacesToExclude, as mounted (default: "
        f"{DEFAULT_EXCLUDE_L2_FILE}, where MetalLB's manifest mounts it; a missing file means MetalLB's default list)",
    )
    parser.add_argument(
        "--liveness-timeout", type=float, default=10.0, help="seconds the fast path answers without a live speaker"
    )
    parser.add_argument(
        "--on-sigterm",
        default=os.environ.get("METALLB_FAST_ON_SIGTERM", "auto"),
        choices=["auto", "handover", "restart"],
        help="handover: leave memberlist and stop answering (the others take over); restart: keep the fast path "
        "answering for the process that follows (hitless rolling update); auto (default): handover when the Node "
        "is cordoned, being deleted or gone, restart otherwise",
    )
    parser.add_argument(
        "--pin-dir",
        default=os.environ.get("METALLB_FAST_PIN_DIR", ""),
        help="bpffs directory where the XDP maps are pinned, so a restarted speaker adopts them without a gap "
        "(default: /sys/fs/bpf/metallb-fast/speaker-<node>; 'none' = no pinning)",
    )
    add_fastpath_arguments(parser, from_env=True)
    add_membership_arguments(parser)


def xdp_options(args: argparse.Namespace) -> dict[str, Any]:
    """What the xdp backend takes (auto passes it only there): the attach mode, where to pin its maps for
    hitless restarts."""
    if args.backend not in ("auto", "xdp"):
        return {}
    if args.pin_dir == "none":
        return {"mode": args.xdp_mode}
    from metallb_fast.dataplane.pinning import default_pin_dir

    return {"mode": args.xdp_mode, "pin_dir": args.pin_dir or default_pin_dir(f"speaker-{args.node_name}")}


def run(args: argparse.Namespace) -> int:
    from metallb_fast.commands.common import run_in_worker, setup_logging
    from metallb_fast.commands.fastpath_options import flood_limit_from_args
    from metallb_fast.commands.startup import StartupError, connect, fail
    from metallb_fast.dataplane.backends import open_responder
    from metallb_fast.dataplane.base import ResponderError
    from metallb_fast.dataplane.floodlimit import FloodLimitError
    from metallb_fast.membership.settings import SettingsError, membership_settings
    from metallb_fast.obs import http
    from metallb_fast.obs.health import Health
    from metallb_fast.speaker.exclusions import ExclusionError
    from metallb_fast.speaker.loop import Speaker, SpeakerOptions

    setup_logging(args.log_level)
    if not args.node_name:
        fail("no node name: pass --node-name or set METALLB_NODE_NAME")
        return 2
    try:
        membership = membership_settings(args, args.node_name, args.namespace)
        flood_limit = flood_limit_from_args(args)
    except (SettingsError, FloodLimitError) as error:
        fail(str(error))
        return 2
    try:  # before the fast path is loaded: nothing to undo when the API server is not there
        client = connect(args.kubeconfig, args.api_wait)
    except StartupError as error:
        return fail(error)
    try:
        responder = open_responder(args.backend, flood_limit=flood_limit, **xdp_options(args))
    except ResponderError as error:
        client.close()
        return fail(f"cannot start the {args.backend} backend: {error}")
    options = SpeakerOptions(
        node_name=args.node_name,
        namespace=args.namespace,
        lb_class=args.lb_class,
        ignore_exclude_lb=args.ignore_exclude_lb,
        liveness_timeout_s=args.liveness_timeout,
        membership=membership,
        on_sigterm=args.on_sigterm,
        exclusion_file=args.exclude_l2_file,
    )
    # The loop wakes at least every second: ten seconds without a pass is a hung loop (the fast path has stopped
    # answering on its own by then: the liveness deadline), and the kubelet should restart it.
    health = Health(stall_after_s=max(10.0, args.liveness_timeout))
    try:
        speaker = Speaker(client, responder, options, health=health)
    except ExclusionError as error:
        fail(str(error))
        responder.close()
        client.close()
        return 2
    if args.metrics_port:
        try:
            http.serve(args.metrics_port, args.metrics_host, health)
        except OSError as error:
            responder.close()
            client.close()
            return fail(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: {error.strerror or error}")
    log.info(
        "speaker starting",
        extra={
            "op": "startup",
            "node": args.node_name,
            "backend": getattr(responder, "backend", args.backend),
            "flood_limit": flood_limit.describe(),
        },
    )
    status = run_in_worker(speaker.run, speaker.stop)
    log.info("speaker stopped", extra={"op": "shutdown"})
    client.close()
    return status
