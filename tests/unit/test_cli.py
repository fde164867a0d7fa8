"""`metallb-fast --help` lists every command with its one-line help, without importing any; `--version`."""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import subprocess
import sys
from contextlib import redirect_stdout

import pytest

from metallb_fast.cli import COMMANDS, main


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main(list(args))
    return int(exited.value.code or 0), out.getvalue()


def test_help_lists_every_command_with_its_help() -> None:
    code, out = run_cli("--help")
    assert code == 0
    text = " ".join(out.split())  # argparse wraps the lines
    for name, module_name in COMMANDS.items():
        helptext = importlib.import_module(module_name).HELP
        assert f"{name} {helptext}" in text


def test_help_imports_no_command_module() -> None:
    script = (
        "import sys\n"
        "from metallb_fast.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('metallb_fast.commands.', 'kubernetes', 'bcc', 'pyroute2')\n"
        "print('IMPORTED', [m for m in sys.modules if m.startswith(heavy)])\n"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert found.stdout.splitlines()[-1] == "IMPORTED []"


def test_version_is_the_installed_distribution_s() -> None:
    code, out = run_cli("--version")
    assert code == 0
    assert out == f"metallb-fast {importlib.metadata.version('metallb-fast')}\n"
