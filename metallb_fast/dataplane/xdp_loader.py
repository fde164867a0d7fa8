"""Compile and load the XDP program in a short-lived child process, which hands the program's and maps' fds over.

`import bcc` maps LLVM (relocated data) and the compile grows the heap: a process that compiled holds ~34 MiB more
anonymous memory, ~17 MiB of it even after malloc_trim. A long-running process that only drives the maps never pays
for them: `load()` (the parent side) starts `python -m metallb_fast.dataplane.xdp_loader SOCKET_FD REQUEST` (the
same interpreter, from the calling thread: its network and mount namespaces), which imports bcc, points it at kernel
headers (kheaders.py), compiles, adopts or replaces the maps pinned in the pin directory (pinning.py), loads the XDP
function, and sends over a unix socket one message: JSON metadata with the program fd and one fd per requested map
(SCM_RIGHTS), or a JSON error. Then it exits; the fds keep the program and the maps alive in the parent. The
compiler's messages go to the parent's stderr.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metallb_fast.dataplane import bpfsys, kheaders, pinning
from metallb_fast.dataplane.base import ResponderError
from metallb_fast.dataplane.bpfmap import BpfMap

MODULE = "metallb_fast.dataplane.xdp_loader"
TIMEOUT_S = 120.0  # a compile takes ~1 s, up to ~10 s on a busy 2-core machine
EXIT_GRACE_S = 10.0  # for a child that has handed over, to exit
_MAX_MESSAGE = 1 << 16
_MAX_FDS = 64


@dataclass(frozen=True)
class Request:
    source: str  # the C file
    cflags: list[str]
    function: str  # the XDP function to load
    maps: list[str]  # the tables whose fds to hand over
    pin_dir: str | None  # prepared (pinning.prepare) by the parent, or None: nothing pinned


@dataclass
class Loaded:
    """What the child handed over; the caller owns the fds (close() closes them all)."""

    prog_fd: int
    prog_id: int
    maps: dict[str, BpfMap]
    adopted: bool  # the pinned maps were in use as they were
    found: list[str]  # the maps that were pinned in pin_dir before the load (replaced when not adopted)
    pin_dir: str | None

    def close(self) -> None:
        for bpf_map in self.maps.values():
            bpf_map.close()
        if self.prog_fd >= 0:
            os.close(self.prog_fd)
            self.prog_fd = -1


# ------------------------------------------------------------------------------------------------- the parent


def load(request: Request, *, timeout_s: float = TIMEOUT_S, command: Sequence[str] | None = None) -> Loaded:
    """Run the loader child for `request` and take over what it hands over; ResponderError with the child's own
    message when it fails, or naming it when it dies or hangs. `command` replaces `python -m` this module (tests)."""
    prefix = list(command or (sys.executable, "-m", MODULE))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours:
        with theirs:
            argv = [*prefix, str(theirs.fileno()), json.dumps(dataclasses.asdict(request))]
            try:
                # stdout to our stderr: what bcc prints is the operator's to read, never part of our own output.
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=2, pass_fds=(theirs.fileno(),))
            except OSError as exc:
                raise ResponderError(f"xdp: cannot start the XDP loader process ({' '.join(prefix)}): {exc}") from exc
        who = f"the XDP loader process (pid {proc.pid}, {' '.join(prefix)})"
        try:
            message, fds = _receive(ours, proc, who, timeout_s)
        except BaseException:
            _reap(proc, 0.0)
            raise
    _reap(proc, EXIT_GRACE_S)
    return _take_over(message, fds, request)


def _receive(ours: socket.socket, proc: subprocess.Popen[bytes], who: str, timeout_s: float) -> tuple[bytes, list[int]]:
    ours.settimeout(timeout_s)
    try:
        message, fds, flags, _ = socket.recv_fds(ours, _MAX_MESSAGE, _MAX_FDS)
        for fd in fds:  # recv_fds does not ask for MSG_CMSG_CLOEXEC: a later child must not keep the maps alive
            os.set_inheritable(fd, False)
    except TimeoutError:
        raise ResponderError(f"xdp: {who} did not hand over the program within {timeout_s:g} s: killed it") from None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        _close_all(fds)
        raise ResponderError(f"xdp: {who} sent more than this process can receive (truncated)")
    if not message:  # the child's end closed: it exited, or died, without a word
        _close_all(fds)
        try:
            status = proc.wait(EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            raise ResponderError(f"xdp: {who} closed its socket without handing over the program") from None
        raise ResponderError(
            f"xdp: {who} {_exit_status(status)} without handing over the program (its messages, if any, are above)"
        )
    return message, fds


def _exit_status(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


def _reap(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """Wait for the child (killing it after `grace_s`): no zombie on any path."""
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


def _take_over(message: bytes, fds: list[int], request: Request) -> Loaded:
    try:
        meta = json.loads(message)
        if "error" in meta:
            raise ResponderError(str(meta["error"]))
        names = list(meta["maps"])
        if names != request.maps or len(fds) != 1 + len(names):
            raise ResponderError(
                f"xdp: the XDP loader handed over {len(fds)} fds for maps {names}, asked for the program and "
                f"{request.maps}"
            )
        infos = [bpfsys.MapInfo(**meta["maps"][name]) for name in names]
        prog_id, adopted, found, pin_dir = int(meta["prog_id"]), bool(meta["adopted"]), meta["found"], meta["pin_dir"]
        cpus = bpfsys.possible_cpus()
    except (ValueError, KeyError, TypeError) as exc:
        _close_all(fds)
        raise ResponderError(f"xdp: the XDP loader's message is not understood ({exc!r}): {message[:200]!r}") from None
    except BaseException:
        _close_all(fds)
        raise
    maps = {name: BpfMap(fd, info, cpus) for name, fd, info in zip(names, fds[1:], infos, strict=True)}
    return Loaded(prog_fd=fds[0], prog_id=prog_id, maps=maps, adopted=adopted, found=list(found), pin_dir=pin_dir)


# -------------------------------------------------------------------------------------------------- the child


def import_bcc() -> Any:
    try:
        import bcc  # Debian's python3-bpfcc, linked into the venv by scripts/install.sh
    except ImportError as exc:
        raise ResponderError(
            f"xdp: the bcc Python package is not importable ({exc}); install Debian's python3-bpfcc and link "
            "/usr/lib/python3/dist-packages/bcc into the venv (make install)"
        ) from None
    return bcc


def _table_declaration(bcc: Any, bpf: Any, name: str) -> str:
    """One line saying what the compiled program declares under table `name` (for the pinned layout stamp)."""
    raw = name.encode()
    lib = bcc.libbcc.lib
    if lib.bpf_table_fd(bpf.module, raw) < 0:
        return f"{name}: not a table of this program"
    module, map_id = bpf.module, lib.bpf_table_id(bpf.module, raw)
    return (
        f"{name}: type {lib.bpf_table_type_id(module, map_id)} key {lib.bpf_table_key_desc(module, raw)!r} "
        f"leaf {lib.bpf_table_leaf_desc(module, raw)!r} max_entries {lib.bpf_table_max_entries_id(module, map_id)} "
        f"flags {lib.bpf_table_flags_id(module, map_id)}"
    )


def _compile(bcc: Any, path: Path, cflags: list[str]) -> Any:
    try:
        return bcc.BPF(src_file=str(path).encode(), cflags=cflags)
    except Exception as exc:  # bcc raises bare Exception; the compiler's own message went to stderr
        raise ResponderError(f"xdp: bcc could not compile {path}: {exc} (compiler output above)") from exc


def _compile_pinned(bcc: Any, path: Path, cflags: list[str], pin_dir: str) -> tuple[Any, bool, list[str]]:
    """(compiled program, adopted, the maps found pinned). bcc opens the maps pinned under a table's name and pins
    the others; maps whose layout stamp differs from this program's tables are unpinned and made afresh."""
    pins = pinning.PinDirectory(pin_dir)
    cflags = [*cflags, f'-DPIN_DIR="{pins.path}"']
    found = pins.names()
    bpf = _compile(bcc, path, cflags)
    digest = pinning.layout_digest(_table_declaration(bcc, bpf, name) for name in pins.names())
    adopted = bool(found) and pins.stamp() == digest
    if found and not adopted:
        bpf.cleanup()
        pins.clear()
        pins = pinning.PinDirectory(pin_dir)
        bpf = _compile(bcc, path, cflags)
        digest = pinning.layout_digest(_table_declaration(bcc, bpf, name) for name in pins.names())
    pins.write_stamp(digest)
    return bpf, adopted, found


def load_here(request: Request) -> tuple[list[int], dict[str, Any]]:
    """Compile and load in this process: ([program fd, map fds in request.maps' order], metadata). The fds
    belong to bcc's objects, alive until this process exits."""
    bcc = import_bcc()
    kheaders.arrange_for_bcc()  # the shipped UAPI tree unless the operator set BCC_KERNEL_SOURCE
    path = Path(request.source)
    if not path.is_file():
        raise ResponderError(f"xdp: program source {path} is missing (reinstall metallb-fast)")
    adopted, found = False, list[str]()
    if request.pin_dir is None:
        bpf = _compile(bcc, path, request.cflags)
    else:
        bpf, adopted, found = _compile_pinned(bcc, path, request.cflags, request.pin_dir)
    try:
        function = bpf.load_func(request.function.encode(), bcc.BPF.XDP)
    except Exception as exc:
        raise ResponderError(
            f"xdp: the kernel refused to load {request.function} ({exc}); needs CAP_BPF/CAP_SYS_ADMIN "
            "and a kernel with XDP"
        ) from exc
    map_fds = [bcc.libbcc.lib.bpf_table_fd(bpf.module, name.encode()) for name in request.maps]
    missing = [name for name, fd in zip(request.maps, map_fds, strict=True) if fd < 0]
    if missing:
        raise ResponderError(f"xdp: {path} declares no table {', '.join(missing)} (the loader asked for it)")
    meta = {
        "prog_id": bpfsys.prog_info_by_fd(function.fd).id,
        "maps": {name: dataclasses.asdict(bpfsys.map_info_by_fd(fd))
                 for name, fd in zip(request.maps, map_fds, strict=True)},
        "adopted": adopted,
        "found": found,
        "pin_dir": request.pin_dir,
    }
    return [function.fd, *map_fds], meta


def main(argv: Sequence[str]) -> int:
    """argv: socket fd, Request as JSON. Exit status 0 when the program was handed over."""
    sock = socket.socket(fileno=int(argv[0]))
    try:
        fds, meta = load_here(Request(**json.loads(argv[1])))
    except ResponderError as exc:
        fds, meta = [], {"error": str(exc)}
    except Exception as exc:
        traceback.print_exc()
        fds, meta = [], {"error": f"xdp: the XDP loader failed: {type(exc).__name__}: {exc} (traceback above)"}
    socket.send_fds(sock, [json.dumps(meta).encode()], fds)
    return 1 if "error" in meta else 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(status)  # skips bcc's and LLVM's teardown: the kernel frees everything, the parent holds the fds
