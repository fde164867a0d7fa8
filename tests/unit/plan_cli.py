"""Running `metallb-fast plan` in-process for the plan tests: exit code, stdout, stderr."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from metallb_fast.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def plan(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["plan", *args])
    return code, out.getvalue(), err.getvalue()
