"""Give back memory the process no longer uses, once its start-up work is done.

Starting leaves garbage behind: the initial LIST of every watched object (raw JSON parsed into views, then
dropped) stays resident as anonymous memory, glibc keeping the freed pages mapped, until something returns them to
the kernel: malloc_trim does. (bcc's compile of the XDP program, which left ~17 MiB that no trim returns, runs in a
child process now: dataplane/xdp_loader.py.) Then the objects that live for the program's whole life (caches,
views) are frozen out of the cyclic garbage collector, so its full collections do not walk tens of thousands of
views on every pass (the pause would land in a watch event's latency).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)


def settle_after_startup() -> None:
    gc.collect()
    gc.freeze()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError) as error:  # not glibc (musl has no malloc_trim): nothing to give back
        log.debug("malloc_trim unavailable: %s", error)
