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


def _prefixes_by_owner_state() -> tuple[set[str], set[str]]:
    """(live, dead) lab prefixes from the registry."""
    live: set[str] = set()
    dead: set[str] = set()
    if not REGISTRY.is_dir():
        return live, dead
    for path in REGISTRY.glob("*.json"):
        prefix = path.name.removesuffix(".json")
        try:
            record = json.loads(path.read_text())
            alive = _start_time(int(record["pid"])) == record["start"]
        except (OSError, ValueError, KeyError, TypeError):
            alive = False
        (live if alive else dead).add(prefix)
    return live, dead


def cleanup_stale(prefix_root: str = "mlbf-") -> list[str]:
    """Remove namespaces and host links of labs (prefix `prefix_root*`) whose owning process is gone.

    Only prefixes a Lab registered are touched: namespaces other tools name "mlbf-..." without a record are
    not ours to judge. Returns the names removed. Processes still running inside a removed namespace are not
    touched (this process did not start them); the namespace itself disappears when they exit.
    """
    live, dead = _prefixes_by_owner_state()
    dead = {p for p in dead if p.startswith(prefix_root)}

    def stale(name: str) -> bool:
        return any(name.startswith(p) for p in dead) and not any(name.startswith(p) for p in live)

    removed: list[str] = []
    failed = False
    for name in netns.listnetns():
        if stale(name):
            try:
                netns.remove(name)
                removed.append(name)
            except OSError as exc:
                failed = True
                log.warning("could not remove stale lab namespace %s: %s", name, exc)
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get("ifname") or ""
            if stale(name):
                try:
                    ipr.link("del", index=link["index"])
                    removed.append(name)
                except Exception as exc:  # a link may vanish with its namespace meanwhile
                    failed = True
                    log.warning("could not remove stale lab link %s: %s", name, exc)
    if not failed:  # keep the records of what could not be removed, so a later lab tries again
        for prefix in dead:
            unregister(prefix)
    if removed:
        log.info("removed stale lab objects: %s", ", ".join(removed))
    return removed
