"""Pod look-ups: the speaker Pods' IPs, which memberlist joins (as MetalLB's speakers find each other)."""

from __future__ import annotations

from metallb_fast.k8s.client import KubeClient
from metallb_fast.vocabulary import CORE_V1_PATH


def pod_ips(client: KubeClient, namespace: str, label_selector: str) -> list[str]:
    """The primary IP (status.podIP, as MetalLB takes it) of every Pod matching the selector in `namespace`;
    pending Pods have none yet and are left out."""
    response = client.get(f"{CORE_V1_PATH}/namespaces/{namespace}/pods", labelSelector=label_selector)
    ips = ((pod.get("status") or {}).get("podIP") for pod in response.get("items") or [])
    return sorted({ip for ip in ips if ip})
