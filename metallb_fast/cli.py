"""`metallb-fast` command line: one sub-command per module under metallb_fast/commands/.

Each command module exposes `HELP: str`, `add_arguments(parser)` and `run(args) -> int`; modules are imported
only when their command runs, so `metallb-fast plan` never loads bcc or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "controller": "metallb_fast.commands.controller",
    "speaker": "metallb_fast.commands.speaker",
    "plan": "metallb_fast.commands.plan",
    "respond": "metallb_fast.commands.respond",
    "demo": "metallb_fast.commands.demo",
    "members": "metallb_fast.commands.members",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metallb-fast", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    if not hasattr(args, "run"):
        parser.error(f"command {args.command!r} is not available")
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
