"""Kubernetes Events the controller emits on a Service, with MetalLB's reasons (controller/service.go, main.go).

MetalLB's client.Infof records a Normal event and client.Errorf a Warning one; the reason strings below are the
`desc` arguments MetalLB passes, spelled exactly as it does (some are not CamelCase).
"""

from __future__ import annotations

from dataclasses import dataclass

NORMAL = "Normal"
WARNING = "Warning"

IP_ALLOCATED = "IPAllocated"
ALLOCATION_FAILED = "AllocationFailed"
CLEAR_ASSIGNMENT = "ClearAssignment"
ADDITIONAL_ASSIGN_FAILED = "AdditionalAssignFailed"
LOAD_BALANCER_FAILED = "LoadBalancerFailed"
DEPRECATED_ANNOTATION = "deprecatedAnnotation"
NOT_ENOUGH_CLUSTER_IPS = "not enough clusterips"
NO_LB_IPS_FAMILY = "nolbIPsIPFamily"
NO_CLUSTER_IPS_FAMILY = "noclusterIPsIPFamily"
INTERNAL_ERROR = "InternalError"


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "reason": self.reason, "message": self.message}


def normal(reason: str, message: str) -> Event:
    return Event(NORMAL, reason, message)


def warning(reason: str, message: str) -> Event:
    return Event(WARNING, reason, message)
