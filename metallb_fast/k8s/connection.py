"""Where the API server is and how to authenticate: the in-cluster service account, or a kubeconfig file.

Read here rather than through the kubernetes package, whose import alone (every generated model class) costs each
program about 12 MiB of resident memory for the four fields we use. The kubeconfig forms a speaker or a controller
meets are read here: server, certificate authority (file or data), insecure-skip-tls-verify, tls-server-name, and a
bearer token (inline or tokenFile), a client certificate and key (files or data), or basic auth. A user that
authenticates through an `exec` plugin or an `auth-provider` is handed to the kubernetes package, which runs those.
The in-cluster token file is read again every minute: Kubernetes rotates bound service-account tokens.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_S = 60.0


class KubeconfigError(ValueError):
    """The kubeconfig or the in-cluster environment cannot be used; the message says which field."""


@dataclass
class Connection:
    """An API server endpoint and its credentials: `headers()` for each request, `pool` to send it."""

    server: str
    pool: urllib3.PoolManager
    _auth: Callable[[], dict[str, str]] = field(default=lambda: {})

    def headers(self) -> dict[str, str]:
        return self._auth()

    def close(self) -> None:
        self.pool.clear()


def load(kubeconfig: str | None = None) -> Connection:
    """The kubeconfig when given; else in-cluster when in a pod; else $KUBECONFIG or ~/.kube/config."""
    if kubeconfig:
        return from_kubeconfig(Path(kubeconfig))
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT / "token").is_file():
        return in_cluster()
    default = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
    return from_kubeconfig(Path(default))


def in_cluster(account: Path = SERVICE_ACCOUNT) -> Connection:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise KubeconfigError("in-cluster: KUBERNETES_SERVICE_HOST is not set")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    pool = urllib3.PoolManager(maxsize=16, cert_reqs="CERT_REQUIRED", ca_certs=str(account / "ca.crt"))
    return Connection(server, pool, _rereading_token(account / "token"))


def _rereading_token(path: Path) -> Callable[[], dict[str, str]]:
    lock = threading.Lock()
    cached: list[Any] = [None, -1e9]

    def auth() -> dict[str, str]:
        with lock:
            if time.monotonic() - cached[1] >= TOKEN_REREAD_S:
                cached[0], cached[1] = path.read_text().strip(), time.monotonic()
            return {"Authorization": f"Bearer {cached[0]}"}

    return auth


def from_kubeconfig(path: Path) -> Connection:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise KubeconfigError(f"kubeconfig {path}: {error}") from error
    if not isinstance(document, dict):
        raise KubeconfigError(f"kubeconfig {path}: not a kubeconfig document")
    context_name = document.get("current-context")
    context = _named(document, "contexts", context_name, path).get("context") or {}
    cluster = _named(document, "clusters", context.get("cluster"), path).get("cluster") or {}
    user = _named(document, "users", context.get("user"), path).get("user") or {}
    if "exec" in user or "auth-provider" in user:
        return _through_kubernetes_package(path)
    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"kubeconfig {path}: cluster {context.get('cluster')!r} has no server")
    base = path.parent
    secrets = _SecretFiles()
    pool_options: dict[str, Any] = {"maxsize": 16}
    if server.startswith("https"):
        if cluster.get("insecure-skip-tls-verify"):
            pool_options["cert_reqs"] = "CERT_NONE"
        else:
            pool_options["cert_reqs"] = "CERT_REQUIRED"
            ca = _file_or_data(cluster, "certificate-authority", base, secrets, path)
            if ca is not None:
                pool_options["ca_certs"] = ca
        if cluster.get("tls-server-name"):
            pool_options["server_hostname"] = cluster["tls-server-name"]
        cert = _file_or_data(user, "client-certificate", base, secrets, path)
        key = _file_or_data(user, "client-key", base, secrets, path)
        if cert is not None:
            pool_options.update(cert_file=cert, key_file=key)
    headers: dict[str, str] = {}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    elif user.get("tokenFile"):
        token_path = Path(user["tokenFile"])
        return Connection(
            server,
            urllib3.PoolManager(**pool_options),
            _rereading_token(token_path if token_path.is_absolute() else base / token_path),
        )
    elif user.get("username"):
        headers.update(urllib3.make_headers(basic_auth=f"{user['username']}:{user.get('password') or ''}"))
    pool = urllib3.PoolManager(**pool_options)
    return Connection(server, pool, lambda: dict(headers))


def _named(document: Mapping[str, Any], section: str, name: Any, path: Path) -> Mapping[str, Any]:
    for entry in document.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    raise KubeconfigError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")


class _SecretFiles:
    """Base64 data fields become files (urllib3 loads certificates from paths), private to this process."""

    def __init__(self) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def write(self, name: str, data: bytes) -> str:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="metallb-fast-kubeconfig-")
            _keep_alive.append(self._dir)
        target = Path(self._dir.name) / name
        target.touch(mode=0o600)
        target.write_bytes(data)
        return str(target)


_keep_alive: list[tempfile.TemporaryDirectory[str]] = []  # removed when the process exits


def _file_or_data(
    section: Mapping[str, Any], field_name: str, base: Path, secrets: _SecretFiles, path: Path
) -> str | None:
    data = section.get(f"{field_name}-data")
    if data:
        try:
            return secrets.write(field_name, base64.b64decode(data, validate=True))
        except ValueError as error:
            raise KubeconfigError(f"kubeconfig {path}: {field_name}-data is not base64: {error}") from error
    named = section.get(field_name)
    if named:
        file = Path(named)
        return str(file if file.is_absolute() else base / file)
    return None


def _through_kubernetes_package(path: Path) -> Connection:
    """exec plugins and auth providers: the kubernetes package runs them and refreshes their credentials."""
    try:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
    except ImportError as error:  # the image leaves it out: in-cluster Pods use their ServiceAccount token
        raise KubeconfigError(
            f"kubeconfig {path}: its user runs an exec plugin or an auth provider, which needs the `kubernetes` "
            f"Python package ({error}); install it (pip install kubernetes) or use a token or client certificate"
        ) from error

    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    api = k8s_client.ApiClient(configuration)

    def auth() -> dict[str, str]:
        _, _, headers, _, _ = api.param_serialize("GET", "/", header_params={}, auth_settings=["BearerToken"])
        return {k: v for k, v in headers.items() if k.lower() == "authorization"}

    return Connection(configuration.host, api.rest_client.pool_manager, auth)
