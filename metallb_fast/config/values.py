"""Scalar syntaxes MetalLB's Go code parses: durations (time.ParseDuration) and BGP communities."""

from __future__ import annotations

import re
from decimal import Decimal

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_COMPONENT = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_MAX_NS = (1 << 63) - 1
_DIGITS = re.compile(r"[0-9]+")

DURATION_RULE = 'not a Go duration (a number with a unit: "90s", "1m30s", "500ms"; units ns, us, ms, s, m, h)'


def parse_duration_ns(text: str) -> int | None:
    """Go's time.ParseDuration in nanoseconds, or None when Go would reject the text."""
    sign = 1
    body = text
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        return None
    total = Decimal(0)
    position = 0
    while position < len(body):
        match = _COMPONENT.match(body, position)
        if match is None:
            return None
        total += Decimal(match.group(1)) * _UNIT_NS[match.group(2)]
        position = match.end()
    nanoseconds = int(total)  # Go truncates fractions of a nanosecond
    if nanoseconds > _MAX_NS:
        return None
    return sign * nanoseconds


class CommunityError(ValueError):
    """A community string that is not a valid value; `is_format` when it does not even have a community's shape."""

    def __init__(self, rule: str, *, is_format: bool) -> None:
        super().__init__(rule)
        self.is_format = is_format


def _field(text: str, bits: int) -> int | None:
    # strconv.ParseUint(s, 10, bits): ASCII digits only, no sign, no spaces, no underscores.
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value < (1 << bits) else None


def parse_community(text: str) -> str:
    """A BGP community value, canonical: "a:b" (16-bit each) or "large:a:b:c" (32-bit each); raises CommunityError."""
    parts = text.split(":")
    if len(parts) == 2:
        values = [_field(p, 16) for p in parts]
        if None in values:
            raise CommunityError("a:b community needs two numbers from 0 to 65535", is_format=False)
        return f"{values[0]}:{values[1]}"
    if len(parts) == 4:
        if parts[0] != "large":
            raise CommunityError('a four-part community must be "large:a:b:c"', is_format=False)
        values = [_field(p, 32) for p in parts[1:]]
        if None in values:
            raise CommunityError("large:a:b:c community needs three numbers from 0 to 4294967295", is_format=False)
        return f"large:{values[0]}:{values[1]}:{values[2]}"
    raise CommunityError('not a community ("a:b" or "large:a:b:c")', is_format=True)
