"""Desired ServiceL2Status objects and the speaker's Service events, as pure values.

Shapes follow MetalLB (internal/k8s/controllers/layer2_status_controller.go and the servicel2statuses CRD):
one ServiceL2Status per announced Service, in the speaker's namespace, named by generateName "l2-", labelled
with node / service name / service namespace; `status.interfaces` only when not every interface is used.
Unlike MetalLB, `nodeAssigned` is emitted when this node starts announcing a Service, not on every reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from metallb_fast import vocabulary
from metallb_fast.resources import Service
from metallb_fast.vocabulary import IPAddress

API_VERSION = vocabulary.API_VERSION_V1BETA1
KIND = "ServiceL2Status"
LABEL_NODE = vocabulary.LABEL_STATUS_NODE
LABEL_SERVICE_NAME = vocabulary.LABEL_STATUS_SERVICE_NAME
LABEL_SERVICE_NAMESPACE = vocabulary.LABEL_STATUS_SERVICE_NAMESPACE
DEFAULT_NAMESPACE = vocabulary.DEFAULT_NAMESPACE
PROTOCOL = "layer2"


@dataclass(frozen=True)
class ServiceEvent:
    """A core/v1 Event about a Service, before the writer adds timestamps and source."""

    namespace: str
    service_name: str
    service_uid: str
    type: str  # "Normal" | "Warning"
    reason: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        involved: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Service",
            "namespace": self.namespace,
            "name": self.service_name,
        }
        if self.service_uid:
            involved["uid"] = self.service_uid
        return {"type": self.type, "reason": self.reason, "message": self.message, "involvedObject": involved}


def _event(service: Service, type_: str, reason: str, message: str) -> ServiceEvent:
    return ServiceEvent(
        namespace=service.namespace,
        service_name=service.name,
        service_uid=service.uid,
        type=type_,
        reason=reason,
        message=message,
    )


def node_assigned_event(service: Service, node_name: str) -> ServiceEvent:
    return _event(
        service, "Normal", "nodeAssigned", f'announcing from node "{node_name}" with protocol "{PROTOCOL}"'
    )


def announce_failed_event(service: Service, ip: IPAddress, node_name: str) -> ServiceEvent:
    # MetalLB's wording, grammar included, so existing alerts keyed on the message keep matching.
    return _event(
        service,
        "Warning",
        "announceFailed",
        f'the interfaces specified by LB IP "{ip}" doesn\'t exist in assigned node "{node_name}" '
        f'with protocol "{PROTOCOL}"',
    )


def node_assigned_events(
    previously_announced: Set[str], announced: Iterable[Service], node_name: str
) -> tuple[ServiceEvent, ...]:
    """nodeAssigned for each Service this node announces now but did not on the previous reconcile."""
    return tuple(node_assigned_event(s, node_name) for s in announced if s.key not in previously_announced)


def desired_l2_status(
    service: Service,
    node_name: str,
    interfaces: Sequence[str],
    namespace: str = DEFAULT_NAMESPACE,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ServiceL2Status this node wants for an announced Service. `interfaces` empty = every interface.

    owner: the speaker Pod's ownerReference (MetalLB sets one so statuses vanish with the Pod).
    """
    metadata: dict[str, Any] = {
        "generateName": "l2-",
        "namespace": namespace,
        "labels": {
            LABEL_NODE: node_name,
            LABEL_SERVICE_NAME: service.name,
            LABEL_SERVICE_NAMESPACE: service.namespace,
        },
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    status: dict[str, Any] = {
        "node": node_name,
        "serviceName": service.name,
        "serviceNamespace": service.namespace,
    }
    if interfaces:
        status["interfaces"] = [{"name": name} for name in sorted(interfaces)]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "status": status}
