"""The one way the lab, the demo and the tests wait for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.1
) -> Any:
    """Poll `condition` until it returns a truthy value and return that value; TimeoutError naming `what` when it
    is still falsy after `timeout` seconds (checked once more at the deadline, so a slow last poll still counts)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
