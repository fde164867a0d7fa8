"""Go-only smoke tests of the GoNode harness: mlnode members behave like MetalLB's memberlist before we mix ours in.

Timing bounds (N=3, DefaultLANConfig, loopback; memberlist's suspicion formula, README: Membership): a crash is
declared after the first failed probe plus the 4 s suspicion timeout (measured 5.06-6.93 s); a graceful Leave
reaches the others in 6-202 ms.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tests.interop.gonode import GoNode, free_port

# Shaped like the controller's secrets (22 base64 characters), so the key takes MetalLB's quirky derivation path.
SECRET = "q8Jx0fV2mZr4Lw7TnB3yKe"


@contextmanager
def cluster(prefix: str, size: int = 3, secret: str | None = SECRET) -> Iterator[list[GoNode]]:
    """`size` mlnodes, each on its own loopback address, all joined through the first; yields once every
    node has seen every other join."""
    with ExitStack() as stack:
        nodes: list[GoNode] = []
        for i in range(size):
            join = [nodes[0].addr] if nodes else []
            node = GoNode(f"{prefix}{i}", bind=f"127.0.0.{10 + i}", join=join, secret=secret)
            nodes.append(stack.enter_context(node))
        for node in nodes:
            for other in nodes:
                node.wait_event("join", other.name, timeout=5)
        yield nodes


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    # Measured timings belong in the CI log even when the test passes.
    with capsys.disabled():
        print(f"\n[interop] {text}")


def test_three_nodes_form_one_cluster() -> None:
    with cluster("form") as nodes:
        for node in nodes:
            members = node.members()
            assert [m["name"] for m in members] == ["form0", "form1", "form2"]
            assert [m["addr"] for m in members] == [n.addr for n in nodes]
            assert {m["state"] for m in members} == {"alive"}


def test_sigkill_is_detected_in_4_to_10_s(capsys: pytest.CaptureFixture[str]) -> None:
    # Two independent clusters killed at the same moment: two trials (four samples) for the price of one wait.
    with cluster("ka") as a, cluster("kb") as b:
        trials = [(nodes[:2], nodes[2], nodes[2].kill()) for nodes in (a, b)]
        delays = []
        for survivors, victim, killed_at in trials:
            for node in survivors:
                leave = node.wait_event("leave", victim.name, timeout=12)
                delays.append(leave.t - killed_at)
    report(capsys, "SIGKILL -> leave: " + ", ".join(f"{d:.2f} s" for d in sorted(delays)))
    assert all(4.0 <= d <= 10.0 for d in delays), delays


def test_sigterm_leave_is_seen_within_1_s(capsys: pytest.CaptureFixture[str]) -> None:
    with cluster("term") as nodes:
        survivors, victim = nodes[:2], nodes[2]
        marks = [node.mark() for node in survivors]
        sent = time.time()
        assert victim.terminate() == 0
        delays = [node.wait_event("leave", victim.name, timeout=3, since=m).t - sent
                  for node, m in zip(survivors, marks, strict=True)]
        for node in survivors:
            assert [m["name"] for m in node.members()] == ["term0", "term1"]
    report(capsys, "SIGTERM -> leave: " + ", ".join(f"{d * 1000:.0f} ms" for d in sorted(delays)))
    assert all(d <= 1.0 for d in delays), delays


def test_different_secrets_do_not_join() -> None:
    with GoNode("sec-a", bind="127.0.0.20", secret=SECRET) as a, \
            GoNode("sec-b", bind="127.0.0.21", secret=SECRET[::-1], join=[a.addr]) as b:
        joined = b.wait_event("joined")
        assert joined.data["n"] == 0 and joined.data["error"], joined.data
        assert [m["name"] for m in a.members()] == ["sec-a"]
        assert [m["name"] for m in b.members()] == ["sec-b"]
        assert "decrypt" in a.log_tail(200) or "decrypt" in b.log_tail(200)


def test_metallb_016_tuned_timing_and_bare_ip_join(capsys: pytest.CaptureFixture[str]) -> None:
    # config.json-style timers (research: N=3 median 0.76 s), and MetalLB's join: one port everywhere, bare IPs.
    hosts = ["127.0.0.30", "127.0.0.31", "127.0.0.32"]
    port = free_port(*hosts)
    timing = {"probe_interval": 0.2, "probe_timeout": 0.1, "suspicion_mult": 2, "gossip_interval": 0.05}
    with ExitStack() as stack:
        nodes = [stack.enter_context(GoNode(f"tuned{i}", bind=host, port=port, secret=SECRET,
                                            join=hosts[:1] if i else [], **timing))
                 for i, host in enumerate(hosts)]
        for node in nodes:
            node.wait_event("join", "tuned2", timeout=3)
            assert [m["addr"] for m in node.members()] == [f"{h}:{port}" for h in hosts]
        killed_at = nodes[2].kill()
        delays = [node.wait_event("leave", "tuned2", timeout=5).t - killed_at for node in nodes[:2]]
    report(capsys, "tuned SIGKILL -> leave: " + ", ".join(f"{d:.2f} s" for d in sorted(delays)))
    assert all(d <= 2.0 for d in delays), delays
