"""`metallb-fast` command line: one sub-command per module under metallb_fast/commands/.

Each command module exposes `HELP: str` (a string literal), `add_arguments(parser)` and `run(args) -> int`;
modules are imported only when their command runs, so `metallb-fast plan` never loads bcc or the Kubernetes
client, and `--help` reads each HELP from its module's source without importing it. A module that sets
`JSON_ERRORS = True` (the long-running programs, whose output is shipped as JSON lines) has its flag errors
logged as one JSON line instead of argparse's usage text.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import metallb_fast

COMMANDS: dict[str, str] = {
    "controller": "metallb_fast.commands.controller",
    "speaker": "metallb_fast.commands.speaker",
    "plan": "metallb_fast.commands.plan",
    "respond": "metallb_fast.commands.respond",
    "demo": "metallb_fast.commands.demo",
    "members": "metallb_fast.commands.members",
    "status": "metallb_fast.commands.status",
}
EXIT_USAGE = 2  # argparse's


class CommandParser(argparse.ArgumentParser):
    json_errors = False

    def error(self, message: str) -> None:  # type: ignore[override]  # exits, as argparse's does
        if not self.json_errors:
            super().error(message)
        from metallb_fast.obs.logs import configure_logging

        configure_logging()
        logging.getLogger(self.prog).error("%s (see %s --help)", message, self.prog, extra={"op": "startup"})
        sys.exit(EXIT_USAGE)


def command_help(module_name: str) -> str:
    """The module's `HELP = "..."`, read from its source: listing the commands imports none of them."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise LookupError(f"command module {module_name} is not installed")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise LookupError(f"command module {module_name} has no HELP string literal")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    summary = (metallb_fast.__doc__ or "").splitlines()[0].removeprefix("metallb-fast: ")
    parser = argparse.ArgumentParser(prog="metallb-fast", description=summary)
    parser.add_argument("--version", action="version", version=f"metallb-fast {metallb_fast.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=command_help(module_name))
            continue
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        command_parser.json_errors = bool(getattr(module, "JSON_ERRORS", False))
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
