"""memberlist's timers as one value, the named presets we run with, and the formulas that derive from them.

Every duration is in seconds (float). The formulas mirror hashicorp/memberlist (util.go `suspicionTimeout`,
`retransmitLimit`, `pushPullScale`; suspicion.go `remainingSuspicionTime`) so that our speakers and MetalLB's Go
speakers agree on how long a suspicion lasts and how far a broadcast travels.

Crash -> dead on every survivor (research/memberlist.md section 3), with N the number of known nodes:

    T = T_probe + probe_interval + suspicion + one gossip hop

where T_probe is the wait until some survivor's round-robin reaches the victim (each survivor probes one node per
probe_interval), probe_interval is the probe's deadline, suspicion is `suspicion_timeout(timing, N)[0]` when no
confirmations are expected (N - 2 < suspicion_mult - 2) or when enough survivors confirm in time (Lifeguard), and a
gossip hop is at most gossip_interval (plus latency) for the survivors that did not time out themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

# Above this many nodes memberlist stretches the push-pull interval (util.go pushPullScaleThreshold).
PUSH_PULL_SCALE_THRESHOLD = 32


@dataclass(frozen=True)
class Timing:
    """The memberlist Config fields the protocol's behaviour depends on (MetalLB's config.json names them too)."""

    probe_interval: float = 1.0  # ProbeInterval: one probe per interval, round-robin; also a probe's deadline
    probe_timeout: float = 0.5  # ProbeTimeout: wait for a direct ack before indirect pings (and relay nack delay)
    indirect_checks: int = 3  # IndirectChecks: peers asked to ping a silent node for us
    suspicion_mult: int = 4  # SuspicionMult: suspicion = mult * max(1, log10 N) * probe_interval
    suspicion_max_timeout_mult: int = 6  # SuspicionMaxTimeoutMult: the unconfirmed upper bound, times the minimum
    retransmit_mult: int = 4  # RetransmitMult: each broadcast is sent mult * ceil(log10(N + 1)) times
    gossip_interval: float = 0.2  # GossipInterval
    gossip_nodes: int = 3  # GossipNodes: random peers per gossip round
    gossip_to_the_dead: float = 30.0  # GossipToTheDeadTime: dead nodes still get gossip (and stay listed) this long
    push_pull_interval: float = 30.0  # PushPullInterval: full state exchange with one random peer (TCP)
    awareness_max_multiplier: int = 8  # AwarenessMaxMultiplier: Lifeguard's cap on the probe deadline stretch
    tcp_timeout: float = 10.0  # TCPTimeout: stream dial/read deadline (used by the I/O)
    dead_node_reclaim: float = 0.0  # DeadNodeReclaimTime: 0 = a dead name's address can never change
    disable_tcp_pings: bool = False  # DisableTcpPings: no TCP fallback ping during a failed probe
    udp_buffer_size: int = 1400  # UDPBufferSize: the packet budget that piggybacked gossip must fit in

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                continue
            if value < 0 or (value == 0 and item.name not in _MAY_BE_ZERO):
                allowed = ">= 0" if item.name in _MAY_BE_ZERO else "> 0"
                raise ValueError(f"Timing.{item.name} is {value!r}; it must be {allowed}")
        if self.probe_timeout > self.probe_interval:
            raise ValueError(
                f"Timing.probe_timeout ({self.probe_timeout}s) is longer than probe_interval ({self.probe_interval}s): "
                "a probe's indirect phase would start after its deadline; make probe_timeout <= probe_interval"
            )


_MAY_BE_ZERO = frozenset({"indirect_checks", "dead_node_reclaim", "push_pull_interval", "suspicion_max_timeout_mult"})


def suspicion_timeout(timing: Timing, n: int) -> tuple[float, float]:
    """(min, max) suspicion timeout for a cluster of `n` known nodes (self and the suspect included).

    min = suspicion_mult * max(1, log10(max(1, n))) * probe_interval, the node scale truncated to 1/1000 as Go's
    integer Duration arithmetic does; max = suspicion_max_timeout_mult * min.
    """
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    low = timing.suspicion_mult * math.floor(node_scale * 1000.0) * timing.probe_interval / 1000.0
    return low, timing.suspicion_max_timeout_mult * low


def expected_confirmations(timing: Timing, n: int) -> int:
    """k: how many independent confirmations shrink a suspicion to its minimum (0 when the cluster is too small)."""
    k = timing.suspicion_mult - 2
    return 0 if n - 2 < k else k


def remaining_suspicion_time(confirmations: int, k: int, elapsed: float, low: float, high: float) -> float:
    """Time left on a suspicion after `confirmations` of the `k` expected, `elapsed` seconds after it started.

    Lifeguard: the timeout falls from `high` towards `low` as ln(c + 1) / ln(k + 1), floored to the millisecond and
    never below `low`; a negative result means the suspicion is already overdue.
    """
    fraction = math.log(confirmations + 1.0) / math.log(k + 1.0)
    raw = high - fraction * (high - low)
    timeout = max(math.floor(1000.0 * raw) / 1000.0, low)
    return timeout - elapsed


def retransmit_limit(timing: Timing, n: int) -> int:
    """How many times one broadcast is handed out before it leaves the queue: mult * ceil(log10(n + 1))."""
    return timing.retransmit_mult * math.ceil(math.log10(n + 1))


def push_pull_period(timing: Timing, n: int) -> float:
    """The push-pull interval for `n` nodes: unchanged up to 32, then x (ceil(log2 n - log2 32) + 1)."""
    if n <= PUSH_PULL_SCALE_THRESHOLD:
        return timing.push_pull_interval
    multiplier = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1
    return multiplier * timing.push_pull_interval


# MetalLB's speaker: memberlist.DefaultLANConfig() untouched (no config.json mounted).
# N = 3: T_probe ~0.7 s (min of two uniform [0, 2) s) + 1 s deadline + 4 s suspicion (k = 0) + <= 0.2 s gossip
# => 5-7 s; 4 <= N <= 10: 4 s once two other survivors confirm (else 11.4 s / 24 s); research measured N=3 median
# 5.8 s (5.1-6.9), N=5 median 6.8 s (5.8-8.0). A pause shorter than ~5 s is refuted in time.
METALLB = Timing()

# The fastest MetalLB >= 0.16 config.json the research measured: 200 ms probes, 100 ms timeout, SuspicionMult 2,
# 50 ms gossip. SuspicionMult 2 means k = 0 at any size, so the suspicion is always its minimum 0.4 s (N <= 10).
# N = 3: T_probe ~0.13 s + 0.2 s + 0.4 s + <= 0.05 s => 0.6-0.9 s (measured median 0.76 s). It flaps on pauses
# from ~0.7 s (half of them in our simulator; all at 1 s): a stopped-but-alive speaker is declared dead by everyone
# and re-joins after it refutes, two VIP moves.
TUNED = Timing(probe_interval=0.2, probe_timeout=0.1, suspicion_mult=2, gossip_interval=0.05)

# Ours: probe fast (100 ms, 50 ms ack timeout, so a lost ack is retried indirectly and over TCP quickly) but keep the
# suspicion long, 25 x 0.1 s = 2.5 s for N <= 10, so a speaker paused for up to ~2 s (GC, cgroup throttling, a
# SIGSTOP) is still suspect when it wakes up, reads the accusations queued in its socket and refutes; nobody
# declares it dead and no VIP moves (simulated: no flap up to 2.4 s of pause, 1 in 30 at 2.6 s).
# N = 3: T_probe ~0.07 s + 0.1 s + 2.5 s + <= 0.05 s => ~2.7 s (simulated median 2.65 s). The sub-second
# failover comes from the data-path heartbeat, whose verdict is gossiped as `dead` (Swim.declare_dead).
# Confirmations are only expected from N >= 25 (k = 23); the max multiplier 2 bounds an unconfirmed suspicion to
# 5 s x log10(N) there. Gossip every 50 ms so refutations and verdicts spread within one hop's worth of time.
FAST = Timing(
    probe_interval=0.1,
    probe_timeout=0.05,
    suspicion_mult=25,
    suspicion_max_timeout_mult=2,
    gossip_interval=0.05,
)

TIMINGS: dict[str, Timing] = {"metallb": METALLB, "tuned": TUNED, "fast": FAST}
