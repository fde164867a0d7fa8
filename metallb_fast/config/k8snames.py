"""Kubernetes name syntax (apimachinery's validation): object names, label keys and label values."""

from __future__ import annotations

import re

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_RULE = "must be at most 63 characters of A-Z, a-z, 0-9, '-', '_' or '.', starting and ending alphanumeric"


def label_key_error(key: str) -> str | None:
    """Why `key` is not a qualified label key (optional DNS-subdomain prefix and '/', then a name), or None."""
    parts = key.split("/")
    if len(parts) > 2:
        return "not a valid label key: at most one '/' (prefix/name)"
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "not a valid label key: the prefix before '/' must not be empty"
        if len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix):
            return "not a valid label key: the prefix must be a lowercase DNS subdomain of at most 253 characters"
    else:
        name = parts[0]
    if not name:
        return "not a valid label key: the name part must not be empty"
    if len(name) > 63 or not _NAME.fullmatch(name):
        return f"not a valid label key: the name part {_NAME_RULE}"
    return None


def label_value_error(value: str) -> str | None:
    """Why `value` is not a valid label value (empty is valid), or None."""
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        return f"not a valid label value: it {_NAME_RULE}"
    return None


def object_name_error(name: str) -> str | None:
    """Why `name` is not a valid custom-resource name (a lowercase DNS subdomain), or None."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return (
            "not a valid object name: lowercase letters, digits, '-' and '.', starting and ending alphanumeric, "
            "at most 253 characters"
        )
    return None
