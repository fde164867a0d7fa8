"""The XDP responder: xdp_responder.c (beside this module) compiled with bcc in a child process (xdp_loader.py), its
maps kept equal to the owned table with bpf(2) from this one (xdp_maps.py packs their structs).

Three layers, each usable alone:
- `map_entries` / `diff_entries`: pure; what the address maps must hold and how to get there from what they hold.
- `XdpProgram`: the compiled program and its maps, attached nowhere (tests run it with BPF_PROG_TEST_RUN).
- `XdpResponder`: the Responder; attaches the program to the interfaces in use, in a mode that delivers XDP_TX.

Hitless restart: given a pin directory (pinning.py), the maps are pinned there. A responder that finds maps of the
same layout pinned there adopts them (the addresses they hold keep being answered), replaces the previous run's
program on each interface in one netlink call (no moment without a program), and a run that ends with
close(keep_serving=True) leaves its program attached and its maps pinned for the next one; the liveness deadline
in the pinned config bounds how long the kernel answers for a run that never comes back.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import re
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metallb_fast.dataplane import bpfsys, floodlimit, ownership, pinning, wire, xdp_loader, xdp_maps
from metallb_fast.dataplane.base import (
    AddressCounters,
    IPAddress,
    KernelRefused,
    Owned,
    OwnedKey,
    ResponderError,
    ResponderStats,
    Verdict,
)
from metallb_fast.dataplane.floodlimit import FloodLimit
from metallb_fast.dataplane.netns import in_netns
from metallb_fast.dataplane.syncing import SyncingResponder

log = logging.getLogger(__name__)

SOURCE_NAME = "xdp_responder.c"
FUNCTION_NAME = "mlbf_responder"  # also the kernel's program name (<= 15 chars): how stale attachments are found
PASS_PROGRAM_NAME = "mlbf_xdp_pass"
DEFAULT_MAX_VIPS = 4096
MODES = ("auto", "native", "generic")

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4  # with IFLA_XDP_EXPECTED_FD: swap the program only if it is still the expected one
XDP_DROP, XDP_PASS = 1, 2  # the actions flood_config.action holds for frames over the limit
ENOTSUPP = 524  # the kernel's internal "not supported", as some drivers return it
_MODE_NAMES = {XDP_FLAGS_SKB_MODE: "generic", XDP_FLAGS_DRV_MODE: "native", XDP_FLAGS_HW_MODE: "offload"}

MapKey = tuple[IPAddress, int]  # (address, ifindex); ifindex 0 = "owned on some interface" marker
SOMEWHERE = 0
_MARKER_VALUE = bytes(6)
_ZERO_COUNTERS = bytes(xdp_maps.VIP_COUNTERS.size)


# ---------------------------------------------------------------------------------------------- pure decisions


def map_entries(desired: Mapping[MapKey, bytes]) -> dict[MapKey, bytes]:
    """Everything the address maps must hold: each (address, ifindex) -> MAC, plus one marker per address."""
    entries: dict[MapKey, bytes] = {}
    for (address, ifindex), mac in desired.items():
        if ifindex <= 0:
            raise ValueError(f"ifindex {ifindex} for {address}: must be a real interface index (> 0)")
        if len(mac) != 6:
            raise ValueError(f"MAC for {address} on ifindex {ifindex}: must be 6 bytes, got {len(mac)}")
        entries[(address, ifindex)] = bytes(mac)
        entries[(address, SOMEWHERE)] = _MARKER_VALUE
    return entries


def diff_entries(
    current: Mapping[MapKey, bytes], wanted: Mapping[MapKey, bytes]
) -> tuple[dict[MapKey, bytes], list[MapKey]]:
    """(upserts, deletes) turning `current` into `wanted`; keys present in both with equal values are untouched,
    so an address that stays owned is answered throughout."""
    upserts = {key: value for key, value in wanted.items() if current.get(key) != value}
    deletes = [key for key in current if key not in wanted]
    return upserts, deletes


def attach_order(mode: str, link_kind: str | None) -> list[int]:
    """XDP mode flags to try, in order, for an interface of `link_kind` (IFLA_INFO_KIND; None for NICs).

    veth delivers native XDP_TX only when its peer runs a native XDP program, which we cannot know or ensure,
    so auto takes generic there; elsewhere native first and generic when the driver has no XDP support.
    """
    if mode not in MODES:
        raise ValueError(f"XDP attach mode {mode!r}: must be one of {', '.join(MODES)}")
    if mode == "native":
        return [XDP_FLAGS_DRV_MODE]
    if mode == "generic" or link_kind == "veth":
        return [XDP_FLAGS_SKB_MODE]
    return [XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE]


# ------------------------------------------------------------------------------------------- program and maps


def source_path() -> Path:
    """The program's C source, package data beside this module (a source tree and an installed wheel alike)."""
    return Path(__file__).resolve().with_name(SOURCE_NAME)


def loader_request(
    *, max_vips: int = DEFAULT_MAX_VIPS, source: Path | None = None, pin_dir: Path | None = None,
    flood_sources: int = floodlimit.DEFAULT_SOURCES,
) -> xdp_loader.Request:
    """What the loader child compiles and hands over for an XdpProgram of these options (pin_dir prepared)."""
    return xdp_loader.Request(
        source=str(source or source_path()),
        cflags=[*wire.cflags(), f"-DMAX_VIPS={max_vips}", f"-DFLOOD_SOURCES={flood_sources}"],
        function=FUNCTION_NAME, maps=list(xdp_maps.LAYOUTS), pin_dir=None if pin_dir is None else str(pin_dir),
    )


class XdpProgram:
    """xdp_responder.c compiled and loaded (not attached) by a child process (xdp_loader.py): its fd and its maps,
    keyed by ifindex, driven with bpf(2) from this process, which never loads bcc.

    With `pin_dir` the maps are pinned there; maps already pinned there by an earlier run are used as they are
    (`adopted`, entries and counters included) when their layout stamp matches this program's tables, and
    replaced by empty ones (logged) when it does not.
    """

    def __init__(
        self, *, max_vips: int = DEFAULT_MAX_VIPS, source: Path | None = None,
        pin_dir: str | os.PathLike[str] | None = None, flood_sources: int = floodlimit.DEFAULT_SOURCES,
    ) -> None:
        # Prepared here, so that mounting bpffs (and its warning) happens in this process, under its logging.
        self.pins: pinning.PinDirectory | None = pinning.PinDirectory(pin_dir) if pin_dir is not None else None
        request = loader_request(max_vips=max_vips, source=source, pin_dir=self.pins.path if self.pins else None,
                                 flood_sources=flood_sources)
        self._loaded = loaded = xdp_loader.load(request)
        self.adopted = loaded.adopted
        self.fd: int = loaded.prog_fd
        self.prog_id: int = loaded.prog_id
        maps = loaded.maps
        try:
            for name, bpf_map in maps.items():
                xdp_maps.check(name, bpf_map.info)
            self._log_adoption(loaded.found)
            self._tables = {4: maps["vips_v4"], 6: maps["vips_v6"]}
            self._counters = {4: maps["counters_v4"], 6: maps["counters_v6"]}
            self._verdicts = maps["verdicts"]
            self._config = maps["config"]
            self._heartbeat_ifaces = maps["heartbeat_ifaces"]
            self._flood_config = maps["flood_config"]
            self._flood_buckets = maps["flood_buckets"]
            self._deadline = self._config.slot(xdp_maps.INDEX.pack(wire.CONFIG_DEADLINE), xdp_maps.U64)
            self._entries: dict[MapKey, bytes] = self._read_entries() if self.adopted else {}
        except BaseException:
            loaded.close()
            raise
        self.flood_limit = FloodLimit.off()  # what flood_config holds (a fresh, unpinned map: zeros = off)
        self._closed = False

    def _log_adoption(self, found: list[str]) -> None:
        where = self.pins.path if self.pins else "?"
        if self.adopted:
            log.info("xdp: adopting the maps pinned in %s (%s)", where, ", ".join(found))
        elif found:
            log.warning(
                "xdp: the maps pinned in %s (%s) do not have this program's layout (an upgrade changed them, or a "
                "run died while pinning): unpinning them and starting with empty maps; addresses are answered "
                "again from the first sync", where, ", ".join(found),
            )

    def _read_entries(self) -> dict[MapKey, bytes]:
        """What the (adopted) address maps hold, markers included."""
        return {
            xdp_maps.vip_key_fields(key): xdp_maps.mac_of(value)
            for table in self._tables.values() for key, value in table.items()
        }

    @property
    def entries(self) -> dict[MapKey, bytes]:
        """(address, ifindex) -> MAC the address maps answer (without the markers)."""
        return {key: mac for key, mac in self._entries.items() if key[1] != SOMEWHERE}

    @property
    def pinned_map_ids(self) -> frozenset[int]:
        return frozenset(self.pins.map_ids().values()) if self.pins is not None else frozenset()

    def apply(self, desired: Mapping[MapKey, bytes]) -> None:
        """Make the maps answer exactly `desired` ((address, ifindex) -> MAC), changing only what differs."""
        wanted = map_entries(desired)
        upserts, deletes = diff_entries(self._entries, wanted)
        for (address, ifindex), mac in upserts.items():
            key = xdp_maps.vip_key(address, ifindex)
            if ifindex != SOMEWHERE and (address, ifindex) not in self._entries:
                # Counters first, so the program never finds an entry without its counters.
                self._counters[address.version].put(key, _ZERO_COUNTERS)
            self._tables[address.version].put(key, xdp_maps.MAC_VALUE.pack(mac))
            self._entries[(address, ifindex)] = mac
        for address, ifindex in deletes:
            key = xdp_maps.vip_key(address, ifindex)
            self._tables[address.version].delete(key)
            if ifindex != SOMEWHERE:
                self._counters[address.version].delete(key)
            del self._entries[(address, ifindex)]

    def counters(self, address: IPAddress, ifindex: int) -> AddressCounters:
        per_cpu = self._counters[address.version].per_cpu_values(xdp_maps.vip_key(address, ifindex))
        if per_cpu is None:
            return AddressCounters()
        counts = [xdp_maps.VIP_COUNTERS.unpack(value) for value in per_cpu]
        return AddressCounters(requests=sum(c[0] for c in counts), replies=sum(c[1] for c in counts))

    def verdict_counts(self) -> dict[Verdict, int]:
        counts: dict[Verdict, int] = {}
        for index, verdict in enumerate(Verdict):
            per_cpu = self._verdicts.per_cpu_values(xdp_maps.INDEX.pack(index)) or []
            counts[verdict] = sum(xdp_maps.U64.unpack(value)[0] for value in per_cpu)
        return counts

    def set_deadline(self, deadline_ns: int | None) -> None:
        if self._closed:  # the slot keeps the map's fd number, which the process may have reused since
            raise ResponderError("xdp: set_deadline() after close()")
        # 0 means "no deadline" to the program; an explicit deadline at 0 is simply in the past.
        self._deadline.write(0 if deadline_ns is None else max(int(deadline_ns), 1))

    def _set_config(self, index: int, value: int) -> None:
        self._config.put(xdp_maps.INDEX.pack(index), xdp_maps.U64.pack(value))

    def set_heartbeats(self, port: int, interfaces: Mapping[int, bytes]) -> None:
        """Reflect heartbeat requests to UDP `port` (0 = off) arriving on these ifindexes, each sent to its MAC."""
        table = self._heartbeat_ifaces
        wanted = {ifindex: bytes(mac) for ifindex, mac in interfaces.items()} if port else {}
        current = self.heartbeats()[1]
        if not wanted:  # off first, then empty the table
            self._set_config(wire.CONFIG_HEARTBEAT_PORT, 0)
        for ifindex in current.keys() - wanted.keys():
            table.delete(xdp_maps.IFINDEX.pack(ifindex))
        for ifindex, mac in wanted.items():
            if current.get(ifindex) != mac:
                table.put(xdp_maps.IFINDEX.pack(ifindex), xdp_maps.MAC_VALUE.pack(mac))
        if wanted:
            self._set_config(wire.CONFIG_HEARTBEAT_PORT, port)

    def heartbeats(self) -> tuple[int, dict[int, bytes]]:
        """(port, {ifindex: MAC}) as the maps hold them (an adopted program's: what the earlier run set)."""
        (port,) = xdp_maps.U64.unpack(self._config.get(xdp_maps.INDEX.pack(wire.CONFIG_HEARTBEAT_PORT)) or bytes(8))
        interfaces = {
            xdp_maps.IFINDEX.unpack(key)[0]: xdp_maps.mac_of(value) for key, value in self._heartbeat_ifaces.items()
        }
        return port, interfaces

    def set_flood_limit(self, limit: FloodLimit | None) -> None:
        """Limit answered requests per source (None or rate 0: off); takes effect at the next frame, buckets kept."""
        limit = limit or FloodLimit.off()
        action = XDP_DROP if limit.drops else XDP_PASS
        config = xdp_maps.FLOOD_CONFIG.pack(limit.interval_ns, limit.tolerance_ns, action)
        self._flood_config.put(xdp_maps.INDEX.pack(0), config)
        self.flood_limit = limit

    def flood_buckets(self) -> dict[bytes, int]:
        """source key (floodlimit.source_key) -> its bucket's theoretical arrival time (bpf_ktime_get_ns)."""
        return {
            floodlimit.key_bytes(*xdp_maps.FLOOD_KEY.unpack(key)): xdp_maps.U64.unpack(value)[0]
            for key, value in self._flood_buckets.items()
        }

    def set_flood_bucket(self, key: bytes, tat_ns: int) -> None:
        """Put one source's bucket in a chosen state: what tests use in place of a clock the kernel cannot be
        given (bpf_ktime_get_ns is time.monotonic_ns)."""
        if len(key) != floodlimit.KEY_LEN:
            raise ValueError(f"flood bucket key of {len(key)} bytes: must be {floodlimit.KEY_LEN}")
        if not 0 <= tat_ns < 1 << 64:
            raise ValueError(f"flood bucket time {tat_ns}: must be a CLOCK_MONOTONIC time in ns (0 <= t < 2**64)")
        packed = xdp_maps.FLOOD_KEY.pack(*floodlimit.key_fields(key))
        self._flood_buckets.put(packed, xdp_maps.U64.pack(tat_ns))

    def close(self, keep_pins: bool = False) -> None:
        """Close the fds (the kernel keeps what is still attached); unpin the maps too unless keep_pins."""
        if not self._closed:
            self._closed = True
            self._loaded.close()
            if self.pins is not None and not keep_pins:
                self.pins.clear()


# ------------------------------------------------------------------------------------------------ attachments


@dataclass(frozen=True)
class Attachment:
    interface: str
    ifindex: int
    mode_flag: int  # XDP_FLAGS_SKB_MODE or XDP_FLAGS_DRV_MODE
    prog_id: int

    @property
    def mode(self) -> str:
        return _MODE_NAMES.get(self.mode_flag, str(self.mode_flag))


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    kind: str | None  # IFLA_INFO_KIND (veth, bridge, ...); None for physical NICs


def _links(ipr: Any) -> dict[str, Link]:
    links: dict[str, Link] = {}
    for msg in ipr.get_links():
        name = msg.get_attr("IFLA_IFNAME")
        links[name] = Link(name, msg["index"], msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"))
    return links


def attached_programs(ipr: Any, ifindex: int) -> list[tuple[int, int]]:
    """[(mode flag, program id)] of the XDP programs on `ifindex`, as netlink reports them."""
    (msg,) = ipr.link("get", index=ifindex)
    xdp = msg.get_attr("IFLA_XDP")
    if xdp is None:
        return []
    mode = xdp.get_attr("IFLA_XDP_ATTACHED")
    single = {"xdp": XDP_FLAGS_DRV_MODE, "xdpgeneric": XDP_FLAGS_SKB_MODE, "xdpoffload": XDP_FLAGS_HW_MODE}
    if mode in single:
        return [(single[mode], xdp.get_attr("IFLA_XDP_PROG_ID"))]
    if mode == "xdpmulti":
        per_mode = (
            (XDP_FLAGS_DRV_MODE, "IFLA_XDP_DRV_PROG_ID"),
            (XDP_FLAGS_SKB_MODE, "IFLA_XDP_SKB_PROG_ID"),
            (XDP_FLAGS_HW_MODE, "IFLA_XDP_HW_PROG_ID"),
        )
        return [(flag, xdp.get_attr(attr)) for flag, attr in per_mode if xdp.get_attr(attr)]
    return []


def _program_name(prog_id: int) -> str:
    try:
        return bpfsys.prog_info_by_id(prog_id).name
    except OSError:
        return "?"  # unloaded between the netlink dump and now


def _set_xdp(ipr: Any, ifindex: int, fd: int, flags: int) -> None:
    ipr.link("set", index=ifindex, xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]})


_PROG_ID_LINE = re.compile(r"^prog_id:\s*(\d+)$", re.MULTILINE)


def program_holders(proc: Path = Path("/proc")) -> dict[int, int]:
    """{program id: pid of one live process holding an fd of it}. A program that is attached but held by no
    process belongs to a run that died without detaching (SIGKILL): only the attachment keeps it loaded."""
    holders: dict[int, int] = {}
    for process in proc.iterdir():
        if not process.name.isdigit():
            continue
        try:
            fds = list((process / "fd").iterdir())
        except OSError:
            continue  # exited meanwhile
        for fd in fds:
            try:
                if os.readlink(fd) != "anon_inode:bpf-prog":
                    continue
                match = _PROG_ID_LINE.search((process / "fdinfo" / fd.name).read_text())
            except OSError:
                continue  # closed meanwhile
            if match:
                holders.setdefault(int(match.group(1)), int(process.name))
    return holders


def attached_named(ipr: Any, links: Iterable[Link], name: str) -> list[tuple[Link, int, int]]:
    """[(link, mode flag, program id)] of the programs called `name` attached to `links`."""
    from pyroute2.netlink.exceptions import NetlinkError

    found: list[tuple[Link, int, int]] = []
    for link in links:
        try:
            attached = attached_programs(ipr, link.index)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                continue  # deleted since the link dump
            raise
        found += [(link, flag, i) for flag, i in attached if _program_name(i) == name]
    return found


def using_maps(found: Iterable[tuple[Link, int, int]], map_ids: Collection[int]) -> list[tuple[Link, int, int]]:
    """Those of `found` whose program uses one of `map_ids` (the pinned maps a new run adopts)."""
    adoptable = []
    for link, flag, prog_id in found:
        try:
            uses = bpfsys.prog_map_ids(prog_id)
        except OSError:
            continue  # unloaded meanwhile
        if set(uses) & set(map_ids):
            adoptable.append((link, flag, prog_id))
    return adoptable


def remove_stale(
    ipr: Any, links: Iterable[Link], name: str, keep_prog_id: int | None = None, adopt: Collection[int] = ()
) -> list[int]:
    """Detach programs called `name` that no live process holds (an earlier run of ours that died without
    detaching) from `links`; a live run's program, the programs in `adopt` (a run whose pinned maps this one
    adopts: replaced in place by attach(), never detached first) and every program of another name stay.
    Ids detached."""
    candidates = [(link, flag, i) for link, flag, i in attached_named(ipr, links, name)
                  if i != keep_prog_id and i not in adopt]
    if not candidates:
        return []  # the /proc scan only when there is something to decide
    holders = program_holders()
    removed: list[int] = []
    for link, flag, prog_id in candidates:
        mode = _MODE_NAMES.get(flag, flag)
        if prog_id in holders:
            log.info("xdp: leaving %s (prog id %d, %s) on %s: live process %d holds it",
                     name, prog_id, mode, link.name, holders[prog_id])
            continue
        log.warning("xdp: removing stale %s (prog id %d, %s) from %s", name, prog_id, mode, link.name)
        _set_xdp(ipr, link.index, -1, flag)
        removed.append(prog_id)
    return removed


def replace(ipr: Any, link: Link, fd: int, prog_id: int, flag: int, old_id: int, name: str) -> Attachment:
    """Put program `fd` where program `old_id` is attached (mode `flag`) in one netlink call: XDP_FLAGS_REPLACE
    with the old program as IFLA_XDP_EXPECTED_FD, or, where the kernel or driver refuses that, a plain replace.
    Either way the interface is never without a program."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        expected = bpfsys.prog_fd_by_id(old_id)
    except OSError as exc:
        raise KernelRefused.wrapping(f"xdp: program {old_id} on {link.name} vanished while being adopted", exc) from exc
    try:
        attrs = [("IFLA_XDP_FD", fd), ("IFLA_XDP_EXPECTED_FD", expected), ("IFLA_XDP_FLAGS", flag | XDP_FLAGS_REPLACE)]
        try:
            ipr.link("set", index=link.index, xdp={"attrs": attrs})
        except NetlinkError as exc:
            if exc.code in (errno.EEXIST, errno.EBUSY):  # another program than the expected one is there now
                raise ResponderError(
                    f"xdp: interface {link.name} changed while replacing program {old_id}: {os.strerror(exc.code)}"
                ) from exc
            if exc.code not in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP, errno.ERANGE):
                raise
            log.info("xdp: %s refuses XDP_FLAGS_REPLACE (%s); replacing program %d without the check",
                     link.name, os.strerror(exc.code) if exc.code != ENOTSUPP else "ENOTSUPP", old_id)
            _set_xdp(ipr, link.index, fd, flag)
    finally:
        os.close(expected)
    log.info("xdp: %s (prog id %d) replaced prog id %d on %s in place (%s mode)",
             name, prog_id, old_id, link.name, _MODE_NAMES.get(flag, flag))
    return Attachment(link.name, link.index, flag, prog_id)


def attach(
    ipr: Any, link: Link, fd: int, prog_id: int, name: str, mode: str, adopt: Collection[int] = ()
) -> Attachment:
    """Attach program `fd` to `link` in the first mode of attach_order that the driver accepts; never replaces
    a program that is not ours. A program in `adopt` (an earlier run's, using the maps this one adopted) is
    replaced in place, in its own mode when this run may use that mode."""
    from pyroute2.netlink.exceptions import NetlinkError

    remove_stale(ipr, [link], name, keep_prog_id=prog_id, adopt=adopt)
    for flag, attached_id in attached_programs(ipr, link.index):
        if attached_id == prog_id:
            return Attachment(link.name, link.index, flag, prog_id)
        if attached_id in adopt:
            if flag in attach_order(mode, link.kind):
                return replace(ipr, link, fd, prog_id, flag, attached_id, name)
            log.warning("xdp: %s on %s runs in %s mode, this run's is %s: detaching it first (not hitless)",
                        name, link.name, _MODE_NAMES.get(flag, flag), mode)
            _set_xdp(ipr, link.index, -1, flag)
    failures: list[str] = []
    for flag in attach_order(mode, link.kind):
        try:
            _set_xdp(ipr, link.index, fd, flag | XDP_FLAGS_UPDATE_IF_NOEXIST)
        except NetlinkError as exc:
            if exc.code in (errno.EEXIST, errno.EBUSY):
                others = ", ".join(f"{_program_name(i)} (id {i})" for _, i in attached_programs(ipr, link.index))
                raise ResponderError(
                    f"xdp: interface {link.name} already runs another XDP program: {others or 'unknown'}; "
                    "detach it or choose another backend"
                ) from exc
            failure = f"{_MODE_NAMES[flag]}: {os.strerror(exc.code) if exc.code != ENOTSUPP else 'not supported'}"
            if mode == "native" and exc.code in (errno.EOPNOTSUPP, ENOTSUPP):
                failure += f" (the driver of {link.name} has no native XDP: attach mode generic, or auto, works on any"
                failure += " interface)"
            failures.append(failure)
            continue
        log.info("xdp: %s attached to %s (%s mode)", name, link.name, _MODE_NAMES[flag])
        return Attachment(link.name, link.index, flag, prog_id)
    raise ResponderError(f"xdp: cannot attach to interface {link.name}: {'; '.join(failures)}")


def detach(ipr: Any, attachment: Attachment) -> None:
    """Detach our program if it is still the one attached (the interface may have gone meanwhile)."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        present = attached_programs(ipr, attachment.ifindex)
        if (attachment.mode_flag, attachment.prog_id) in present:
            _set_xdp(ipr, attachment.ifindex, -1, attachment.mode_flag)
    except NetlinkError as exc:  # not an OSError, but the kernel refusing all the same
        if exc.code != errno.ENODEV:
            raise KernelRefused(
                f"xdp: cannot detach from {attachment.interface} (ifindex {attachment.ifindex}): "
                f"{os.strerror(exc.code)}", exc.code
            ) from exc


def _open_ipr(netns: str | None = None) -> Any:
    try:
        from pyroute2 import IPRoute
    except ImportError as exc:
        raise ResponderError(f"xdp: pyroute2 is not importable ({exc})") from None
    if netns is None:
        return IPRoute()
    # Not IPRoute(netns=...): that forks a helper, which inherits the parent's signal handlers and state.
    with in_netns(netns):
        return IPRoute()


# -------------------------------------------------------------------------------------------------- responder


class XdpResponder(SyncingResponder):
    """Answers ARP/NDP in XDP on the interfaces that appear in `owned` (and those given here).

    Lives in the network namespace of the thread that creates it: its netlink and packet sockets are opened
    there, so interface names resolve there whichever thread calls it later.

    `pin_dir` (e.g. pinning.default_pin_dir(node name); one directory per responder, never shared by two live
    ones): pin the maps there and adopt those an earlier run left (see the module docstring). Until the first
    sync() an adopting responder answers what the earlier run last synced, under the deadline it last set.
    """

    backend = "xdp"
    who = "xdp"

    def __init__(
        self, interfaces: Iterable[str] = (), *, mode: str = "auto", max_vips: int = DEFAULT_MAX_VIPS,
        pin_dir: str | os.PathLike[str] | None = None, flood_limit: FloodLimit | None = None,
    ) -> None:
        attach_order(mode, None)  # validates the mode before the 1 s compile
        super().__init__(interfaces)
        self._mode = mode
        self._attached: dict[str, Attachment] = {}
        self._counted: dict[OwnedKey, int] = {}  # owned key -> ifindex, what stats() reads (see _apply)
        self._adopt: frozenset[int] = frozenset()  # the earlier run's program ids, replaced in place
        self._program = XdpProgram(max_vips=max_vips, pin_dir=pin_dir)
        self._program.set_flood_limit(flood_limit)  # before the program is attached anywhere
        try:
            self._ipr = _open_ipr()
        except BaseException:
            self._program.close(keep_pins=self._program.adopted)
            raise
        # Protocol 0: this socket only sends (sendto resolves the interface name in its own namespace).
        self._packet_socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        atexit.register(self.close)
        try:
            links = _links(self._ipr)
            owned = self._adopt_earlier_run(links) if self._program.adopted else {}
            if self._program.adopted:
                self._heartbeat = self._adopted_heartbeats(links)
            # Every link, not only ours: a killed run may have attached where this one never will.
            remove_stale(self._ipr, links.values(), FUNCTION_NAME, keep_prog_id=self._program.prog_id,
                         adopt=self._adopt)
            try:
                ownership.check_served(self.backend, self._apply(owned))
            except ownership.InterfacesUnavailable as exc:
                if set(exc.failures) & set(self._fixed):
                    raise
                log.warning("xdp: not taking over every adopted address: %s", exc)
        except BaseException:
            # A run that adopted leaves things as it found them, for the next attempt to adopt in turn.
            self.close(keep_serving=self._program.adopted)
            raise

    def _adopt_earlier_run(self, links: Mapping[str, Link]) -> dict[OwnedKey, bytes]:
        """Take over the earlier run's attachments (replaced by ours at the first _apply) and return the
        owned table its maps hold, for the interfaces that still exist."""
        found = using_maps(attached_named(self._ipr, links.values(), FUNCTION_NAME), self._program.pinned_map_ids)
        holders = program_holders() if found else {}
        for link, flag, prog_id in found:
            if prog_id in holders:
                log.warning("xdp: adopting %s (prog id %d) on %s although live process %d holds it: two responders "
                            "use pin directory %s", FUNCTION_NAME, prog_id, link.name, holders[prog_id],
                            self._program.pins.path if self._program.pins else "?")
            self._attached[link.name] = Attachment(link.name, link.index, flag, prog_id)
        self._adopt = frozenset(prog_id for _, _, prog_id in found)
        names = {link.index: name for name, link in links.items()}
        owned = {(address, names[ifindex]): mac for (address, ifindex), mac in self._program.entries.items()
                 if ifindex in names}
        log.info("xdp: adopted %d address entries and the programs on %s", len(owned),
                 ", ".join(sorted(self._attached)) or "no interface")
        return owned

    def _adopted_heartbeats(self, links: Mapping[str, Link]) -> tuple[int, tuple[str, ...]]:
        """The earlier run's serve_heartbeats setting, for the interfaces that still exist."""
        port, interfaces = self._program.heartbeats()
        names = tuple(sorted(name for name, link in links.items() if link.index in interfaces))
        return (port, names) if port and names else (0, ())

    @property
    def attachments(self) -> dict[str, Attachment]:
        return dict(self._attached)

    def _apply(self, owned: Owned) -> dict[str, str]:
        port, beating = self._heartbeat  # served whether or not they own an address
        names = sorted(self._wanted(owned))
        links = self._links_for(names)
        # Attach first, then program the maps, then detach: an address that stays is answered throughout.
        # An interface that is gone or refuses us holds back only its own entries (ownership.servable).
        _, failures = ownership.prepare(names, lambda name: self._attach(name, links))
        served = ownership.servable(owned, failures)
        self._program.apply({(address, links[name].index): mac for (address, name), mac in served.items()})
        self._owned = served
        # What stats() reads, replaced whole (never edited): a scrape during a sync sees one table or the other.
        self._counted = {(address, name): links[name].index for address, name in served}
        macs: dict[int, bytes] = {}
        for name in beating:
            if name not in failures:
                with contextlib.suppress(ResponderError):  # gone since the attach: it reflects nothing
                    mac = ownership.interface_mac(name, self.backend, self._packet_socket, ethernet_only=True)
                    if mac is not None:  # a link without an Ethernet address (tun, wireguard) reflects nothing
                        macs[links[name].index] = mac
        self._program.set_heartbeats(port, macs)
        for name in sorted(self._attached.keys() - {n for n in names if n not in failures}):
            detach(self._ipr, self._attached.pop(name))
        return failures

    def _links_for(self, names: Iterable[str]) -> Mapping[str, Link]:
        """The links a sync reads. While every wanted interface carries this run's program under the same index
        (one ioctl each, on our own socket, so in our namespace), no netlink dump: on a node with hundreds of pod
        links pyroute2 spends milliseconds on one, and most syncs only change which addresses are answered."""
        known: dict[str, Link] = {}
        for name in names:
            current = self._attached.get(name)
            if (current is None or current.prog_id != self._program.prog_id
                    or ownership.index_in(self._packet_socket, name) != current.ifindex):
                return _links(self._ipr)  # something to attach, or a link that changed: read them all
            known[name] = Link(name, current.ifindex, None)  # the kind only matters to an attach
        return known

    def _attach(self, name: str, links: Mapping[str, Link]) -> Attachment:
        """Our program on interface `name` (already there, or attached now), or ResponderError naming it."""
        from pyroute2.netlink.exceptions import NetlinkError

        link = links.get(name)
        if link is None:
            raise ownership.missing_interface(name, self.backend)
        current = self._attached.get(name)
        if current is not None and current.ifindex == link.index and current.prog_id == self._program.prog_id:
            return current
        try:
            attachment = attach(self._ipr, link, self._program.fd, self._program.prog_id, FUNCTION_NAME, self._mode,
                                adopt=self._adopt)
        except NetlinkError as exc:  # deleted between the link dump and now
            raise KernelRefused(f"xdp: cannot attach to interface {name}: {os.strerror(exc.code)}", exc.code) from exc
        if current is not None:  # the name now belongs to a new link; the old one may still exist, renamed
            detach(self._ipr, current)
        self._attached[name] = attachment
        return attachment

    def stats(self) -> ResponderStats:
        counted = self._counted  # read once (see _apply)
        per_address = {key: self._program.counters(key[0], ifindex) for key, ifindex in counted.items()}
        return ownership.stats(self.backend, counted, per_address, self._program.verdict_counts())

    def announce(self, address: IPAddress, interface: str) -> None:
        for frame in ownership.announcement(self._owned, address, interface, self.backend):
            try:
                self._packet_socket.sendto(frame, (interface, 0))
            except OSError as exc:
                raise KernelRefused.wrapping(f"xdp: announcing {address} on {interface}", exc) from exc

    def set_liveness_deadline(self, deadline_ns: int | None) -> None:
        self._program.set_deadline(deadline_ns)

    def set_flood_limit(self, limit: FloodLimit | None) -> None:
        """Change the per-source flood limit (None: off) without reloading; the buckets are kept."""
        self._program.set_flood_limit(limit)

    @property
    def flood_limit(self) -> FloodLimit:
        return self._program.flood_limit

    def close(self, keep_serving: bool = False) -> None:
        """Detach and unpin; with keep_serving (and a pin directory) leave the programs attached and the maps
        pinned instead: the kernel answers the last synced addresses until the last liveness deadline, and the
        next responder given the same pin directory adopts them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self.close)
            pins = self._program.pins
            keep = keep_serving and pins is not None
            if keep_serving and pins is None:
                log.warning("xdp: keep_serving needs a pin directory (nothing could adopt the maps): detaching")
            try:
                if keep:
                    log.info("xdp: leaving %s attached to %s, maps pinned in %s: answered until the liveness "
                             "deadline unless a new run adopts them", FUNCTION_NAME,
                             ", ".join(sorted(self._attached)) or "no interface", pins.path if pins else "?")
                for name in [] if keep else sorted(self._attached):
                    try:
                        detach(self._ipr, self._attached.pop(name))
                    except Exception:
                        log.exception("xdp: could not detach from %s", name)
            finally:
                self._packet_socket.close()
                self._ipr.close()
                self._program.close(keep_pins=keep)


class XdpPassProgram:
    """`return XDP_PASS`, attached natively to an interface (typically a veth peer in another namespace).

    Native XDP_TX on a veth is delivered only when the peer runs a native XDP program; this is that program.
    Detached by close() (also at exit).
    """

    def __init__(self, interface: str, *, netns: str | None = None) -> None:
        self._ipr = _open_ipr(netns)
        self._fd = -1
        self._attachment: Attachment | None = None
        try:
            links = _links(self._ipr)
            if interface not in links:
                where = f"network namespace {netns}" if netns else "this network namespace"
                raise ResponderError(f"xdp: no interface {interface} in {where}")
            self._fd = bpfsys.load_xdp_pass(PASS_PROGRAM_NAME)
            prog_id = bpfsys.prog_info_by_fd(self._fd).id
            self._attachment = attach(self._ipr, links[interface], self._fd, prog_id, PASS_PROGRAM_NAME, "native")
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    def close(self) -> None:
        atexit.unregister(self.close)
        if self._attachment is not None:
            attachment, self._attachment = self._attachment, None
            detach(self._ipr, attachment)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def __enter__(self) -> XdpPassProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
