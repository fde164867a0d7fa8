"""bench/flood_scenarios.py: the flood bench's frames, CPU arithmetic, RTT summaries, plan and target verdicts."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from bench import flood_scenarios as fs
from metallb_fast.dataplane import packets
from metallb_fast.dataplane.base import Verdict

VIP4, VIP6 = IPv4Address("192.0.2.200"), IPv6Address("2001:db8::200")
LAN4, LAN6 = IPv4Network("192.0.2.0/24"), IPv6Network("2001:db8::/64")
NODE_MAC = bytes.fromhex("026d6c000001")
OWNED = {VIP4: NODE_MAC, VIP6: NODE_MAC}


def _frames(kind: str, sources: int = fs.FLOOD_SOURCES) -> list[bytes]:
    return fs.flood_frames(kind, sources, VIP4, VIP6, LAN4, LAN6)


@pytest.mark.parametrize("kind", ["arp", "ndp"])
def test_every_frame_of_a_plain_flood_is_answered_by_the_oracle(kind: str) -> None:
    frames = _frames(kind)
    assert len(frames) == fs.FLOOD_SOURCES
    assert {packets.answer(f, OWNED).verdict for f in frames} == {Verdict.ANSWERED}
    assert len({f[6:12] for f in frames}) == fs.FLOOD_SOURCES  # one sender MAC each


def test_the_mixed_flood_asks_for_unowned_addresses_nine_times_in_ten() -> None:
    frames = _frames("mixed")
    verdicts = [packets.answer(f, OWNED).verdict for f in frames]
    assert verdicts.count(Verdict.ANSWERED) == len(frames) // 10
    assert verdicts.count(Verdict.NOT_OWNED) == len(frames) - len(frames) // 10
    assert fs.owned_share("mixed") == pytest.approx(0.1)
    assert all(ip not in OWNED for ip in fs.unowned_addresses(VIP4))


def test_a_thousand_attackers_have_a_thousand_macs_on_lan_addresses() -> None:
    frames = _frames("arp", 1000)
    assert len({f[6:12] for f in frames}) == 1000
    senders = {IPv4Address(f[28:32]) for f in frames}
    assert len(senders) == fs.FLOOD_SOURCES and all(ip in LAN4 for ip in senders)
    assert fs.source_mac(1000) == bytes.fromhex("02666c0003e8")
    with pytest.raises(ValueError, match="65,536"):
        fs.source_mac(1 << 16)


def test_bad_flood_kinds_and_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="choose from"):
        _frames("dhcp")
    with pytest.raises(ValueError, match="at least one"):
        _frames("arp", 0)


PROC_STAT = """cpu  100 0 50 1000 5 0 3 7 0 0
cpu0 60 0 30 400 2 0 1 3 0 0
cpu1 40 2 20 600 3 1 2 4 0 0
intr 12345
"""


def test_cpu_ticks_count_work_and_leave_steal_out() -> None:
    assert fs.parse_cpu_ticks(PROC_STAT, 1) == fs.CpuTicks(busy=40 + 2 + 20 + 1 + 2, total=65 + 600 + 3)
    with pytest.raises(ValueError, match="cpu2"):
        fs.parse_cpu_ticks(PROC_STAT, 2)


def test_process_ticks_survive_a_comm_with_spaces_and_parentheses() -> None:
    fields = ["S", *["0"] * 10, "123", "45", *["0"] * 30]
    assert fs.parse_process_ticks(f"4242 (odd) name) ({' '.join(fields)}") == 168


def test_percentiles_are_nearest_rank_values_that_were_measured() -> None:
    values = [float(v) for v in range(1, 101)]
    assert fs.percentile(values, 50) == 50.0
    assert fs.percentile(values, 99) == 99.0
    assert fs.percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        fs.percentile([], 50)


def test_probe_summary_counts_losses_and_reports_milliseconds() -> None:
    summary = fs.ProbeSummary.of([0.0001, None, 0.0003, 0.0002], refused=1)
    assert (summary.sent, summary.answered, summary.refused) == (4, 3, 1)
    assert summary.answered_share == pytest.approx(0.75)
    assert summary.p50_ms == pytest.approx(0.2) and summary.max_ms == pytest.approx(0.3)
    assert fs.ProbeSummary.of([None]).p99_ms is None


def _run(responder: str, part: str = "capacity", **figures: object) -> fs.Run:
    defaults: dict[str, object] = {
        "kind": "arp",
        "sources": 64,
        "protection": "off",
        "load_fraction": None,
        "rate_pps": 0.0,
        "elapsed_s": 1.0,
        "window_s": 2.0,
        "hz": 100,
    }
    return fs.Run(responder, part, **(defaults | figures))  # type: ignore[arg-type]


def test_run_figures() -> None:
    run = _run("ring", sent=1000, replies=50, kind="mixed", core=fs.CpuTicks(80, 200), process_ticks=40, napi_ticks=10)
    assert run.answered == pytest.approx(0.5)  # 50 of the 100 owned requests
    assert run.core_busy == pytest.approx(0.4)
    assert run.core_ns_per_reply == pytest.approx(0.8e9 / 50)
    assert run.ns_per_reply == pytest.approx(0.5e9 / 50)  # NAPI thread + process, not the whole core
    assert run.ceiling_per_s == pytest.approx(100.0)
    assert _run("sender-only", delivered=1000, napi_ticks=1).ns_per_request == pytest.approx(10_000)
    lossy = _run("kernel", sent=600, dropped=400, replies=600)  # the node took 600 of 1,000 offered
    assert (lossy.offered_per_s, lossy.lost, lossy.answered) == (1000.0, 0.4, 0.6)
    assert run.process_cpu == pytest.approx(0.2)  # 0.4 s of CPU over a 2 s window
    without_napi = _run("x", replies=10, core=fs.CpuTicks(10, 100))
    assert without_napi.ns_per_reply == without_napi.core_ns_per_reply
    assert _run("x").ns_per_reply is None and _run("x").process_cpu is None


def test_the_plan_of_each_responder() -> None:
    go = fs.planned_runs("go", fs.PARTS, "off")
    assert {r.kind for r in go if r.part == "capacity"} == {"arp", "mixed"}  # goarp answers ARP only
    assert [r.load_fraction for r in go if r.part == "overload"] == list(fs.OVERLOAD_FRACTIONS)
    assert [r.sources for r in go if r.part == "legit"] == list(fs.ATTACKER_SOURCES)
    assert [r.rate_pps for r in go if r.part == "peak"] == list(fs.PEAK_RATES)
    assert not [r for r in fs.planned_runs("xdp-native", fs.PARTS, "off") if r.part == "peak"]  # not livelocked
    assert {r.part for r in fs.planned_runs("sender-only", fs.PARTS, "off")} == {"capacity"}
    assert next((r.part, r.kind) for r in fs.planned_runs("ring", ["overload"], "off")) == ("capacity", "arp")
    assert fs.planned_runs("ring", ["capacity"], "off")[-1].part == "capacity"
    assert {(r.part, r.protection) for r in fs.planned_runs("xdp-native", fs.PARTS, "drop")} == {("legit", "drop")}
    assert fs.protections("xdp-native", fs.PARTS, ["pass", "drop"]) == ["off", "pass", "drop"]
    assert fs.protections("ring", fs.PARTS, ["pass", "drop"]) == ["off", "pass"]
    assert fs.protections("go", fs.PARTS, ["pass"]) == ["off"]
    assert fs.protections("xdp-native", ["capacity"], ["pass"]) == ["off"]
    assert fs.overload_rates(1000.0) == [250.0, 500.0, 1000.0, 2000.0]


def test_a_livelocked_responder_is_compared_by_its_paced_peak() -> None:
    k = 1000
    runs = [
        _run("ring", sent=1000 * k, replies=120 * k),
        _run("go", sent=1000 * k, replies=2 * k),  # the full-rate flood: receive livelock
        _run("go", "peak", rate_pps=100 * k, sent=100 * k, replies=99 * k),  # paced: what it can answer
        _run("ring", "peak", rate_pps=200 * k, sent=200 * k, replies=199 * k),
    ]
    target = next(t for t in fs.evaluate_targets(runs) if t.goal.startswith("ring >= 2x Go"))
    assert (target.met, target.measured.split(" (")[0]) == (True, "2.01x")
    assert fs.peak(runs, "go") == 99 * k / runs[2].elapsed_s


def _verdicts(runs: list[fs.Run]) -> dict[str, bool | None]:
    return {t.goal: t.met for t in fs.evaluate_targets(runs)}


def test_targets_met_not_met_and_not_measured() -> None:
    k = 1000
    runs = [
        _run("ring", sent=500 * k, replies=400 * k, core=fs.CpuTicks(100, 100)),
        _run("go", sent=500 * k, replies=150 * k, process_ticks=40, napi_ticks=10),
        _run("ring", "overload", load_fraction=1.0, rate_pps=400 * k, sent=400 * k, replies=390 * k),
        _run("ring", "overload", load_fraction=2.0, rate_pps=800 * k, sent=800 * k, replies=300 * k),
        _run("xdp-native", sent=900 * k, replies=900 * k, napi_ticks=18, process_ticks=0),
        _run("kernel", sent=900 * k, replies=500 * k, napi_ticks=50),
        _run(
            "xdp-native",
            "legit",
            protection="drop",
            sources=1,
            process_ticks=1,
            window_s=1.0,
            probe=fs.ProbeSummary.of([0.0002] * 100),
        ),
        _run("ring", "legit", protection="pass", sources=1, probe=fs.ProbeSummary.of([0.0002] * 98 + [None] * 2)),
    ]
    verdicts = _verdicts(runs)
    assert verdicts["ring >= 2x Go replies/s (peak vs peak)"] is True  # 400 vs 150
    assert verdicts["ring >= 95 % answered at its capacity"] is True  # 390 of 400
    assert verdicts["ring at 2x capacity >= 90 % of its peak replies/s"] is False  # 300 of 400
    assert verdicts["xdp-native responder-core cost <= 0.25 us/reply"] is True  # 0.18 s / 900 = 200 ns
    assert verdicts["xdp-native >= 5x cheaper per reply than kernel"] is True  # 1,000 vs 200 ns
    assert verdicts["xdp-native >= 20x cheaper per reply than go"] is False  # 3,333 vs 200 ns: 16.7x
    legit = {goal: met for goal, met in verdicts.items() if "legitimate" in goal}
    assert legit == {
        "xdp-native, limit on (drop): a legitimate client >= 99 % answered, p99 <= 1 ms while one MAC floods": True,
        "ring, limit on (pass): a legitimate client >= 99 % answered, p99 <= 1 ms while one MAC floods": False,
    }
    assert verdicts["XDP userspace CPU ~0 during every flood (<= 1 % of a core)"] is True  # 1 tick = 1 %
    assert set(_verdicts([]).values()) == {None}


def test_the_go_responder_names_what_is_missing_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import goarp

    monkeypatch.setattr(goarp, "BINARY", tmp_path / "cache" / "goarp")
    with pytest.raises(goarp.GoarpUnavailable, match="--goarp-src"):
        goarp.goarp_binary(tmp_path / "nowhere")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("main.go", "build.sh"):
        (source / name).write_text("")
    monkeypatch.setattr(goarp, "_installed", lambda names: {"golang-go"})
    with pytest.raises(goarp.GoarpUnavailable, match=r"apt-get install golang-github-mdlayher-arp-dev$"):
        goarp.goarp_binary(source)
