"""IP addresses and pool entries parsed with Go's rules (what MetalLB accepts), kept as range ends.

Python's ipaddress is more lenient than Go's net package in places MetalLB relies on: it accepts scoped IPv6
addresses ("fe80::1%eth0"), netmask and hostmask suffixes ("/255.255.255.0"), and a bare address as a network.
Those are rejected here so that a pool MetalLB refuses is refused too.
"""

from __future__ import annotations

import ipaddress

from metallb_fast.config.model import AddressRange
from metallb_fast.vocabulary import parse_ip

SINGLE_ADDRESS_HINT = "a single address needs a /32 or /128 mask"


class EntryError(ValueError):
    """Why a pool `addresses` entry is invalid (the message is the rule, without the entry itself)."""


def _parse_cidr(text: str) -> AddressRange:
    """Go's net.ParseCIDR: address '/' decimal prefix length; host bits may be set (the network is kept)."""
    if text != text.strip():
        raise EntryError("not a CIDR or an a-b range (spaces are allowed only around the ends of an a-b range)")
    if "/" not in text:
        if parse_ip(text) is not None:
            raise EntryError(f"not a CIDR or an a-b range ({SINGLE_ADDRESS_HINT})")
        raise EntryError("not a CIDR or an a-b range")
    address_text, prefix_text = text.split("/", 1)
    if "%" in address_text or address_text != address_text.strip() or not address_text:
        raise EntryError("not a CIDR or an a-b range")
    try:
        # Unlike ParseIP, ParseCIDR keeps an IPv4-mapped address as IPv6 (netip semantics).
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise EntryError("not a CIDR or an a-b range") from None
    if not (prefix_text.isascii() and prefix_text.isdigit()):
        raise EntryError("not a CIDR or an a-b range (the prefix length must be a decimal number)")
    prefix = int(prefix_text)
    if prefix > address.max_prefixlen:
        raise EntryError(f"prefix length /{prefix} is longer than {address.max_prefixlen} bits")
    network = ipaddress.ip_network((address, prefix), strict=False)
    return AddressRange(network.network_address, network.broadcast_address, text, prefix)


def _parse_range(text: str) -> AddressRange:
    """MetalLB's `a-b` form: split at the first '-', each end trimmed of spaces."""
    start_text, end_text = (part.strip() for part in text.split("-", 1))
    start = parse_ip(start_text)
    if start is None:
        raise EntryError(f'invalid start address "{start_text}" in a-b range')
    end = parse_ip(end_text)
    if end is None:
        raise EntryError(f'invalid end address "{end_text}" in a-b range')
    if start.version != end.version:
        raise EntryError(f"range start {start} and end {end} are of different IP families")
    if int(start) > int(end):
        raise EntryError(f"range start {start} is after its end {end}")
    return AddressRange(start, end, text.strip())


def parse_address_entry(text: str) -> AddressRange:
    """One IPAddressPool `addresses` entry: a CIDR or an `a-b` range; raises EntryError."""
    return _parse_range(text) if "-" in text else _parse_cidr(text)


def shortest_prefix(entry: AddressRange) -> int:
    """The shortest prefix length among the CIDRs that exactly cover the entry (MetalLB's lowestMask).

    A CIDR is its own prefix; a range is summarised into CIDRs without listing its addresses.
    """
    if entry.prefixlen is not None:
        return entry.prefixlen
    return min(n.prefixlen for n in ipaddress.summarize_address_range(entry.first, entry.last))
