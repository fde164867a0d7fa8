"""metallb-fast: a drop-in MetalLB whose speaker answers ARP and NDP in the kernel."""

__version__ = "0.1.0"
