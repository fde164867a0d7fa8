"""The repository stands alone and names its files by their names: no link or path leading outside it, no
reference to a file that is not there (FASTPATH.md is docs/fastpath.md)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("README.md", "docs", "metallb_fast", "ext", "tests", "bench", "deploy", "scripts", "examples")
SUFFIXES = {".md", ".py", ".pyx", ".pxd", ".c", ".yaml", ".sh", ".go", ".toml"}
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()



def text_files() -> Iterator[tuple[str, str]]:
    """The repository's text files as git sees them: tracked, or new and not ignored (so no build output)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *SOURCES],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    for relative in sorted(set(listed) - {THIS_FILE}):
        path = ROOT / relative
        if path.suffix in SUFFIXES and path.is_file():
            yield relative, path.read_text(encoding="utf-8", errors="replace")


def test_no_reference_to_fastpath_md() -> None:
    assert sorted(name for name, text in text_files() if "FASTPATH.md" in text) == []


def test_nothing_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared/|(?<![\w./])shared/(?:DESIGN\.md|research/|reference/)")
    found = sorted(name for name, text in text_files() if outside.search(text))
    assert found == []


def test_markdown_links_lead_to_files_of_the_repository() -> None:
    broken = []
    for name, text in text_files():
        if not name.endswith(".md"):
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = ((ROOT / name).parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{name}: {target}")
    assert broken == []
