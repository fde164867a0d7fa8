"""The kubeconfig and in-cluster loader: every credential form a controller or speaker meets, errors named."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from metallb_fast.k8s import connection
from metallb_fast.k8s.connection import KubeconfigError


def kubeconfig(tmp_path: Path, user: dict, cluster: dict | None = None) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": cluster or {"server": "https://192.0.2.1:6443"}}],
        "users": [{"name": "u", "user": user}],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_token_user(tmp_path: Path) -> None:
    found = connection.from_kubeconfig(kubeconfig(tmp_path, {"token": "abc"}))
    assert found.server == "https://192.0.2.1:6443"
    assert found.headers() == {"Authorization": "Bearer abc"}


def test_a_token_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file\n")
    found = connection.from_kubeconfig(kubeconfig(tmp_path, {"tokenFile": "tok"}))
    assert found.headers() == {"Authorization": "Bearer from-file"}


def test_certificate_data_becomes_private_files(tmp_path: Path) -> None:
    cluster = {"server": "https://192.0.2.1:6443", "certificate-authority-data": base64.b64encode(b"CA").decode()}
    user = {"client-certificate-data": base64.b64encode(b"CERT").decode(), "client-key": "key.pem"}
    found = connection.from_kubeconfig(kubeconfig(tmp_path, user, cluster))
    options = found.pool.connection_pool_kw
    assert Path(options["ca_certs"]).read_bytes() == b"CA"
    assert Path(options["cert_file"]).read_bytes() == b"CERT"
    assert Path(options["cert_file"]).stat().st_mode & 0o077 == 0
    assert options["key_file"] == str(tmp_path / "key.pem")
    assert options["cert_reqs"] == "CERT_REQUIRED"


def test_insecure_and_basic_auth(tmp_path: Path) -> None:
    cluster = {"server": "https://192.0.2.1:6443", "insecure-skip-tls-verify": True}
    found = connection.from_kubeconfig(kubeconfig(tmp_path, {"username": "a", "password": "b"}, cluster))
    assert found.pool.connection_pool_kw["cert_reqs"] == "CERT_NONE"
    assert found.headers()["authorization"] == "Basic " + base64.b64encode(b"a:b").decode()


@pytest.mark.parametrize(
    ("user", "cluster", "message"),
    [
        ({"token": "x"}, {"certificate-authority": "ca"}, "has no server"),
        ({"token": "x"}, {"server": "https://192.0.2.1", "certificate-authority-data": "%%%"}, "not base64"),
    ],
)
def test_unusable_fields_are_named(tmp_path: Path, user: dict, cluster: dict, message: str) -> None:
    with pytest.raises(KubeconfigError, match=message):
        connection.from_kubeconfig(kubeconfig(tmp_path, user, cluster))


def test_a_missing_context_is_named(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "x"})
    path.write_text(path.read_text().replace("current-context: c", "current-context: other"))
    with pytest.raises(KubeconfigError, match="no context named 'other'"):
        connection.from_kubeconfig(path)


def test_in_cluster_rereads_the_rotated_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("first")
    (tmp_path / "ca.crt").write_text("CA")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "2001:db8::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(connection, "TOKEN_REREAD_S", 0.0)
    found = connection.in_cluster(tmp_path)
    assert found.server == "https://[2001:db8::1]:443"
    assert found.headers() == {"Authorization": "Bearer first"}
    (tmp_path / "token").write_text("rotated")
    assert found.headers() == {"Authorization": "Bearer rotated"}
