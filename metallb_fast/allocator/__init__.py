"""Address pools and assignment, MetalLB-compatible and never materialising a range (pure: no I/O)."""

from metallb_fast.allocator.allocator import AllocationError, Allocator, PoolCounters
from metallb_fast.allocator.ipfamily import Family

__all__ = ["AllocationError", "Allocator", "Family", "PoolCounters"]
