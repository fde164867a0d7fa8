"""`metallb-fast controller`: assign load-balancer addresses to Services, as MetalLB's controller does."""

from __future__ import annotations

import argparse
import logging
import os

from metallb_fast.commands.common import add_program_arguments

HELP = "run the controller: watch Services and metallb.io pools, assign addresses, write status and events"
JSON_ERRORS = True  # a bad flag is logged as the program logs (cli.py)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_program_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from metallb_fast.commands.common import run_in_worker, setup_logging
    from metallb_fast.commands.startup import StartupError, connect, fail
    from metallb_fast.controller.loop import Controller
    from metallb_fast.obs import http
    from metallb_fast.obs.health import Health

    setup_logging(args.log_level)
    try:
        client = connect(args.kubeconfig, args.api_wait)
    except StartupError as error:
        return fail(error)
    health = Health()
    controller = Controller(
        client,
        namespace=args.namespace,
        lb_class=args.lb_class,
        memberlist_secret=os.environ.get("METALLB_ML_SECRET_NAME") or None,
        deployment=os.environ.get("METALLB_DEPLOYMENT") or None,
        health=health,
    )
    if args.metrics_port:
        try:
            http.serve(args.metrics_port, args.metrics_host, health)
        except OSError as error:
            client.close()
            return fail(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: {error.strerror or error}")
    log.info("controller starting", extra={"op": "startup", "namespace": args.namespace, "lbClass": args.lb_class})
    status = run_in_worker(controller.run, controller.stop)
    log.info("controller stopped", extra={"op": "shutdown"})
    client.close()
    return status


