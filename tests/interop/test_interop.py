"""Our members and Go memberlist members (Debian's library, configured as MetalLB's speaker) in one cluster.

Ours run as `metallb-fast members --json` processes (PyNode), the Go ones as mlnode (GoNode): both print the same
event lines, both are killed by their own pid. All on loopback, encrypted with a key derived as MetalLB does.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import pytest

from tests.interop.gonode import GoNode
from tests.interop.pynode import PyNode

SECRET = "q8Jx0fV2mZr4Lw7TnB3yKe"  # 22 characters, like the secrets MetalLB's controller makes
TRIALS = 5


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[interop] {text}")


@contextmanager
def mixed_cluster(prefix: str, kinds: str, host_base: int, secret: str | None = SECRET) -> Iterator[list[GoNode]]:
    """One member per letter of `kinds` ("g" Go, "p" ours), each on its own loopback address, joined through the
    first; yields once every member has seen every other join."""
    with ExitStack() as stack:
        nodes: list[GoNode] = []
        for i, kind in enumerate(kinds):
            join = [nodes[0].addr] if nodes else []
            bind = f"127.0.{host_base}.{10 + i}"
            name = f"{prefix}-{kind}{i}"
            node = GoNode(name, bind=bind, join=join, secret=secret) if kind == "g" else \
                PyNode(name, bind=bind, join=join, secret=secret)
            nodes.append(stack.enter_context(node))
        for node in nodes:
            for other in nodes:
                if other is not node:
                    node.wait_event("join", other.name, timeout=15)
        yield nodes


def names(members: Sequence[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(m["name"], m["addr"], m["state"]) for m in members]


def test_ours_and_go_members_form_one_cluster_with_identical_member_lists() -> None:
    with mixed_cluster("form", "gpgp", host_base=1) as nodes:
        lists = {node.name: names(node.members()) for node in nodes}
        expected = sorted((n.name, n.addr, "alive") for n in nodes)
        assert all(found == expected for found in lists.values()), lists


def test_graceful_leave_is_seen_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    delays = []
    for prefix, kinds, host_base in (("leave-ours", "gpg", 2), ("leave-go", "pgp", 3)):
        with mixed_cluster(prefix, kinds, host_base=host_base) as nodes:
            first, leaving, last = nodes
            marks = [first.mark(), last.mark()]
            sent = time.time()
            assert leaving.terminate(timeout=10) == 0
            for survivor, since in zip((first, last), marks, strict=True):
                seen = survivor.wait_event("leave", leaving.name, timeout=2, since=since)
                assert "left" in seen.data.get("reason", "left"), seen.data  # ours say why; a leave, not a death
                delays.append((prefix, seen.received - sent))
    report(capsys, "graceful leave -> leave event: " + ", ".join(f"{p} {d * 1000:.0f} ms" for p, d in delays))


def test_a_wrong_key_does_not_join_and_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    with mixed_cluster("key", "gp", host_base=4) as nodes, \
            PyNode("key-intruder", bind="127.0.4.30", join=[nodes[0].addr], secret="another-secret-of-22ch") as bad:
        with pytest.raises(TimeoutError):
            nodes[0].wait_event("join", bad.name, timeout=3)
        assert [m["name"] for m in bad.members()] == [bad.name]
        assert all(bad.name not in [m["name"] for m in node.members()] for node in nodes)
        # Our side says why: the Go member's answers fail authentication with our key.
        assert "refused" in bad.log_tail(200) or "decrypt" in bad.log_tail(200), bad.log_tail()


def kill_trials(kinds: str, host_base: int) -> list[float]:
    """TRIALS clusters of `kinds` at once; SIGKILL the last member of every cluster at the same moment and time
    each survivor's leave event. Returns every survivor's delay."""
    delays: list[float] = []
    with ExitStack() as stack:
        clusters = [
            stack.enter_context(mixed_cluster(f"kill{kinds}{t}", kinds, host_base=host_base + t))
            for t in range(TRIALS)
        ]
        killed = [(nodes[:-1], nodes[-1], nodes[-1].kill()) for nodes in clusters]
        for survivors, victim, killed_at in killed:
            for survivor in survivors:
                leave = survivor.wait_event("leave", victim.name, timeout=20)
                delays.append(leave.received - killed_at)
    return delays


# (members, what is killed): Go's own figure first, then ours alone, then the mixed cases.
KILL_SCENARIOS = {"ggg": "Go only", "ppp": "ours only", "gpg": "a Go member, mixed", "gpp": "one of ours, mixed"}


def test_sigkill_is_declared_dead_in_the_time_the_go_library_takes(capsys: pytest.CaptureFixture[str]) -> None:
    # DefaultLANConfig, N=3: the first failed probe (probe interval 1 s, one probe of the victim about every
    # 0.5-1 s cluster-wide) plus the 4 s suspicion timeout: 5.1-6.9 s measured with Go members only.
    medians = {}
    lines = []
    for i, (kinds, what) in enumerate(KILL_SCENARIOS.items()):
        delays = kill_trials(kinds, host_base=10 + 10 * i)
        medians[kinds] = statistics.median(delays)
        lines.append(f"{what}: median {medians[kinds]:.2f} s ({min(delays):.2f}-{max(delays):.2f}, "
                     f"{len(delays)} survivors x trials)")
        assert all(4.0 <= delay <= 9.0 for delay in delays), (what, delays)
    report(capsys, "SIGKILL -> leave on the survivors, DefaultLANConfig: " + "; ".join(lines))
    for kinds in ("ppp", "gpg", "gpp"):
        assert abs(medians[kinds] - medians["ggg"]) <= 1.0, medians
