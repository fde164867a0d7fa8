"""Ownership records for lab prefixes, so a new lab removes a crashed lab's leftovers and nothing else.

Several labs may run at once (parallel test runs, a benchmark beside the tests): a namespace is stale only when
the process that created its prefix is gone. Each live lab writes /run/metallb-fast-lab/<prefix>.json with its
pid and the pid's start time (guards against pid reuse).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from pyroute2 import IPRoute, netns

log = logging.getLogger(__name__)

REGISTRY = Path("/run/metallb-fast-lab")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 (starttime), counted after the comm field


def register(prefix: str) -> None:
    REGISTRY.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "start": _start_time(os.getpid())}
    (REGISTRY / f"{prefix}.json").write_text(json.dumps(record))


def unregister(prefix: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (REGISTRY / f"{prefix}.json").unlink()


def _live_prefixes() -> set[str]:
    live: set[str] = set()
    if not REGISTRY.is_dir():
        return live
    for path in REGISTRY.glob("*.json"):
        try:
            record = json.loads(path.read_text())
            alive = _start_time(int(record["pid"])) == record["start"]
        except (OSError, ValueError, KeyError, TypeError):
            alive = False
        if alive:
            live.add(path.name.removesuffix(".json"))
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return live


def cleanup_stale(prefix_root: str = "mlbf-") -> list[str]:
    """Remove namespaces and host links named `prefix_root*` whose lab owner is no longer running.

    Returns the names removed. Processes still running inside a removed namespace are not touched (they were not
    started by this process); the namespace itself disappears when they exit.
    """
    live = _live_prefixes()

    def stale(name: str) -> bool:
        return name.startswith(prefix_root) and not any(name.startswith(p) for p in live)

    removed: list[str] = []
    for name in netns.listnetns():
        if stale(name):
            try:
                netns.remove(name)
                removed.append(name)
            except OSError as exc:
                log.warning("could not remove stale lab namespace %s: %s", name, exc)
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get("ifname") or ""
            if stale(name):
                try:
                    ipr.link("del", index=link["index"])
                    removed.append(name)
                except Exception as exc:  # a link may vanish with its namespace meanwhile
                    log.warning("could not remove stale lab link %s: %s", name, exc)
    if removed:
        log.info("removed stale lab objects: %s", ", ".join(removed))
    return removed
