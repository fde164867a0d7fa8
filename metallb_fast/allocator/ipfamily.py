"""Address families and address text exactly as MetalLB's Go code sees them (internal/ipfamily; the addresses
themselves are read by vocabulary.parse_ip, Go's net.ParseIP).

Messages built here are compared byte for byte with MetalLB's, so the Go formatting verbs they use (%q on a
string and on a slice) are reproduced by `go_quote` and `go_quote_list`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from enum import Enum

from metallb_fast.vocabulary import IPAddress, ip_text, parse_ip


class Family(str, Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DUAL = "dual"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class FamilyError(ValueError):
    """The addresses do not make one family (MetalLB's ipfamily errors, same text)."""


def family_of(ip: IPAddress) -> Family:
    return Family.IPV4 if ip.version == 4 else Family.IPV6


def for_addresses(texts: Sequence[str]) -> Family:
    """ipfamily.ForAddresses: one address gives its family, two of different families give dual."""
    if len(texts) == 1:
        ip = parse_ip(texts[0])
        if ip is None:
            raise FamilyError(f"IPFamilyForAddresses: Invalid address {go_quote_list(texts)}")
        return family_of(ip)
    if len(texts) == 2:
        first, second = parse_ip(texts[0]), parse_ip(texts[1])
        if first is None or second is None:
            raise FamilyError(f"IPFamilyForAddresses: Invalid address {go_quote_list(texts)}")
        if first.version == second.version:
            raise FamilyError(f"IPFamilyForAddresses: same address family {go_quote_list(texts)}")
        return Family.DUAL
    raise FamilyError(f"IPFamilyForAddresses: invalid ips length {len(texts)} {go_quote_list(texts)}")


def for_ips(ips: Sequence[IPAddress | None]) -> Family:
    """ipfamily.ForAddressesIPs: the addresses are printed and parsed again, as MetalLB does."""
    return for_addresses([ip_text(ip) for ip in ips])


_PLAIN = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII except the quote and the backslash


def go_quote(text: str) -> str:
    """Go's %q on a string (strconv.Quote); identical to JSON quoting for the printable text MetalLB quotes."""
    if _PLAIN.fullmatch(text):
        return f'"{text}"'
    return json.dumps(text, ensure_ascii=False)


def go_quote_list(items: Iterable[object]) -> str:
    """Go's %q on a slice: `["a" "b"]`."""
    return "[" + " ".join(go_quote(str(i) if not isinstance(i, str) else i) for i in items) + "]"


def go_quote_ips(ips: Iterable[IPAddress | None]) -> str:
    return go_quote_list(ip_text(ip) for ip in ips)


def go_list(items: Iterable[str]) -> str:
    """Go's %v on a []string: `[a b]`."""
    return "[" + " ".join(items) + "]"
