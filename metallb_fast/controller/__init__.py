"""The controller: per-Service decisions (decide.py, pure) and the loop that applies them through k8s/ (loop.py)."""

from metallb_fast.controller.decide import Decision, SyncResult, apply_config, decide, forget
from metallb_fast.controller.events import Event

__all__ = ["Decision", "Event", "SyncResult", "apply_config", "decide", "forget"]
