"""A heartbeat peer for the dataplane tests: UDP sockets in a namespace send requests and collect reflections."""

from __future__ import annotations

import random
import select
import socket
import time
from ipaddress import ip_address

from metallb_fast.dataplane import heartbeat
from metallb_fast.dataplane.base import IPAddress
from metallb_fast.lab import in_netns

PORT = heartbeat.DEFAULT_PORT
Reflections = dict[IPAddress, heartbeat.Heartbeat]


def reflections(netns: str, targets: list[IPAddress], seq: int, wait_s: float = 3.0, port: int = PORT) -> Reflections:
    """Send a request to each target's heartbeat port from UDP sockets in `netns` (unconnected, as a speaker's
    is: the ICMP port-unreachable the node's own stack may add is not reported to them); the reflections, by
    the address they came from. Resent every 0.5 s (the first may wait for ARP/NDP); `wait_s` bounds the wait."""
    with in_netns(netns):
        socks = {4: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)}
        socks[6] = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    nonce = random.getrandbits(64)
    replies: Reflections = {}
    try:
        deadline, resend = time.monotonic() + wait_s, 0.0
        while time.monotonic() < deadline and len(replies) < len(targets):
            if time.monotonic() >= resend:
                for target in (t for t in targets if t not in replies):
                    socks[target.version].sendto(heartbeat.build_request(nonce, seq), (str(target), port))
                resend = time.monotonic() + 0.5
            readable, _, _ = select.select(list(socks.values()), [], [], 0.05)
            for sock in readable:
                data, source = sock.recvfrom(2048)
                reply, address = heartbeat.parse_reply(data), ip_address(source[0])
                if reply is not None and reply.nonce == nonce and source[1] == port and address in targets:
                    assert reply.seq == seq, f"{address} reflected seq {reply.seq} for {seq}"
                    replies[address] = reply
    finally:
        for sock in socks.values():
            sock.close()
    return replies
