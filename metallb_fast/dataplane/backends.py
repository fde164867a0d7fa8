"""Choose a responder: xdp, ring or python by name, or `auto` (the first of those that loads here)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from typing import Any

from metallb_fast.dataplane.base import Responder, ResponderError
from metallb_fast.dataplane.floodlimit import FloodLimit

log = logging.getLogger(__name__)

# Imported only when chosen: xdp needs bcc (and compiles for ~1 s), ring needs the Cython extension.
BACKENDS: dict[str, tuple[str, str]] = {
    "xdp": ("metallb_fast.dataplane.xdp", "XdpResponder"),
    "ring": ("metallb_fast.dataplane.ring", "RingResponder"),
    "python": ("metallb_fast.dataplane.pyloop", "PythonResponder"),
}
AUTO_ORDER = ("xdp", "ring", "python")
CHOICES = ("auto", *BACKENDS)


def open_responder(
    backend: str, interfaces: Iterable[str] = (), *, flood_limit: FloodLimit | None = None, **options: Any
) -> Responder:
    """The named responder listening on `interfaces`; ResponderError saying why when it cannot load.

    `auto` tries xdp, then ring, then python, logging each fall-back with its reason. `flood_limit` reaches
    whichever backend loads (every backend limits alike); other options are passed to the named backend (auto
    passes them only to xdp, whose options the others do not take).
    """
    names = tuple(interfaces)
    common: dict[str, Any] = {} if flood_limit is None else {"flood_limit": flood_limit}
    if backend == "auto":
        reasons: list[str] = []
        for name in AUTO_ORDER:
            try:
                return _open(name, names, {**common, **options} if name == "xdp" else common)
            except ResponderError as exc:
                reasons.append(f"{name}: {exc}")
                log.warning("responder backend %s unavailable, falling back: %s", name, exc)
        raise ResponderError("no responder backend could load here: " + "; ".join(reasons))
    if backend not in BACKENDS:
        raise ResponderError(f"unknown responder backend {backend!r}: choose one of {', '.join(CHOICES)}")
    return _open(backend, names, {**common, **options})


def _open(name: str, interfaces: tuple[str, ...], options: dict[str, Any]) -> Responder:
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ResponderError(f"{name} backend is not available: {exc}") from exc
    try:
        responder: Responder = cls(interfaces, **options)
    except ResponderError:
        raise
    except Exception as exc:  # bcc raises bare Exception when it cannot compile; missing CAP_NET_RAW: OSError
        raise ResponderError(f"{name} backend cannot load: {type(exc).__name__}: {exc}") from exc
    return responder
