"""The split-brain rule: a majority of the known speakers serves, a minority goes quiet and stays quiet."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from metallb_fast.speaker.quorum import QuorumDecision, QuorumState, decide

NONE: frozenset[str] = frozenset()


def step(state: QuorumState, me: str, live: set[str], now: float, unreachable: frozenset[str] = NONE,
         left: frozenset[str] = NONE, gone: frozenset[str] = NONE) -> QuorumDecision:
    return decide(state, me, live, unreachable, left, gone, now)


def formed(me: str, names: set[str]) -> QuorumState:
    return step(QuorumState(), me, names, 0.0).state


def test_a_node_cut_off_from_two_others_goes_quiet_and_the_two_keep_serving() -> None:
    nodes = {"a", "b", "c"}
    a, c = formed("a", nodes), formed("c", nodes)
    minority = step(c, "c", {"c"}, 1.0)
    assert not minority.serving and "1 of 3" in minority.reason and "a, b" in minority.reason
    assert step(a, "a", {"a", "b"}, 1.0).serving


def test_the_minority_never_forgets_the_majority_so_it_stays_quiet_until_it_rejoins() -> None:
    state = formed("c", {"a", "b", "c"})
    for t in (1.0, 31.0, 300.0, 3000.0):
        decision = step(state, "c", {"c"}, t)
        assert not decision.serving
        state = decision.state
    assert step(state, "c", {"a", "b", "c"}, 3001.0).serving


def test_the_majority_forgets_a_dead_node_after_a_while_so_later_deaths_count_against_fewer() -> None:
    state = formed("a", {"a", "b", "c"})
    state = step(state, "a", {"a", "b"}, 1.0).state
    assert state.known == {"a", "b", "c"}
    state = step(state, "a", {"a", "b"}, 31.0).state
    assert state.known == {"a", "b"}
    # b dies too: a is alone, a tie of 1 of 2 that a wins (smallest name).
    assert step(state, "a", {"a"}, 32.0).serving


def test_a_heartbeat_unreachable_member_counts_as_absent_before_memberlist_says_so() -> None:
    state = formed("c", {"a", "b", "c"})
    decision = step(state, "c", {"a", "b", "c"}, 1.0, unreachable=frozenset({"a", "b"}))
    assert not decision.serving


def test_graceful_leaves_shrink_the_set_at_once() -> None:
    state = formed("a", {"a", "b", "c"})
    decision = step(state, "a", {"a"}, 1.0, left=frozenset({"b", "c"}))
    assert decision.serving and decision.known == {"a"}


def test_two_nodes_apart_exactly_one_serves_and_the_other_waits_for_the_api_server() -> None:
    a, b = formed("a", {"a", "b"}), formed("b", {"a", "b"})
    assert step(a, "a", {"a"}, 1.0).serving
    waiting = step(b, "b", {"b"}, 1.0)
    assert not waiting.serving
    # a really died: once the API server reports its Node NotReady, b takes over.
    assert step(waiting.state, "b", {"b"}, 41.0, gone=frozenset({"a"})).serving


def test_the_api_server_never_removes_ourselves() -> None:
    assert step(formed("a", {"a", "b", "c"}), "a", {"a", "b", "c"}, 1.0, gone=frozenset({"a"})).known == {"a", "b", "c"}


@given(
    names=st.sets(st.sampled_from("abcdefg"), min_size=1),
    data=st.data(),
)
def test_two_sides_of_any_partition_never_both_serve(names: set[str], data: st.DataObject) -> None:
    side = data.draw(st.sets(st.sampled_from(sorted(names))))
    other = names - side
    states = {n: formed(n, names) for n in names}
    serving = set()
    for t in (1.0, 31.0, 61.0, 1000.0):
        serving = set()
        for n in names:
            view = side if n in side else other
            decision = step(states[n], n, set(view), t)
            states[n] = decision.state
            if decision.serving:
                serving.add(n)
        assert not (serving & side and serving & other), (side, other, serving)
