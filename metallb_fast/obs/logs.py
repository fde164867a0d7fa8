"""JSON-lines logging (orjson) in MetalLB's shape: one object per line, keys sorted as go-kit's JSON logger writes
them, with `caller` (file:line), `level` (debug, info, warn, error), `ts` (RFC 3339, UTC), `msg`, and any `extra`
fields as given (`op`, `event`, ...: MetalLB's own keys, which operators grep for and ship).

A record logged with `exc_info` carries the traceback in `error`; startup failures are logged without one (a
person reads them: commands/startup.py).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import PurePath
from typing import Any

import orjson

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# go-kit's levels: no "warning", no "critical" (MetalLB logs its fatal startup errors at error).
_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error", "CRITICAL": "error"}


def caller(pathname: str, lineno: int) -> str:
    """`speaker/loop.py:123`: the file within the package (two modules share `loop.py`) and the line, as Go's
    log.DefaultCaller writes `main.go:496`."""
    parts = PurePath(pathname).parts
    # below the last metallb_fast directory (a build tree may hold the package under another one)
    inside = parts[len(parts) - parts[::-1].index("metallb_fast"):] if "metallb_fast" in parts else parts[-1:]
    return f"{'/'.join(inside)}:{lineno}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "caller": caller(record.pathname, record.lineno),
            "level": _LEVELS.get(record.levelname, record.levelname.lower()),
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str, option=orjson.OPT_SORT_KEYS).decode()


def configure_logging(level: str = "info", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # MetalLB's levels: "all" = debug with the libraries' chatter, "none" = nothing at all.
    root.setLevel({"all": logging.DEBUG, "none": logging.CRITICAL + 10}.get(level.lower(), level.upper()))
    # pyroute2 logs every netlink message at debug: only --log-level=all shows them (as MetalLB's "all" adds
    # its libraries' chatter to its own debug lines).
    logging.getLogger("pyroute2").setLevel("DEBUG" if level.lower() == "all" else "INFO")
