"""The memberlist Secret, as MetalLB's controller manages it: created once when missing, owned by the controller's
Deployment (so it goes with an uninstall), `secretkey` = 16 random bytes in unpadded base64 (22 characters)."""

from __future__ import annotations

import base64
import os

from metallb_fast.k8s.client import ApiError, Json, KubeClient
from metallb_fast.vocabulary import APPS_V1_PATH, CORE_V1_PATH

SECRET_KEY_FIELD = "secretkey"


def new_secret_key() -> str:
    return base64.b64encode(os.urandom(16)).decode().rstrip("=")


def ensure_memberlist_secret(client: KubeClient, namespace: str, name: str, deployment: str | None) -> bool:
    """Create Secret `name` unless it exists; True when this call created it. An existing Secret is never
    changed: the speakers (ours and MetalLB's) must keep agreeing on the key."""
    path = f"{CORE_V1_PATH}/namespaces/{namespace}/secrets"
    try:
        client.get(f"{path}/{name}")
        return False
    except ApiError as error:
        if error.status != 404:
            raise
    metadata: Json = {"name": name, "namespace": namespace}
    if deployment:
        owner = client.get(f"{APPS_V1_PATH}/namespaces/{namespace}/deployments/{deployment}")
        metadata["ownerReferences"] = [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
            "uid": (owner.get("metadata") or {}).get("uid", ""),
        }]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
              "data": {SECRET_KEY_FIELD: base64.b64encode(new_secret_key().encode()).decode()}}
    try:
        client.create(path, secret)
    except ApiError as error:
        if error.status == 409:  # created meanwhile (another controller replica during a rollout)
            return False
        raise
    return True
