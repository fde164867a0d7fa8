# Type stub for the benchmarks' compiled flood sender (ext/flood.pyx); keep in step with it.
from typing import Any

def flood(
    ifindex: int, frames: list[bytes], duration_s: float, batch: int = 64, rate_pps: float = 0.0, lossy: bool = False
) -> dict[str, Any]: ...
def flood_live(
    ifindex: int, frames: list[bytes], duration_s: float, rate_pps: float = 0.0, chunk: int = 4096
) -> dict[str, Any]: ...
def load_xdp_drop(name: str = "mlbf_flood_sink", keep_mac: bytes = b"") -> int: ...
