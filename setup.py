"""Build hook: the Cython AF_PACKET responder (ext/ring.pyx) and the XDP program shipped as package data."""

import shutil
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent

# The bcc C source lives in ext/ (one file, reviewed as C); it is copied next to its loader so that
# an installed (non-editable) package finds it too.
shutil.copyfile(HERE / "ext" / "xdp_responder.c", HERE / "metallb_fast" / "dataplane" / "xdp_responder.c")

extensions = [
    Extension(
        "metallb_fast.dataplane._ring",
        sources=["ext/ring.pyx"],
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
    # include_path: ext/packet_socket.pxd, the C declarations both extensions cimport.
    ext_modules=cythonize(
        extensions, language_level=3, compiler_directives={"boundscheck": False}, include_path=[str(HERE / "ext")]
    ),
)
