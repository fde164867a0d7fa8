"""`plan` names what it ignores: documents of kinds it does not read, and fields the CRDs do not define (which the
API server would drop on apply without a word), each with the likely intended name."""

from __future__ import annotations

from pathlib import Path

from tests.unit.plan_cli import plan

MANIFEST = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: typo, namespace: metallb-system}
spec:
  adresses: [192.0.2.16/28]
  addresses: [192.0.2.0/28]
  serviceAllocation: {priority: 1, namespaces: [shop], namespaceSelector: [{matchLabels: {a: b}}]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {ipAddressPools: [typo], interface: [eth0]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisment
metadata: {name: l2b, namespace: metallb-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
"""


def warnings_of(stderr: str) -> list[str]:
    return [line.removeprefix("metallb-fast plan: warning: ") for line in stderr.splitlines()]


def test_unknown_fields_and_kinds_are_named(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    code, _, err = plan("-f", str(path))
    assert code == 0
    warnings = warnings_of(err)
    assert any(w.startswith("document 3, L2Advertisment l2b (metallb.io/v1beta1), ignored") and
               w.endswith("did you mean kind L2Advertisement?") for w in warnings), warnings
    assert any(w.startswith("document 4, Deployment web (apps/v1), ignored") for w in warnings), warnings
    assert ("IPAddressPool typo: field spec.adresses ignored: the IPAddressPool CRD has no such field (the API "
            "server drops it on apply); did you mean spec.addresses?") in warnings
    # nested: an object field of an object, a list item's field
    assert any(w.startswith("IPAddressPool typo: field spec.serviceAllocation.namespaceSelector ignored")
               and w.endswith("did you mean spec.serviceAllocation.namespaceSelectors?") for w in warnings)
    assert any(w.startswith("L2Advertisement l2: field spec.interface ignored")
               and w.endswith("did you mean spec.interfaces?") for w in warnings)
    assert len(warnings) == 5, warnings


def test_without_crds_it_says_fields_were_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    code, _, err = plan("-f", str(path), "--crds", str(tmp_path / "none"))
    assert code == 0
    assert any(w.startswith("unknown fields not checked:") for w in warnings_of(err))
    assert not any("adresses" in w for w in warnings_of(err))
