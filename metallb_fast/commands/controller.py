"""`metallb-fast controller`: assign load-balancer addresses to Services, as MetalLB's controller does."""

from __future__ import annotations

import argparse
import logging
import os

HELP = "run the controller: watch Services and metallb.io pools, assign addresses, write status and events"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, else ~/.kube/config)")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("METALLB_NAMESPACE") or "metallb-system",
        help="namespace of the metallb.io objects (default: $METALLB_NAMESPACE, else metallb-system)",
    )
    parser.add_argument("--lb-class", default=None, help="handle only Services of this loadBalancerClass")
    parser.add_argument("--log-level", default="info", choices=["all", "debug", "info", "warn", "error", "none"])
    parser.add_argument("--metrics-port", type=int, default=7472, help="Prometheus port (0 = off)")
    parser.add_argument("--metrics-host", default="0.0.0.0")


def run(args: argparse.Namespace) -> int:
    from metallb_fast.commands.common import run_in_worker, setup_logging
    from metallb_fast.controller.loop import Controller
    from metallb_fast.k8s.client import KubeClient
    from metallb_fast.obs import metrics

    setup_logging(args.log_level)
    client = KubeClient.from_kubeconfig(args.kubeconfig)
    controller = Controller(client, namespace=args.namespace, lb_class=args.lb_class)
    if args.metrics_port:
        metrics.serve(args.metrics_port, args.metrics_host)
    log.info("controller starting", extra={"op": "startup", "namespace": args.namespace, "lbClass": args.lb_class})
    status = run_in_worker(controller.run, controller.stop)
    log.info("controller stopped", extra={"op": "shutdown"})
    client.close()
    return status


