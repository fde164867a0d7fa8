"""Faults for a ClusterLab, each one undone: by its handle, or all at once (newest first) when Faults closes.

Everything stays inside the lab: signals go to the speakers this process started (by pid), links and nftables rules
live in the lab's namespaces (the LAN's switch is the bridge namespace, a node's "cable" is its switch port), helper
processes (CPU hog, delay relay) run in lab namespaces and die with their parent (PR_SET_PDEATHSIG).

    faults = Faults(cluster)                    # a context manager too; close() undoes whatever is still in effect
    f = faults.sigkill("node0")                 # SIGKILL the speaker; undo: start it again (as the kubelet would)
    f = faults.node_death("node0")              # switch port down + SIGKILL; undo: port up, speaker started
    f = faults.link_down("node0")               # the node's switch port down (its eth0 loses carrier); undo: up
    f = faults.block_memberlist("node0")        # drop TCP+UDP 7946 and UDP 7947 to and from the node
    f = faults.impair_lan("node0", loss=0.05, delay_s=0.03)   # node=None: loss on every frame the LAN forwards
    f = faults.starve_cpu("node0", 0.05)        # the speaker limited to 5 % of a CPU
    f = faults.pause("node0")                   # SIGSTOP the speaker; undo: SIGCONT
    f = faults.restart("node0")                 # SIGTERM, wait, start again (nothing is left to undo)
    f = faults.drain("node0")                   # kubectl cordon + SIGTERM; undo: uncordon, speaker started
    f = faults.cpu_hog("node0")                 # a busy loop in the node's namespace; undo: stopped
    f.undo()                                    # idempotent; f.started_at / f.undone_at: time.monotonic()

Where each one acts, and why:
- Memberlist is blocked at the node's switch port (a bridge-family nftables table in the bridge namespace), not by
  rules inside the node: the fast path answers a data-path heartbeat in XDP, before any nftables hook of the node
  sees it, so only the switch sees every frame. The same holds for loss.
- Loss is `numgen random` in that bridge table (per direction at a node's port; once per forwarded frame for the
  whole LAN). Delay has no qdisc here (this kernel has no sch_netem), so the node's port is taken out of the bridge
  and a relay (`python -m metallb_fast.lab.faults relay`) copies frames between it and a new veth into the bridge,
  each one after the delay. Frames larger than the MTU (GSO) are dropped by the relay and counted.
- CPU starvation moves the speaker into a cgroup with a CPU quota: cgroup v2 `cpu.max` ("5000 100000" = 5 %) where
  a v2 hierarchy has the cpu controller, else cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (this machine:
  hybrid hierarchy, cpu controller on v1), else SIGSTOP/SIGCONT duty cycling (5 ms running in every 100 ms).
  Cgroups are named after the lab's prefix; a crashed lab's are removed by the next Faults (stale cleanup).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import logging
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metallb_fast.dataplane.packets import _ones_sum
from metallb_fast.lab.probe import die_with_parent, terminate, wait_ready
from metallb_fast.lab.stale import _prefixes_by_owner_state

if TYPE_CHECKING:
    from metallb_fast.lab.cluster import ClusterLab

log = logging.getLogger(__name__)

MEMBERLIST_PORT = 7946  # TCP + UDP (memberlist)
HEARTBEAT_PORT = 7947  # UDP (the data-path heartbeat between our speakers)
CPU_PERIOD_US = 100_000
HELPER_LIFETIME_S = 4 * 3600.0
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY = 1 << 3
AUXDATA_SPACE = socket.CMSG_SPACE(20)  # struct tpacket_auxdata
MAX_FRAME = 1514
CGROUP_ROOT = Path("/sys/fs/cgroup")


class FaultUnavailable(RuntimeError):
    """A fault cannot be injected on this machine (a tool or kernel feature is missing); the message says which."""


@dataclass
class Fault:
    """One injected fault. `undo()` ends it (once); `started_at` / `undone_at` are time.monotonic() stamps."""

    kind: str
    node: str | None
    started_at: float
    _undo: Callable[[], None] | None = field(default=None, repr=False)
    undone_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.undone_at is None

    def undo(self) -> None:
        if self.undone_at is not None:
            return
        self.undone_at = time.monotonic()
        if self._undo is not None:
            self._undo()


class Faults:
    """Inject faults into `cluster`; every fault still in effect is undone by close() (newest first)."""

    def __init__(self, cluster: ClusterLab) -> None:
        self.cluster = cluster
        self.lab = cluster.lab
        self.injected: list[Fault] = []
        cleanup_stale_cgroups()

    def __enter__(self) -> Faults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Undo every fault still in effect, newest first; the first failure is raised after all were tried."""
        failures: list[BaseException] = []
        for fault in reversed(self.injected):
            try:
                fault.undo()
            except Exception as error:  # keep undoing the others
                log.warning("could not undo %s on %s: %s", fault.kind, fault.node, error)
                failures.append(error)
        self.injected.clear()
        if failures:
            raise failures[0]

    def _add(self, kind: str, node: str | None, undo: Callable[[], None] | None, started_at: float | None = None,
             **detail: Any) -> Fault:
        """Record a fault that took effect at `started_at` (default: now)."""
        fault = Fault(kind, node, time.monotonic() if started_at is None else started_at, undo, detail=detail)
        self.injected.append(fault)
        return fault

    # ------------------------------------------------------------------ the speaker process
    def sigkill(self, node: str) -> Fault:
        """SIGKILL the node's speaker: no leave, no withdrawal (its XDP program answers until the liveness deadline)."""
        started_at = time.monotonic()
        self.cluster.kill_speaker(node)
        return self._add("sigkill", node, lambda: self.cluster.restart_speaker(node), started_at)

    def pause(self, node: str) -> Fault:
        """SIGSTOP the node's speaker (its kernel still answers until the liveness deadline); undo: SIGCONT."""
        self.cluster.signal_speaker(node, signal.SIGSTOP)
        return self._add("pause", node, lambda: self.cluster.signal_speaker(node, signal.SIGCONT))

    def restart(self, node: str) -> Fault:
        """SIGTERM the speaker (it leaves and withdraws), wait for it, start it again; returns once started."""
        started_at = time.monotonic()  # the SIGTERM: the speaker leaves and withdraws at once
        code = self.cluster.stop_speaker(node)
        stopped_at = time.monotonic()
        self.cluster.restart_speaker(node)
        fault = self._add("restart", node, None, started_at, exit_code=code, stopped_s=stopped_at - started_at)
        fault.undone_at = time.monotonic()
        return fault

    def drain(self, node: str) -> Fault:
        """Cordon the node (`kubectl cordon`) and SIGTERM its speaker for good; undo: uncordon, start it again."""
        self.cluster.kube.kubectl("cordon", node)
        started_at = time.monotonic()
        code = self.cluster.stop_speaker(node)

        def undo() -> None:
            self.cluster.kube.kubectl("uncordon", node, check=False)
            self.cluster.restart_speaker(node)

        return self._add("drain", node, undo, started_at, exit_code=code)

    def starve_cpu(self, node: str, fraction: float = 0.05) -> Fault:
        """Limit the node's speaker to `fraction` of one CPU until undone."""
        if not 0 < fraction < 1:
            raise ValueError(f"starve_cpu fraction {fraction}: must be in (0, 1), e.g. 0.05 for 5 %")
        pid = self.cluster.speaker_pid(node)
        name = f"{self.lab.prefix}{node}-cpu"
        limit = _cgroup_v2_limit(name, pid, fraction) or _cgroup_v1_limit(name, pid, fraction)
        if limit is not None:
            how, undo = limit
        else:
            how, undo = "SIGSTOP/SIGCONT duty cycle", _duty_cycle(pid, fraction)
        return self._add("starve_cpu", node, undo, fraction=fraction, how=how)

    def cpu_hog(self, node: str) -> Fault:
        """A busy loop (one Python process) in the node's namespace, competing with its speaker for the CPUs."""
        proc = self.lab.popen(self.cluster.host(node).netns, [*FAULTS_MODULE, "hog"])
        return self._add("cpu_hog", node, lambda: terminate(proc), pid=proc.pid)

    # ------------------------------------------------------------------ the network
    def link_down(self, node: str) -> Fault:
        """Take the node's switch port down (its eth0 loses carrier); undo: up again."""
        self._port(node, "down")
        return self._add("link_down", node, lambda: self._port(node, "up"))

    def node_death(self, node: str) -> Fault:
        """The node vanishes (power loss): its switch port down, its speaker SIGKILLed, and what a reboot loses
        lost too (the XDP program and its pinned maps); undo: port up, speaker started afresh."""
        self._port(node, "down")
        started_at = time.monotonic()
        self.cluster.kill_speaker(node)
        self.cluster.forget_fast_path(node)

        def undo() -> None:
            self._port(node, "up")
            self.cluster.restart_speaker(node)

        return self._add("node_death", node, undo, started_at)

    def block_memberlist(self, node: str, ports: Sequence[int] = (MEMBERLIST_PORT, HEARTBEAT_PORT)) -> Fault:
        """Drop every TCP and UDP frame from or to `ports` (memberlist 7946, our heartbeat 7947) at the node's
        switch port, both directions: the node is cut off from the other speakers but still on the LAN."""
        names = self._port_names(node)
        port_set = ", ".join(str(p) for p in ports)
        rules = [f"{direction} {{ {names} }} meta l4proto {{ tcp, udp }} th {end} {{ {port_set} }} drop"
                 for direction in ("iifname", "oifname") for end in ("sport", "dport")]
        table = f"mlbf_block_{node}"
        self._nft_table(table, rules)
        return self._add("block_memberlist", node, lambda: self._nft_delete(table), ports=list(ports))

    def impair_lan(self, node: str | None, loss: float = 0.0, delay_s: float = 0.0) -> Fault:
        """Loss (a fraction, per frame and direction) and delay (seconds, each way) on the node's link; node=None:
        loss on every frame the LAN forwards (delay needs a node)."""
        if not 0 <= loss < 1 or delay_s < 0:
            raise ValueError(f"impair_lan loss={loss} delay_s={delay_s}: loss must be in [0, 1), delay >= 0")
        if node is None and delay_s:
            raise ValueError("impair_lan: delay is per node link (the relay sits at one switch port); give a node")
        undos: list[Callable[[], None]] = []
        if delay_s:
            undos.append(self._relay(node, delay_s))  # type: ignore[arg-type]
        if loss:
            per_mille = round(loss * 1000)
            table = f"mlbf_loss_{node or 'lan'}"
            if node is None:
                rules = [f"numgen random mod 1000 < {per_mille} drop"]
            else:
                names = self._port_names(node)
                rules = [f"{d} {{ {names} }} numgen random mod 1000 < {per_mille} drop" for d in ("iifname", "oifname")]
            self._nft_table(table, rules)
            undos.append(lambda: self._nft_delete(table))

        def undo() -> None:
            for step in reversed(undos):
                step()

        return self._add("impair_lan", node, undo, loss=loss, delay_s=delay_s)

    # ------------------------------------------------------------------ helpers
    @property
    def _bridge(self) -> str:
        if self.lab.bridge_netns is None:
            raise FaultUnavailable("this lab has no LAN bridge (direct=True): network faults need the switch")
        return self.lab.bridge_netns

    def _port(self, node: str, state: str) -> None:
        self.lab.run(self._bridge, ["ip", "link", "set", self.cluster.lan_port(node), state])

    def _port_names(self, node: str) -> str:
        """The node's switch port as nftables sees it: its own veth, or the relay's veth while a delay is on."""
        port = self.cluster.lan_port(node)
        return f'"{port}", "{port}b"'

    def _nft_table(self, table: str, rules: Sequence[str]) -> None:
        if shutil.which("nft") is None:
            raise FaultUnavailable("nft (Debian package nftables) is not installed; scripts/install.sh installs it")
        body = "\n    ".join(rules)
        script = (f"table bridge {table} {{\n  chain forward {{\n    type filter hook forward priority 0; "
                  f"policy accept;\n    {body}\n  }}\n}}\n")
        result = subprocess.run(["ip", "netns", "exec", self._bridge, "nft", "-f", "-"], input=script,
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"nft rejected table {table}: {result.stderr.strip()}\n{script}")

    def _nft_delete(self, table: str) -> None:
        self.lab.run(self._bridge, ["nft", "delete", "table", "bridge", table], check=False)

    def _relay(self, node: str, delay_s: float) -> Callable[[], None]:
        """Put a delaying relay between the node's veth and the switch; returns the undo."""
        bridge, port = self._bridge, self.cluster.lan_port(node)
        relay_side, bridge_side = f"{port}r", f"{port}b"
        run = self.lab.run
        master = run(bridge, ["ip", "-o", "link", "show", port]).stdout.split(" master ")[1].split()[0]
        run(bridge, ["ip", "link", "add", relay_side, "type", "veth", "peer", "name", bridge_side])
        run(bridge, ["ip", "link", "set", bridge_side, "master", master, "up"])
        run(bridge, ["ip", "link", "set", relay_side, "up"])
        proc = self.lab.popen(bridge, [*FAULTS_MODULE, "relay", "--a", port, "--b", relay_side,
                                       "--delay", str(delay_s)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_ready(proc, f"the delay relay on {port}")
        # Only now out of the bridge: the relay and the bridge must never both forward for this port (a loop).
        run(bridge, ["ip", "link", "set", port, "nomaster"])
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()

        def undo() -> None:
            terminate(proc)
            run(bridge, ["ip", "link", "set", port, "master", master], check=False)
            run(bridge, ["ip", "link", "del", relay_side], check=False)
            if proc.stderr is not None:
                tail = proc.stderr.read().strip()
                if tail:
                    log.info("relay %s: %s", port, tail)

        return undo


FAULTS_MODULE = [sys.executable, "-m", "metallb_fast.lab.faults"]


# ---------------------------------------------------------------------------------------------------- cgroups

def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of every cgroup mount, from /proc/self/mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _, options = post.split(" ", 2)
        if fstype in ("cgroup", "cgroup2"):
            found.append((pre.split()[4], fstype, options))
    return found


def _cgroup_v2_root() -> Path | None:
    for mount, fstype, _ in _mounts():
        controllers = Path(mount, "cgroup.controllers")
        if fstype == "cgroup2" and controllers.exists() and "cpu" in controllers.read_text().split():
            return Path(mount)
    return None


def _cgroup_v1_root() -> Path | None:
    for mount, fstype, options in _mounts():
        if fstype == "cgroup" and "cpu" in options.split(",") and Path(mount, "cpu.cfs_quota_us").exists():
            return Path(mount)
    return None


def _own_cgroup(pid: int, root: Path, v2: bool) -> Path:
    """The cgroup `pid` is in, under `root` (its line in /proc/PID/cgroup for that hierarchy)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (v2 and controllers == "") or (not v2 and "cpu" in controllers.split(",")):
            return root / path.lstrip("/")
    return root


def _limited(name: str, pid: int, root: Path, v2: bool, settings: dict[str, str]) -> Callable[[], None]:
    """Move `pid` into a new cgroup `root/name` with `settings`; returns the undo (moves it back, removes it)."""
    home = _own_cgroup(pid, root, v2)
    group = root / name
    group.mkdir(exist_ok=True)
    for key, value in settings.items():
        (group / key).write_text(value)
    (group / "cgroup.procs").write_text(str(pid))

    def undo() -> None:
        with contextlib.suppress(OSError):  # the process may have exited meanwhile
            (home / "cgroup.procs").write_text(str(pid))
        _remove_cgroup(group, home)

    return undo


def _cgroup_v2_limit(name: str, pid: int, fraction: float) -> tuple[str, Callable[[], None]] | None:
    root = _cgroup_v2_root()
    if root is None:
        return None
    subtree = root / "cgroup.subtree_control"
    try:
        if "cpu" not in subtree.read_text().split():
            subtree.write_text("+cpu")
        quota = max(1000, round(fraction * CPU_PERIOD_US))
        undo = _limited(name, pid, root, True, {"cpu.max": f"{quota} {CPU_PERIOD_US}"})
    except OSError as error:
        log.info("cgroup v2 cpu.max unavailable (%s); trying cgroup v1", error)
        return None
    return f"cgroup v2 cpu.max {quota} {CPU_PERIOD_US}", undo


def _cgroup_v1_limit(name: str, pid: int, fraction: float) -> tuple[str, Callable[[], None]] | None:
    root = _cgroup_v1_root()
    if root is None:
        return None
    quota = max(1000, round(fraction * CPU_PERIOD_US))
    try:
        undo = _limited(name, pid, root, False,
                        {"cpu.cfs_period_us": str(CPU_PERIOD_US), "cpu.cfs_quota_us": str(quota)})
    except OSError as error:
        log.info("cgroup v1 cpu quota unavailable (%s); falling back to SIGSTOP/SIGCONT", error)
        return None
    return f"cgroup v1 cpu.cfs_quota_us {quota} / cpu.cfs_period_us {CPU_PERIOD_US}", undo


def _remove_cgroup(group: Path, home: Path) -> None:
    """Move whatever is still in `group` to `home` and remove it."""
    with contextlib.suppress(OSError):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (home / "cgroup.procs").write_text(pid)
    with contextlib.suppress(OSError):
        group.rmdir()


def cleanup_stale_cgroups(prefix_root: str = "mlbf-") -> list[str]:
    """Remove the CPU cgroups of labs whose owning process is gone (named `<lab prefix><node>-cpu`)."""
    live, _ = _prefixes_by_owner_state()
    removed = []
    roots = [r for r in (_cgroup_v2_root(), _cgroup_v1_root()) if r is not None]
    for root in roots:
        for group in root.glob(f"{prefix_root}*-cpu"):
            if group.is_dir() and not any(group.name.startswith(p) for p in live):
                _remove_cgroup(group, root)
                removed.append(str(group))
    return removed


def _duty_cycle(pid: int, fraction: float) -> Callable[[], None]:
    """SIGSTOP/SIGCONT `pid` so it runs `fraction` of every 100 ms (a thread of this process); returns the undo."""
    stop = threading.Event()
    running_s = fraction * CPU_PERIOD_US / 1e6
    stopped_s = (1 - fraction) * CPU_PERIOD_US / 1e6

    def cycle() -> None:
        try:
            while not stop.is_set():
                os.kill(pid, signal.SIGSTOP)
                if stop.wait(stopped_s):
                    break
                os.kill(pid, signal.SIGCONT)
                stop.wait(running_s)
        except ProcessLookupError:
            return
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=cycle, name=f"duty-cycle-{pid}", daemon=True)
    thread.start()

    def undo() -> None:
        stop.set()
        thread.join(timeout=5)

    return undo


# ---------------------------------------------------------------------------------------------------- helpers run
# inside the lab's namespaces

def run_hog(lifetime: float) -> int:
    """Spin until SIGTERM or `lifetime` seconds."""
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        for _ in range(100_000):
            pass
    return 0


def complete_checksum(frame: bytes) -> bytes:
    """The frame with its TCP/UDP checksum filled in (IPv4, or IPv6 without extension headers).

    A veth leaves that checksum to "offload" (CHECKSUM_PARTIAL): a frame read from a packet socket and sent again
    would reach the receiver with a checksum it rejects. The relay completes it when the kernel says so.
    """
    ethertype, ip = frame[12:14], 14
    if ethertype == b"\x08\x00" and len(frame) >= ip + 20:
        proto = frame[ip + 9]
        l4 = ip + (frame[ip] & 0x0F) * 4
        end = ip + struct.unpack_from("!H", frame, ip + 2)[0]
        pseudo = frame[ip + 12:ip + 20] + struct.pack("!xBH", proto, end - l4)
    elif ethertype == b"\x86\xdd" and len(frame) >= ip + 40:
        proto = frame[ip + 6]
        l4 = ip + 40
        end = l4 + struct.unpack_from("!H", frame, ip + 4)[0]
        pseudo = frame[ip + 8:ip + 40] + struct.pack("!IxxxB", end - l4, proto)
    else:
        return frame
    field_at = {6: 16, 17: 6}.get(proto)  # TCP, UDP: where the checksum sits in their header
    if field_at is None or end > len(frame) or end - l4 < field_at + 2:
        return frame
    segment = bytearray(frame[l4:end])
    segment[field_at:field_at + 2] = b"\x00\x00"
    checksum = ~_ones_sum(pseudo + bytes(segment)) & 0xFFFF
    if proto == 17 and checksum == 0:
        checksum = 0xFFFF  # UDP: 0 means "no checksum"
    segment[field_at:field_at + 2] = struct.pack("!H", checksum)
    return frame[:l4] + bytes(segment) + frame[end:]


def _checksum_not_ready(ancillary: list[tuple[int, int, bytes]]) -> bool:
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 4:
            return bool(struct.unpack_from("=I", data)[0] & TP_STATUS_CSUMNOTREADY)
    return False


def run_relay(a: str, b: str, delay_s: float, lifetime: float) -> int:
    """Copy every frame received on `a` to `b` and back, each `delay_s` after it arrived, until SIGTERM.

    Forwards only after "go" on stdin (the driver first takes `a` out of its bridge: both forwarding would loop).
    """
    counts = {"forwarded": 0, "oversize": 0}

    def leave(signum: int, frame: object) -> None:  # at once: frames still queued are lost, as on a cut cable
        print(f"forwarded {counts['forwarded']}, dropped {counts['oversize']} frames over {MAX_FRAME} bytes",
              file=sys.stderr, flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    socks = {}
    for name in (a, b):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((name, ETH_P_ALL))
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setblocking(False)
        socks[name] = sock
    other = {socks[a]: socks[b], socks[b]: socks[a]}
    print("ready", flush=True)
    sys.stdin.readline()
    for sock in other:  # what queued up before "go" was also forwarded by the bridge: drop it
        with contextlib.suppress(BlockingIOError):
            while True:
                sock.recv(65536)
    queue: list[tuple[float, int, socket.socket, bytes]] = []
    counter = 0
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.5
        try:
            readable, _, _ = select.select(list(other), [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for sock in readable:
            while True:
                try:
                    frame, ancillary, _, address = sock.recvmsg(65536, AUXDATA_SPACE)
                except (BlockingIOError, InterruptedError):
                    break
                if address[2] == PACKET_OUTGOING:
                    continue  # our own transmission seen on the way out
                if len(frame) > MAX_FRAME:
                    counts["oversize"] += 1
                    continue
                if _checksum_not_ready(ancillary):
                    frame = complete_checksum(frame)
                counter += 1
                heapq.heappush(queue, (now + delay_s, counter, other[sock], frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            with contextlib.suppress(OSError):
                out.send(frame)
                counts["forwarded"] += 1
    leave(signal.SIGTERM, None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="helpers that faults.py runs inside lab namespaces")
    sub = parser.add_subparsers(dest="role", required=True)
    hog = sub.add_parser("hog", help="spin on one CPU")
    hog.add_argument("--lifetime", type=float, default=HELPER_LIFETIME_S)
    relay = sub.add_parser("relay", help="copy frames between two interfaces, delayed")
    relay.add_argument("--a", required=True)
    relay.add_argument("--b", required=True)
    relay.add_argument("--delay", type=float, required=True)
    relay.add_argument("--lifetime", type=float, default=HELPER_LIFETIME_S)
    args = parser.parse_args(argv)
    die_with_parent()
    if args.role == "hog":
        return run_hog(args.lifetime)
    return run_relay(args.a, args.b, args.delay, args.lifetime)


if __name__ == "__main__":
    sys.exit(main())
