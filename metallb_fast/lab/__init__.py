"""Network-namespace topologies for the demo, the tests and the benchmarks."""

from metallb_fast.dataplane.netns import in_netns
from metallb_fast.lab.stale import cleanup_stale
from metallb_fast.lab.topology import Endpoint, Host, Lab

__all__ = ["Endpoint", "Host", "Lab", "cleanup_stale", "in_netns"]
