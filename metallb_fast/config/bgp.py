"""BGPPeer (v1beta1 and v1beta2), Community and BFDProfile, with MetalLB's per-object checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metallb_fast.config.fields import ObjectFields, Parsed
from metallb_fast.config.model import BFDProfile, BGPPeer, Community, CommunityAlias, SecretReference
from metallb_fast.config.selectors import parse_selector_list
from metallb_fast.config.values import DURATION_RULE, CommunityError, parse_community, parse_duration_ns
from metallb_fast.vocabulary import parse_ip

UINT32_MAX = (1 << 32) - 1
NS_PER_SECOND = 1_000_000_000


def _duration(fields: ObjectFields, spec: Mapping[str, Any], key: str) -> int | None:
    text = fields.text(spec, key, f"spec.{key}")
    if text is None:
        return None
    nanoseconds = parse_duration_ns(text)
    if nanoseconds is None:
        fields.report(f"spec.{key}", text, DURATION_RULE)
    return nanoseconds


def _timers(fields: ObjectFields, spec: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """MetalLB's parseTimers: a missing one is derived (keepalive = hold / 3, hold = 3 x keepalive)."""
    hold = _duration(fields, spec, "holdTime")
    keepalive = _duration(fields, spec, "keepaliveTime")
    unparsable = (spec.get("holdTime") is not None and hold is None) or (
        spec.get("keepaliveTime") is not None and keepalive is None
    )
    if unparsable or (hold is None and keepalive is None):
        return None, None
    hold_given = hold is not None
    if hold is None:
        hold = 3 * (keepalive or 0)
    if keepalive is None:
        keepalive = hold // 3
    ok = True
    whole_seconds = int(hold / NS_PER_SECOND)  # Go truncates toward zero before comparing
    if whole_seconds != 0 and whole_seconds < 3:
        if hold_given:
            fields.report("spec.holdTime", spec["holdTime"], "must be 0 or at least 3s")
        else:
            derived = f"{hold / NS_PER_SECOND:g}s"
            fields.report(
                "spec.keepaliveTime",
                spec["keepaliveTime"],
                f"gives a hold time of {derived} (3 x keepaliveTime); the hold time must be 0 or at least 3s",
            )
        ok = False
    if keepalive > hold:
        fields.report(
            "spec.keepaliveTime",
            spec["keepaliveTime"],
            f"must not be longer than the hold time ({hold / NS_PER_SECOND:g}s)",
        )
        ok = False
    if not ok:
        return None, None
    return hold / NS_PER_SECOND, keepalive / NS_PER_SECOND


def _connect_time(fields: ObjectFields, spec: Mapping[str, Any]) -> float | None:
    connect = _duration(fields, spec, "connectTime")
    if connect is None:
        return None
    # The CRD's CEL rules: whole seconds (checked in milliseconds), between 1 and 65535 seconds.
    seconds = int(connect / NS_PER_SECOND)
    if not 1 <= seconds <= 65535:
        fields.report("spec.connectTime", spec["connectTime"], "must be between 1s and 65535s")
        return None
    if int(connect / 1_000_000) % 1000 != 0:
        fields.report("spec.connectTime", spec["connectTime"], "must be a whole number of seconds")
        return None
    return connect / NS_PER_SECOND


def _no_line_breaks(fields: ObjectFields, path: str, value: str | None, shown: str | None = None) -> None:
    # MetalLB refuses these because they would inject lines into the generated FRR configuration.
    if value is not None and ("\n" in value or "\r" in value):
        fields.report(path, shown if shown is not None else value, "must not contain line breaks")


def _address(fields: ObjectFields, spec: Mapping[str, Any], key: str) -> str | None:
    text = fields.text(spec, key, f"spec.{key}")
    if text in (None, ""):
        return None
    if parse_ip(text) is None:
        fields.report(f"spec.{key}", text, "not an IP address")
        return None
    return text


def _password(fields: ObjectFields, spec: Mapping[str, Any]) -> str | None:
    """spec.password, never echoing the value into a message."""
    value = spec.get("password")
    if value is not None and not isinstance(value, str):
        fields.report("spec.password", "<hidden>", "must be a string")
        return None
    return value or None


def parse_peer(fields: ObjectFields, spec: Mapping[str, Any], version: str) -> Parsed[BGPPeer]:
    v1beta2 = version == "v1beta2"
    my_asn = fields.integer(spec, "myASN", "spec.myASN", 0, UINT32_MAX)
    if not my_asn and spec.get("myASN") in (None, 0):
        fields.report("spec.myASN", spec.get("myASN"), "is required: the local AS number (not 0)")
    peer_asn = fields.integer(spec, "peerASN", "spec.peerASN", 0, UINT32_MAX) or None
    dynamic_asn = (fields.text(spec, "dynamicASN", "spec.dynamicASN") or None) if v1beta2 else None
    if dynamic_asn is not None and dynamic_asn not in ("internal", "external"):
        fields.report("spec.dynamicASN", dynamic_asn, 'must be "internal" or "external"')
    if peer_asn is None and dynamic_asn is None and spec.get("peerASN") in (None, 0):
        fields.report("spec.peerASN", spec.get("peerASN"), "is required: set peerASN or dynamicASN")
    if peer_asn is not None and dynamic_asn is not None:
        fields.report("spec.dynamicASN", dynamic_asn, "peerASN and dynamicASN are mutually exclusive")
    ebgp_multihop = bool(fields.flag(spec, "ebgpMultiHop", "spec.ebgpMultiHop"))
    if ebgp_multihop and my_asn and peer_asn == my_asn:
        fields.report("spec.ebgpMultiHop", True, f"not allowed on an iBGP session (peerASN = myASN = {my_asn})")

    raw_address = fields.text(spec, "peerAddress", "spec.peerAddress") or None
    interface = (fields.text(spec, "interface", "spec.interface") or None) if v1beta2 else None
    if raw_address is None and interface is None:
        fields.report("spec.peerAddress", None, "is required: set peerAddress or interface")
    if raw_address is not None and interface is not None:
        fields.report("spec.interface", interface, "peerAddress and interface are mutually exclusive")
    _no_line_breaks(fields, "spec.interface", interface)
    peer_address = _address(fields, spec, "peerAddress")
    source_address = _address(fields, spec, "sourceAddress")
    router_id = _address(fields, spec, "routerID")

    password = _password(fields, spec)
    _no_line_breaks(fields, "spec.password", password, shown="<hidden>")
    password_secret = None
    secret = fields.mapping(spec, "passwordSecret", "spec.passwordSecret") if v1beta2 else None
    if secret is not None:
        secret_name = fields.text(secret, "name", "spec.passwordSecret.name")
        if secret_name:
            namespace = fields.text(secret, "namespace", "spec.passwordSecret.namespace") or None
            password_secret = SecretReference(secret_name, namespace)
    if password is not None and password_secret is not None:
        fields.report("spec.passwordSecret", password_secret.name, "password and passwordSecret are mutually exclusive")
    vrf = (fields.text(spec, "vrf", "spec.vrf") or None) if v1beta2 else None
    _no_line_breaks(fields, "spec.vrf", vrf)

    hold, keepalive = _timers(fields, spec)
    # v1beta1 has no default and allows 0; 0 there means the BGP port too.
    port = fields.integer(spec, "peerPort", "spec.peerPort", 1 if v1beta2 else 0, 16384)
    peer = BGPPeer(
        name=fields.name,
        my_asn=my_asn or 0,
        peer_asn=peer_asn,
        dynamic_asn=dynamic_asn,
        peer_address=peer_address,
        interface=interface,
        peer_port=port or 179,
        source_address=source_address,
        router_id=router_id,
        hold_time_seconds=hold,
        keepalive_time_seconds=keepalive,
        connect_time_seconds=_connect_time(fields, spec) if v1beta2 else None,
        ebgp_multihop=ebgp_multihop,
        bfd_profile=fields.text(spec, "bfdProfile", "spec.bfdProfile") or None,
        password=password,
        password_secret=password_secret,
        node_selectors=parse_selector_list(
            fields, spec, "nodeSelectors", "spec.nodeSelectors", values_required=not v1beta2
        ),
        vrf=vrf,
        enable_graceful_restart=bool(
            v1beta2 and fields.flag(spec, "enableGracefulRestart", "spec.enableGracefulRestart")
        ),
        disable_mp=bool(v1beta2 and fields.flag(spec, "disableMP", "spec.disableMP")),
        dual_stack_address_family=bool(
            v1beta2 and fields.flag(spec, "dualStackAddressFamily", "spec.dualStackAddressFamily")
        ),
        local_asn=fields.integer(spec, "localASN", "spec.localASN", 1, UINT32_MAX) if v1beta2 else None,
    )
    return Parsed(peer, fields)


def parse_community_object(fields: ObjectFields, spec: Mapping[str, Any]) -> Parsed[Community]:
    aliases: list[CommunityAlias] = []
    paths: list[str] = []
    for path, item in fields.mappings(spec, "communities", "spec.communities"):
        name = fields.text(item, "name", f"{path}.name") or ""
        value = fields.text(item, "value", f"{path}.value")
        if value is None:
            fields.report(f"{path}.value", None, "is required")
            continue
        try:
            aliases.append(CommunityAlias(name, parse_community(value)))
        except CommunityError as err:
            fields.report(f"{path}.value", value, str(err))
            continue
        paths.append(path)
    return Parsed(Community(fields.name, tuple(aliases)), fields, tuple(paths))


def parse_bfd_profile(fields: ObjectFields, spec: Mapping[str, Any]) -> Parsed[BFDProfile]:
    def interval(key: str) -> int | None:
        return fields.integer(spec, key, f"spec.{key}", 10, 60000)

    profile = BFDProfile(
        name=fields.name,
        receive_interval_ms=interval("receiveInterval"),
        transmit_interval_ms=interval("transmitInterval"),
        detect_multiplier=fields.integer(spec, "detectMultiplier", "spec.detectMultiplier", 2, 255),
        echo_interval_ms=interval("echoInterval"),
        echo_mode=bool(fields.flag(spec, "echoMode", "spec.echoMode")),
        passive_mode=bool(fields.flag(spec, "passiveMode", "spec.passiveMode")),
        minimum_ttl=fields.integer(spec, "minimumTtl", "spec.minimumTtl", 1, 254),
    )
    return Parsed(profile, fields)
