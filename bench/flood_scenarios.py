"""What bench/arp_flood.py floods with and how it reads the figures: frames, CPU arithmetic, RTT summaries, the
overload steps and the issue's targets. Pure: values in, values out (the workers and the driver do the I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from metallb_fast.dataplane import packets

KINDS = ("arp", "ndp", "mixed")
FLOOD_SOURCES = 64  # distinct (MAC, IP) senders of the capacity floods
ATTACKER_SOURCES = (1, 1000)  # the legitimate-client part: one flooding MAC, then a thousand
SOURCE_BASE = 32  # IPv4 senders .32 .. .95 of the lab LAN: clear of nodes (.10+), clients (.100+), VIPs (.200+)
V6_SOURCE_BASE = 0x1000  # IPv6 senders 2001:db8::1000 + i: clear of ::10+, ::100+, ::200+
MIXED_UNOWNED = 9  # of every 10 requests in the mixed flood, for addresses nobody here owns (a busy LAN)
UNOWNED_BASE = 30  # those addresses: lab.vip_v4(30 + j), which the bench never gives anyone
OVERLOAD_FRACTIONS = (0.25, 0.5, 1.0, 2.0)  # offered load, as a share of the responder's measured capacity
# The peak search of the userspace responders: paced ARP floods at these rates. A responder that falls into
# receive livelock under the full-rate flood answers far less there than it can (the Go responder: 0.1 % of a
# 1.1 M/s flood answered, where paced it answers ~100k/s), so its capacity figure is not its peak: comparing
# responders by peak is comparing what each can do.
PEAK_RATES = (25_000.0, 50_000.0, 100_000.0, 200_000.0, 400_000.0)
PEAK_SEARCHED = frozenset({"ring", "python", "go"})
NO_FLOOD_RESPONDERS = frozenset({"sender-only"})  # what answers nothing: no replies, no targets


def source_mac(i: int) -> bytes:
    """The flood's i-th sender MAC (locally administered, 02:66:6c:...: "fl"), up to 65,536 of them."""
    if not 0 <= i < 1 << 16:
        raise ValueError(f"source {i}: the flood has at most 65,536 sender MACs")
    return bytes((0x02, 0x66, 0x6C, 0x00, i >> 8, i & 0xFF))


def flood_frames(
    kind: str, sources: int, vip4: IPv4Address, vip6: IPv6Address, lan4: IPv4Network, lan6: IPv6Network
) -> list[bytes]:
    """The frames one flood cycles over: `sources` sender MACs asking for the VIP (arp: who-has; ndp: Neighbor
    Solicitation to the solicited-node group; mixed: ARP where 9 in 10 requests ask for unowned addresses).

    IPv4 sender addresses repeat every 64 sources (the lab LAN has no room for a thousand); the MACs never do."""
    if kind not in KINDS:
        raise ValueError(f"flood kind {kind!r}: choose from {', '.join(KINDS)}")
    if sources < 1:
        raise ValueError(f"flood of {sources} sources: need at least one")
    if kind == "ndp":
        base6 = lan6.network_address + V6_SOURCE_BASE
        return [packets.neighbor_solicitation(source_mac(i), base6 + i, vip6) for i in range(sources)]
    senders = [(source_mac(i), lan4.network_address + SOURCE_BASE + i % FLOOD_SOURCES) for i in range(sources)]
    if kind == "arp":
        return [packets.arp_request(mac, ip, vip4) for mac, ip in senders]
    unowned = unowned_addresses(vip4)
    frames = []
    for i in range(sources * (MIXED_UNOWNED + 1)):  # every sender asks for every target once per cycle
        mac, ip = senders[i % sources]
        slot = i % (MIXED_UNOWNED + 1)
        frames.append(packets.arp_request(mac, ip, vip4 if slot == 0 else unowned[slot - 1]))
    return frames


def unowned_addresses(vip4: IPv4Address) -> list[IPv4Address]:
    """The addresses the mixed flood asks for that no responder owns."""
    return [vip4 + UNOWNED_BASE + j for j in range(MIXED_UNOWNED)]


def owned_share(kind: str) -> float:
    """The share of a flood's requests a responder should answer."""
    return 1.0 / (MIXED_UNOWNED + 1) if kind == "mixed" else 1.0


# ------------------------------------------------------------------------------------------------ CPU


@dataclass(frozen=True)
class CpuTicks:
    """One CPU's counters from /proc/stat, in USER_HZ ticks."""

    busy: int  # user + nice + system + irq + softirq: work done on this core (guest time is inside user)
    total: int  # busy + idle + iowait (steal left out: time the hypervisor took is nobody's work here)


def parse_cpu_ticks(proc_stat: str, cpu: int) -> CpuTicks:
    """The `cpuN` line of /proc/stat."""
    name = f"cpu{cpu}"
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            user, nice, system, idle, iowait, irq, softirq = (int(v) for v in fields[1:8])
            busy = user + nice + system + irq + softirq
            return CpuTicks(busy=busy, total=busy + idle + iowait)
    raise ValueError(f"/proc/stat has no {name} line (is CPU {cpu} online?)")


def parse_process_ticks(pid_stat: str) -> int:
    """utime + stime (every thread of the process, in ticks) from /proc/PID/stat; comm may hold spaces and ')'."""
    fields = pid_stat[pid_stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted from state (field 3)


# ------------------------------------------------------------------------------------------------ RTT


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty sample: always a value that was measured."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class ProbeSummary:
    """The legitimate client's view of one flood: requests sent one at a time, each answered or timed out."""

    sent: int
    answered: int
    refused: int  # sends the client's own interface refused (the node's receive ring full: pushback)
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @property
    def answered_share(self) -> float:
        return self.answered / self.sent if self.sent else 0.0

    @classmethod
    def of(cls, rtts_s: Iterable[float | None], refused: int = 0) -> ProbeSummary:
        """From one RTT per request (None: no reply within the timeout)."""
        samples = list(rtts_s)
        got = [1000 * r for r in samples if r is not None]
        return cls(
            sent=len(samples),
            answered=len(got),
            refused=refused,
            p50_ms=percentile(got, 50) if got else None,
            p99_ms=percentile(got, 99) if got else None,
            max_ms=max(got) if got else None,
        )


# ------------------------------------------------------------------------------------------------ one flood


@dataclass(frozen=True)
class Run:
    """One flood against one responder, as measured from the client (sender, counters) and /proc."""

    responder: str
    part: str  # "capacity" (full rate, every kind), "overload" (a share of capacity), "peak" (paced at PEAK_RATES),
    # "legit" (with the prober)
    kind: str
    sources: int
    protection: str  # "off", or what the per-source flood limit does over the limit ("pass" / "drop")
    load_fraction: float | None  # overload: the share of capacity asked for; else None (as fast as possible)
    rate_pps: float  # the rate asked of the sender (0 = as fast as possible)
    sent: int = 0  # frames the node's veth took
    dropped: int = 0  # frames refused because the node's receive ring was full, not retried: lost as on a wire
    pushbacks: int = 0  # sendmmsg calls the veth refused (receiver ring full): the node pushing back
    elapsed_s: float = 0.0
    replies: int = 0  # counted on the client's veth
    delivered: int = 0  # requests that reached the node's veth
    window_s: float = 0.0  # flood + drain: the span the CPU counters cover
    core: CpuTicks | None = None  # the responder core's ticks over the window
    sender_core: CpuTicks | None = None
    process_ticks: int | None = None  # the responder process's utime + stime over the window (None: no process)
    napi_ticks: int | None = None  # the node's NAPI kernel thread's (receive path, XDP, kernel ARP) over the window
    hz: int = 100
    probe: ProbeSummary | None = None
    error: str | None = None

    @property
    def offered(self) -> int:
        """Requests the flood put on the wire: taken by the node, or lost at its full receive ring."""
        return self.sent + self.dropped

    @property
    def offered_per_s(self) -> float:
        return self.offered / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def lost(self) -> float:
        """The share of the offered requests the node's full receive ring refused."""
        return self.dropped / self.offered if self.offered else 0.0

    @property
    def replies_per_s(self) -> float:
        return self.replies / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def answered(self) -> float:
        """Replies per offered request that should have been answered (lost ones included)."""
        expected = self.offered * owned_share(self.kind)
        return self.replies / expected if expected else 0.0

    @property
    def core_busy(self) -> float | None:
        return self.core.busy / self.core.total if self.core and self.core.total else None

    @property
    def core_ns_per_reply(self) -> float | None:
        """The responder core's busy time (/proc/stat) per reply: everything that core did, including other work
        scheduled there (see the idle baseline in the report)."""
        return self.core.busy * 1e9 / self.hz / self.replies if self.core is not None and self.replies else None

    @property
    def ns_per_reply(self) -> float | None:
        """The responder's own CPU per reply: the node's NAPI thread (receive path, XDP, the kernel's ARP/NDP)
        plus the responder process; without the NAPI thread's figure, the whole core's (core_ns_per_reply).

        Per task rather than per core so that other work on a shared machine does not count."""
        if self.napi_ticks is None:
            return self.core_ns_per_reply
        if not self.replies:
            return None
        return (self.napi_ticks + (self.process_ticks or 0)) * 1e9 / self.hz / self.replies

    @property
    def ns_per_request(self) -> float | None:
        """The same CPU (NAPI thread + process) per request that reached the node: for sender-only, whose sink
        drops every frame in XDP, the floor the veth's own receive path costs before any responder runs."""
        if self.napi_ticks is None or not self.delivered:
            return None
        return (self.napi_ticks + (self.process_ticks or 0)) * 1e9 / self.hz / self.delivered

    @property
    def ceiling_per_s(self) -> float | None:
        """Replies/s one core would give at this cost, fully busy: the responder's own ceiling when sender-bound."""
        cost = self.ns_per_reply
        return 1e9 / cost if cost else None

    @property
    def process_cpu(self) -> float | None:
        """The responder process's CPU (user + system) as a share of one core over the window."""
        if self.process_ticks is None or not self.window_s:
            return None
        return self.process_ticks / self.hz / self.window_s


def overload_rates(capacity_per_s: float) -> list[float]:
    """The offered loads (requests/s) of the overload curve."""
    return [fraction * capacity_per_s for fraction in OVERLOAD_FRACTIONS]


def capacity(runs: Sequence[Run], responder: str) -> float | None:
    """A responder's replies/s under the full-rate ARP flood of the capacity part."""
    for run in runs:
        if (run.responder, run.part, run.kind, run.error) == (responder, "capacity", "arp", None):
            return run.replies_per_s
    return None


def peak(runs: Sequence[Run], responder: str) -> float | None:
    """The best replies/s a responder gave to an unprotected ARP flood from FLOOD_SOURCES senders, full-rate or
    paced."""
    seen = [
        r.replies_per_s
        for r in runs
        if r.responder == responder
        and r.error is None
        and r.kind == "arp"
        and r.part in ("capacity", "overload", "peak")
    ]
    return max(seen) if seen else None


def find(runs: Sequence[Run], responder: str, part: str, **match: object) -> Run | None:
    """The first error-free run of `responder` in `part` whose fields equal `match`."""
    for run in runs:
        if (
            run.responder == responder
            and run.part == part
            and run.error is None
            and all(getattr(run, name) == value for name, value in match.items())
        ):
            return run
    return None


# ------------------------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run (a responder left out or failed)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "not measured"}[self.met]


def _ratio_target(goal: str, numerator: float | None, denominator: float | None, floor: float, what: str) -> Target:
    if not numerator or not denominator:
        return Target(goal, "-", None)
    ratio = numerator / denominator
    return Target(goal, f"{ratio:.2f}x ({what})", ratio >= floor)


def evaluate_targets(runs: Sequence[Run], xdp: str = "xdp-native") -> list[Target]:
    """Issue 11's targets, each with the figure this run measured."""
    targets = [
        _ratio_target(
            "ring >= 2x Go replies/s (peak vs peak)",
            peak(runs, "ring"),
            peak(runs, "go"),
            2.0,
            f"{_count(peak(runs, 'ring'))} vs {_count(peak(runs, 'go'))} replies/s",
        ),
    ]
    at_capacity = find(runs, "ring", "overload", load_fraction=1.0)
    targets.append(
        Target(
            "ring >= 95 % answered at its capacity",
            f"{100 * at_capacity.answered:.1f} % at {_count(at_capacity.offered_per_s)} offered/s"
            if at_capacity
            else "-",
            at_capacity.answered >= 0.95 if at_capacity else None,
        )
    )
    doubled, ring_peak = find(runs, "ring", "overload", load_fraction=2.0), peak(runs, "ring")
    if doubled and ring_peak:
        share = doubled.replies_per_s / ring_peak
        offered = doubled.offered_per_s / (capacity(runs, "ring") or doubled.offered_per_s)
        targets.append(
            Target(
                "ring at 2x capacity >= 90 % of its peak replies/s",
                f"{100 * share:.0f} % of {_count(ring_peak)} (offered {offered:.2f}x capacity)",
                share >= 0.9,
            )
        )
    else:
        targets.append(Target("ring at 2x capacity >= 90 % of its peak replies/s", "-", None))
    xdp_run, floor = find(runs, xdp, "capacity", kind="arp"), find(runs, "sender-only", "capacity", kind="arp")
    xdp_cost = xdp_run.ns_per_reply if xdp_run else None
    floor_cost = floor.ns_per_request if floor else None
    targets.append(
        Target(
            f"{xdp} responder-core cost <= 0.25 us/reply",
            f"{xdp_cost / 1000:.3f} us/reply (whole core: {_count(xdp_run.core_ns_per_reply)} ns; of which the "
            f"veth's own receive path, sender-only's sink: {_count(floor_cost)} ns/frame)"
            if xdp_run and xdp_cost
            else "-",
            xdp_cost <= 250 if xdp_cost else None,
        )
    )
    for other, factor in (("kernel", 5.0), ("go", 20.0)):
        other_run = find(runs, other, "capacity", kind="arp")
        other_cost = other_run.ns_per_reply if other_run else None
        targets.append(
            _ratio_target(
                f"{xdp} >= {factor:g}x cheaper per reply than {other}",
                other_cost,
                xdp_cost,
                factor,
                f"{_count(other_cost)} vs {_count(xdp_cost)} ns/reply",
            )
        )
    protected = sorted({(r.responder, r.protection) for r in runs if r.part == "legit" and r.protection != "off"})
    for responder, action in protected:
        legit = find(runs, responder, "legit", protection=action, sources=1)
        probe = legit.probe if legit else None
        targets.append(
            Target(
                f"{responder}, limit on ({action}): a legitimate client >= 99 % answered, p99 <= 1 ms "
                "while one MAC floods",
                f"{100 * probe.answered_share:.1f} %, p99 {_ms(probe.p99_ms)} ms" if probe else "-",
                (probe.answered_share >= 0.99 and probe.p99_ms is not None and probe.p99_ms <= 1.0) if probe else None,
            )
        )
    xdp_cpu = [r.process_cpu for r in runs if r.responder.startswith("xdp") and r.process_cpu is not None]
    targets.append(
        Target(
            "XDP userspace CPU ~0 during every flood (<= 1 % of a core)",
            f"max {100 * max(xdp_cpu):.2f} % of a core over {len(xdp_cpu)} floods" if xdp_cpu else "-",
            max(xdp_cpu) <= 0.01 if xdp_cpu else None,
        )
    )
    return targets


def _count(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "-"


def _ms(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


# ------------------------------------------------------------------------------------------------ the plan

PROTECTABLE = frozenset({"xdp-native", "xdp-generic", "ring", "python"})  # take a per-source flood limit
# Where the limit's action matters: XDP passes an over-limit frame to the kernel or drops it; AF_PACKET backends
# (ring, python) read copies of what the kernel receives anyway, so for them both actions mean "not answered".
ACTION_MATTERS = frozenset({"xdp-native", "xdp-generic"})
ARP_ONLY = frozenset({"go"})  # goarp is MetalLB's ARP path only (its NDP responder is another program)
PARTS = ("capacity", "overload", "peak", "legit")


def protections(responder: str, parts: Sequence[str], actions: Sequence[str]) -> list[str]:
    """The sessions one responder runs: unprotected ("off"), then once per flood-limit action that matters."""
    if "legit" not in parts or responder not in PROTECTABLE or not actions:
        return ["off"]
    return ["off", *(actions if responder in ACTION_MATTERS else actions[:1])]


def planned_runs(responder: str, parts: Sequence[str], protection: str) -> list[Run]:
    """The floods of one responder session, in order (overload rates are filled in from the capacity run)."""
    if protection != "off":
        return [Run(responder, "legit", "arp", n, protection, None, 0.0) for n in ATTACKER_SOURCES]
    answers = responder not in NO_FLOOD_RESPONDERS
    kinds = [k for k in KINDS if not (responder in ARP_ONLY and k == "ndp")]
    if "capacity" not in parts:
        kinds = ["arp"] if answers and "overload" in parts else []  # the curve is a share of this one
    runs = [Run(responder, "capacity", kind, FLOOD_SOURCES, "off", None, 0.0) for kind in kinds]
    if answers and "overload" in parts:
        runs += [Run(responder, "overload", "arp", FLOOD_SOURCES, "off", f, 0.0) for f in OVERLOAD_FRACTIONS]
    if responder in PEAK_SEARCHED and "peak" in parts:
        runs += [Run(responder, "peak", "arp", FLOOD_SOURCES, "off", None, rate) for rate in PEAK_RATES]
    if answers and "legit" in parts:
        runs += [Run(responder, "legit", "arp", n, "off", None, 0.0) for n in ATTACKER_SOURCES]
    return runs
