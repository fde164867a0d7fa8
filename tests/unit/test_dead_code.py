"""No dead code in the decision modules: every function, class, method and constant that config/, allocator/,
controller/, resources.py and planning.py define is used by the programs themselves, not only by tests.

(vocabulary.py is left out: it lists the API's names, some of which only the speaker reads.)
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "metallb_fast"
CHECKED = [PACKAGE / "config", PACKAGE / "allocator", PACKAGE / "controller", PACKAGE / "resources.py",
           PACKAGE / "planning.py"]


def runtime_sources() -> list[str]:
    """The programs' code: the package and the compiled sources it builds from (tests and benches not)."""
    paths = [*PACKAGE.rglob("*.py"), *(ROOT / "ext").glob("*.pyx"), *(ROOT / "ext").glob("*.c")]
    return [p.read_text(encoding="utf-8") for p in paths]


def definitions(path: Path) -> Iterator[tuple[str, int]]:
    """Module-level functions, classes and constants, and each class's methods other than dunders."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            yield node.name, node.lineno
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and not member.name.startswith("__"):
                    yield member.name, member.lineno
        if isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name) and target.id != "__all__":
                    yield target.id, node.lineno


def test_every_definition_of_the_decision_modules_is_used_by_the_programs() -> None:
    words = Counter(w for text in runtime_sources() for w in re.findall(r"[A-Za-z_]\w*", text))
    files = [f for place in CHECKED for f in ([place] if place.is_file() else sorted(place.rglob("*.py")))]
    unused = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in files
        for name, line in definitions(path)
        if words[name] < 2  # the definition itself is one occurrence
    ]
    assert unused == []
