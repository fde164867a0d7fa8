"""Only members that say they reflect heartbeats are heartbeated: a MetalLB speaker never reflects one, and
watching it would declare a healthy member dead (and gossip that to every speaker, MetalLB's too)."""

from __future__ import annotations

import argparse
from typing import Any

from metallb_fast.dataplane.heartbeat import heartbeat_meta, heartbeat_port_of
from metallb_fast.membership.messages import NodeState
from metallb_fast.membership.settings import add_membership_arguments, membership_settings
from metallb_fast.membership.swim import Member
from metallb_fast.speaker.cluster_view import ClusterView


def settings(timing: str) -> Any:
    parser = argparse.ArgumentParser()
    add_membership_arguments(parser)
    args = parser.parse_args(["--ml-bindaddr", "192.0.2.10", "--ml-labels", "app=metallb", "--ml-timing", timing])
    return membership_settings(args, "n1", "metallb-system")


def test_the_meta_says_the_port_and_nothing_else_parses() -> None:
    assert heartbeat_port_of(heartbeat_meta(7947)) == 7947
    for meta in (b"", b"something else", heartbeat_meta(7947) + b"x", b"metallb-fast heartbeat/1 port=0"):
        assert heartbeat_port_of(meta) is None


def test_a_speaker_advertises_heartbeats_only_when_it_reflects_them() -> None:
    assert heartbeat_port_of(settings("fast").node.meta) == 7947
    assert settings("metallb").node.meta == b""  # as a MetalLB speaker: no metadata


class RecordingWatch:
    peers: dict[str, Any] = {}

    def set_peers(self, peers: dict[str, Any]) -> None:
        self.peers = dict(peers)


def test_members_without_the_meta_are_not_watched() -> None:
    view = ClusterView(settings("fast"), "n1", lambda: [], responder=None, wake=lambda: None)  # type: ignore[arg-type]
    watch = RecordingWatch()
    view.watch = watch  # type: ignore[assignment]

    def member(name: str, last: int, meta: bytes, state: NodeState = NodeState.ALIVE) -> Member:
        return Member(name, bytes([192, 0, 2, last]), 7946, 3, state, 0.0, meta)

    view._update_watch((
        member("n1", 10, heartbeat_meta(7947)),  # ourselves
        member("ours", 11, heartbeat_meta(7950)),
        member("metallb", 12, b""),  # a Go speaker of MetalLB's
        member("left", 13, heartbeat_meta(7947), NodeState.LEFT),
    ))
    assert watch.peers == {"ours": (("192.0.2.11", 7950), 3)}
