"""Build hook: the Cython AF_PACKET responder (ext/ring.pyx), with the fast-path wire contract generated for it.

The XDP program (metallb_fast/dataplane/xdp_responder.c) is package data beside its loader (pyproject.toml): bcc
compiles it at run time, with the same contract passed as -D flags.
"""

import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # the package's own definitions (standard library only: metallb_fast/dataplane/wire.py)

from metallb_fast.dataplane import wire  # noqa: E402


def write_if_changed(path: Path, text: str) -> None:
    """Rewritten only when the contract changed, so that an unchanged one does not force Cython to recompile."""
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


write_if_changed(HERE / "ext" / "wire_contract.pxd", wire.pxd())

extensions = [
    Extension(
        "metallb_fast.dataplane._ring",
        sources=["ext/ring.pyx"],
        extra_compile_args=["-O2"],
    ),
    # The layer-2 election's hash loop (metallb_fast/speaker/election.py falls back to hashlib without it).
    Extension(
        "metallb_fast.speaker._election",
        sources=["ext/election.pyx"],
        extra_compile_args=["-O2"],
    ),
    # The benchmarks' C-speed ARP flood sender (bench/arp_flood.py); never imported by the speaker.
    Extension(
        "metallb_fast.testing._flood",
        sources=["ext/flood.pyx"],
        extra_compile_args=["-O2"],
    ),
]

setup(
    # include_path: ext/packet_socket.pxd (the C declarations both extensions cimport) and ext/wire_contract.pxd.
    ext_modules=cythonize(
        extensions, language_level=3, compiler_directives={"boundscheck": False}, include_path=[str(HERE / "ext")]
    ),
)
