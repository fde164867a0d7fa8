"""Failover as a client sees it, in CI (short versions of bench/failover.py): a 3-node lab cluster (memberlist with
--ml-timing=fast: data-path heartbeats answered by XDP, --backend xdp), a UDP echo on every node that says which
node answered, the client's probe (a UDP datagram and an ARP request for the address every 10 ms), and faults from
metallb_fast.lab.faults. The targets are the failover issue's; each test prints what it measured.

- Before any speaker owns the address nothing answers ARP for it (the echo's local route does not make the kernel
  answer), so what answers afterwards is the speakers' fast path alone.
- Node death (link down + speaker killed): the address moves within NODE_DEATH_OUTAGE_S, client-seen.
- SIGKILL of the owner's speaker (the node lives on): its kernel answers until the liveness deadline, then the
  address moves; the client sees no outage beyond one probe.
- SIGSTOP of the owner's speaker for 2 s, and its CPU throttled to 5 %: no move.
- Graceful drain (cordon + SIGTERM): the others take over within DRAIN_OUTAGE_S.
- Restart of the owner's speaker (SIGTERM, start again: a rolling update): no probe lost, no move.
- memberlist blocked between one node (the owner) and the rest: the minority stops answering and never answers
  again until it rejoins; the majority takes over.
- 60 s with 5 % loss on the LAN and a CPU hog on every node: no move.
- Two MACs never answer at once for more than OVERLAP_S, in any trial or over the whole run.
The pure analysis (metallb_fast.lab.probe.analyse) is checked on hand-made records first; those tests need nothing.
"""

from __future__ import annotations

import shutil
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metallb_fast.dataplane.packets import _ones_sum
from metallb_fast.lab.cluster import METALLB_NAMESPACE, ClusterLab, RunningProbe, delete_pods_now
from metallb_fast.lab.faults import Faults, complete_checksum
from metallb_fast.lab.probe import ProbeRecords, TrialFigures, analyse
from metallb_fast.lab.waiting import wait_for
from metallb_fast.testing.kubeenv import KubeEnv
from tests.conftest import require, require_root

# The targets (one trial each here; bench/failover.py reports medians and p95 over many).
TIMING = "fast"
NODE_DEATH_OUTAGE_S = 0.5  # median target 0.3 s, p95 0.5 s
DRAIN_OUTAGE_S = 0.2
OVERLAP_S = 0.1
LIVENESS_TIMEOUT_S = 10.0  # the speaker's default: long enough for a restart to be hitless
SOAK_S = 60.0
PAUSE_S = 2.0
NAMESPACE = "failover-lab"
STEADY_SPAN_S = 1.5
SPEAKER_SELECTOR = "app=metallb,component=speaker"  # the speaker Pods ClusterLab registers for memberlist


# ------------------------------------------------------------------------------------------------ the analysis

def records(answers: list[tuple[float, str]], arp: list[tuple[float, str]], until: float) -> ProbeRecords:
    """Probe records with a slot every 10 ms from 0 to `until`; `answers` (t, node) are the UDP answers."""
    rec = ProbeRecords(0.01)
    slots = round(until / 0.01)
    rec.sent = [(k, k * 0.01) for k in range(slots)]
    rec.answers = [(t, round(t / 0.01), node) for t, node in answers]
    rec.arp = arp
    return rec


def every(start: float, end: float, node: str, offset: float = 0.001) -> list[tuple[float, str]]:
    return [(k * 0.01 + offset, node) for k in range(round(start / 0.01), round(end / 0.01))]


def test_analysis_measures_a_move_from_the_last_old_answer_to_the_first_new_one() -> None:
    answers = every(0, 2.0, "node0") + every(2.5, 4.0, "node1")
    arp = every(0, 2.2, "aa") + every(2.1, 4.0, "bb", offset=0.002)  # both MACs answer 2.1-2.2 s
    figures = analyse(records(answers, arp, 4.0), fault_at=1.0, end=4.0)
    assert (figures.owner_before, figures.owner_after) == ("node0", "node1")
    assert [(m.source, m.target) for m in figures.moves] == [("node0", "node1")]
    assert figures.outage_s == pytest.approx(0.51, abs=1e-6)  # 1.991 -> 2.501
    assert figures.move_s == pytest.approx(1.501, abs=1e-6)
    assert figures.overlap_max_s == pytest.approx(0.10, abs=1e-6)
    assert not figures.unrecovered


def test_analysis_without_a_move_reports_the_longest_gap_and_an_unrecovered_end() -> None:
    answers = every(0, 1.5, "node0") + every(1.8, 2.0, "node0")
    figures = analyse(records(answers, every(0, 3.0, "aa"), 3.0), fault_at=1.0, end=3.0)
    assert figures.moves == () and figures.move_s is None
    assert figures.unrecovered  # nothing answered after 1.991 s up to the end at 3.0 s
    assert figures.outage_s == figures.longest_gap_s == pytest.approx(3.0 - 1.991, abs=1e-6)
    assert figures.overlap_max_s == 0.0


def test_the_delay_relay_completes_an_offloaded_udp_checksum() -> None:
    """A veth hands packet sockets UDP frames whose checksum was left to offload; relayed as they are, the receiver
    would drop them. complete_checksum fills it in (the one's complement sum over pseudo-header + segment is 0xffff)."""
    src, dst, payload = bytes([192, 0, 2, 100]), bytes([192, 0, 2, 200]), b"41 node0"
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0x1234) + payload  # 0x1234: a stale partial sum
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    frame = bytes(6) + bytes(6) + b"\x08\x00" + ip + udp
    fixed = complete_checksum(frame)
    segment = fixed[34:]
    assert len(fixed) == len(frame) and fixed[:40] == frame[:40] and segment[8:] == payload
    assert _ones_sum(src + dst + struct.pack("!xBH", 17, len(segment)) + segment) == 0xFFFF


# ------------------------------------------------------------------------------------------------ the lab

@dataclass
class Harness:
    cluster: ClusterLab
    probe: RunningProbe
    address: str
    kernel_answer: str | None  # the MAC that answered ARP for the address before any speaker owned it
    home: str  # the node `plan` names with every speaker up

    def steady(self) -> str:
        """Every speaker up and in memberlist, and the home node alone answering (UDP and ARP) for a while."""
        owner = self.cluster.wait_steady_owner(self.probe, STEADY_SPAN_S, timeout=90, only=self.home)
        assert owner is not None, f"{self.home} did not answer {self.address} alone for {STEADY_SPAN_S} s: " + str(
            {f"speaker-{h.name}": self.cluster.tail(f"speaker-{h.name}", 15) for h in self.cluster.lab.nodes})
        return owner

    def figures(self, fault_at: float, end: float) -> TrialFigures:
        time.sleep(0.1)  # the probe flushes every 50 ms
        return analyse(self.probe.records(), fault_at, end)


@pytest.fixture(scope="module")
def harness(kube_controller_manager: KubeEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    require_root()
    require(shutil.which("arping") is not None, "the arping tool")
    kube = kube_controller_manager
    log_dir: Path = tmp_path_factory.mktemp("failover-lab")
    kube.kubectl("create", "namespace", NAMESPACE, check=False)
    delete_pods_now(kube, METALLB_NAMESPACE, SPEAKER_SELECTOR)  # an earlier lab's, still Terminating
    # --on-sigterm=auto, as deployed: a SIGTERM is a restart unless the Node is cordoned (then a handover).
    with ClusterLab(kube, log_dir, nodes=3, backend="xdp", memberlist_timing=TIMING,
                    liveness_timeout_s=LIVENESS_TIMEOUT_S, on_sigterm="auto") as cluster:
        try:
            address = str(cluster.lab.vip_v4(0))
            cluster.serve_echo([address])
            kernel_answer = cluster.resolve(address)
            probe = cluster.start_probe(address, log_dir / "probe.jsonl")
            cluster.announce(NAMESPACE, "probe", address)
            wait_for(lambda: cluster.ingress(NAMESPACE, "probe"), what="the probe Service's address")
            home = wait_for(lambda: cluster.planned_nodes(NAMESPACE, "probe").get(address), what="plan names a node")
            yield Harness(cluster, probe, address, kernel_answer, home)
        finally:
            for host in cluster.lab.nodes:  # the lab's end is a drain: every speaker hands over and detaches
                kube.kubectl("cordon", host.name, check=False)
            codes = cluster.stop_programs()
            delete_pods_now(kube, NAMESPACE)
            kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
            kube.kubectl("delete", "ipaddresspools,l2advertisements", "--all", "-n", METALLB_NAMESPACE, check=False)
            assert all(code == 0 for code in codes.values()), {n: (c, cluster.tail(n)) for n, c in codes.items()}
            assert cluster.xdp_attached() == [], "an XDP program outlived its speaker"
    delete_pods_now(kube, METALLB_NAMESPACE, SPEAKER_SELECTOR)  # so that a later lab can register its own


def report(capsys: pytest.CaptureFixture[str], what: str, figures: TrialFigures) -> None:
    move = "no move" if figures.move_s is None else f"moved after {figures.move_s:.2f} s"
    with capsys.disabled():
        print(f"\n[failover-lab {TIMING}] {what}: {move}, client-seen outage {figures.outage_s:.3f} s, "
              f"longest gap {figures.longest_gap_s:.3f} s, overlap {figures.overlap_max_s:.2f} s, "
              f"ARP silent {figures.arp_silent_max_s:.2f} s, answered {figures.answered}/{figures.sent}, "
              f"moves {[(m.source, m.target) for m in figures.moves]}")


def test_nothing_answers_arp_for_the_address_before_a_speaker_owns_it(harness: Harness) -> None:
    assert harness.kernel_answer is None, f"{harness.kernel_answer} answered ARP for {harness.address} (kernel?)"
    owner = harness.steady()
    assert harness.cluster.resolve(harness.address) == harness.cluster.node_mac(owner)


def moved(harness: Harness, owner: str, fault_at: float, timeout: float, formed: bool = True,
          ) -> tuple[str, TrialFigures]:
    new = harness.cluster.wait_steady_owner(harness.probe, STEADY_SPAN_S, timeout=timeout, other_than=owner,
                                            formed=formed)
    figures = harness.figures(fault_at, time.monotonic())
    assert new is not None and new != owner, f"{harness.address} did not settle on another node: {figures}"
    assert figures.moves and figures.moves[0].source == owner, figures
    assert figures.overlap_max_s <= OVERLAP_S, figures
    assert not figures.unrecovered, figures
    return new, figures


def unmoved(harness: Harness, fault_at: float) -> TrialFigures:
    figures = harness.figures(fault_at, time.monotonic())
    assert figures.moves == (), figures
    assert figures.overlap_max_s <= OVERLAP_S, figures
    return figures


def test_node_death_moves_the_address_within_the_target(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    owner = harness.steady()
    with Faults(harness.cluster) as faults:
        fault = faults.node_death(owner)
        _, figures = moved(harness, owner, fault.started_at, timeout=30)
    report(capsys, f"node death of {owner}", figures)
    assert figures.outage_s <= NODE_DEATH_OUTAGE_S, figures


def test_sigkill_of_the_owner_moves_once_its_fast_path_goes_quiet(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = harness.steady()
    with Faults(harness.cluster) as faults:
        fault = faults.sigkill(owner)
        _, figures = moved(harness, owner, fault.started_at, timeout=LIVENESS_TIMEOUT_S + 20)
    report(capsys, f"SIGKILL of {owner}'s speaker", figures)
    # Its kernel answered until the liveness deadline, the new owner right after: the client lost at most a
    # probe or two, and the move came no sooner than the deadline (never two answers).
    assert figures.outage_s <= NODE_DEATH_OUTAGE_S, figures
    assert figures.move_s is not None and figures.move_s >= LIVENESS_TIMEOUT_S - 1.0, figures


def test_a_2s_sigstop_of_the_owner_moves_nothing(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    owner = harness.steady()
    with Faults(harness.cluster) as faults:
        fault = faults.pause(owner)
        time.sleep(PAUSE_S)
        fault.undo()
        time.sleep(5.0)  # a suspicion raised during the pause would end (dead or refuted) within this
    figures = unmoved(harness, fault.started_at)
    report(capsys, f"SIGSTOP of {owner}'s speaker for {PAUSE_S:.0f} s", figures)
    assert harness.cluster.dead_programs() == {}


def test_the_owner_throttled_to_5_percent_cpu_moves_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = harness.steady()
    with Faults(harness.cluster) as faults:
        fault = faults.starve_cpu(owner, 0.05)
        time.sleep(15.0)  # the 30 s in the bench; here half
        fault.undo()
        time.sleep(3.0)
    figures = unmoved(harness, fault.started_at)
    report(capsys, f"{owner}'s speaker at 5 % of a CPU ({fault.detail['how']}) for 15 s", figures)


def test_a_drain_hands_the_address_over_at_once(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    owner = harness.steady()
    with Faults(harness.cluster) as faults:
        fault = faults.drain(owner)
        assert fault.detail["exit_code"] == 0, harness.cluster.tail(f"speaker-{owner}")
        _, figures = moved(harness, owner, fault.started_at, timeout=30)
    report(capsys, f"drain of {owner}", figures)
    assert figures.outage_s <= DRAIN_OUTAGE_S, figures


def test_a_restart_of_the_owner_loses_no_probe_and_moves_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = harness.steady()
    with Faults(harness.cluster) as faults:
        fault = faults.restart(owner)
    assert fault.detail["exit_code"] == 0, harness.cluster.tail(f"speaker-{owner}")
    wait_for(harness.cluster.memberlist_formed, timeout=60, what=f"{owner}'s speaker back in memberlist")
    time.sleep(3.0)
    figures = unmoved(harness, fault.started_at)
    report(capsys, f"restart of {owner}'s speaker (the owner)", figures)
    assert figures.answered == figures.sent, figures


def test_a_restart_of_a_non_owner_moves_nothing(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    owner = harness.steady()
    other = next(h.name for h in harness.cluster.lab.nodes if h.name != owner)
    with Faults(harness.cluster) as faults:
        fault = faults.restart(other)
    assert fault.detail["exit_code"] == 0, harness.cluster.tail(f"speaker-{other}")
    wait_for(harness.cluster.memberlist_formed, timeout=60, what=f"{other}'s speaker back in memberlist")
    time.sleep(3.0)
    figures = unmoved(harness, fault.started_at)
    report(capsys, f"restart of {other}'s speaker (owner {owner})", figures)


def test_the_minority_of_a_memberlist_partition_goes_quiet_until_it_rejoins(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = harness.steady()
    owner_mac = harness.cluster.node_mac(owner)
    with Faults(harness.cluster) as faults:
        fault = faults.block_memberlist(owner)
        _, figures = moved(harness, owner, fault.started_at, timeout=30, formed=False)
        time.sleep(5.0)  # cut off for a while: it must stay quiet
        cut_off = harness.probe.records().window(fault.started_at + figures.overlap_max_s + 1.0, time.monotonic())
        assert all(owner_mac not in macs for _, macs in cut_off.arp_samples()), "the minority answered again"
        fault.undo()
    healed_at = time.monotonic()
    back = harness.steady()  # it rejoins, and the address settles on the node the election ranks first
    settled = harness.figures(healed_at, time.monotonic())
    report(capsys, f"memberlist cut between {owner} and the others", figures)
    report(capsys, "after the partition healed", settled)
    assert back == owner and settled.overlap_max_s <= OVERLAP_S, settled
    assert len(settled.moves) <= 1, settled  # back once, no flapping


def test_a_minute_of_loss_and_cpu_hogs_moves_nothing(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.steady()
    started = time.monotonic()
    with Faults(harness.cluster) as faults:
        faults.impair_lan(None, loss=0.05)
        for host in harness.cluster.lab.nodes:
            faults.cpu_hog(host.name)
        time.sleep(SOAK_S)
    figures = harness.figures(started, time.monotonic())
    report(capsys, f"{SOAK_S:.0f} s of 5 % loss on the LAN and a CPU hog on every node", figures)
    assert figures.moves == (), figures


def test_the_probe_never_saw_two_macs_answer_for_longer_than_the_bound(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over everything the probe recorded in this module (every trial above, and the settling in between)."""
    rec = harness.probe.records()
    assert rec.sent, "the probe recorded nothing"
    start, end = rec.sent[0][1], time.monotonic()
    figures = analyse(rec, start, end, baseline_s=0.0)
    with capsys.disabled():
        print(f"\n[failover-lab {TIMING}] whole run {end - start:.0f} s: overlap max {figures.overlap_max_s:.2f} s, "
              f"total {figures.overlap_total_s:.2f} s, {len(figures.moves)} moves")
    assert figures.overlap_max_s <= OVERLAP_S, figures
