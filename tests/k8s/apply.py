"""Server-side dry-run apply of manifest files, as a user would `kubectl apply` them."""

from __future__ import annotations

from pathlib import Path

import yaml

from metallb_fast.testing.kubeenv import KubeEnv


def namespaces_used(path: Path) -> set[str]:
    """Namespaces the file's objects live in (a dry run cannot create them, so they must exist beforehand)."""
    out = set()
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict):
            namespace = (doc.get("metadata") or {}).get("namespace")
            if namespace:
                out.add(namespace)
    return out


def ensure_namespaces(env: KubeEnv, names: set[str]) -> None:
    existing = set(env.kubectl("get", "namespaces", "-o", "name").stdout.split())
    for name in sorted(names - {n.split("/", 1)[1] for n in existing}):
        env.kubectl("create", "namespace", name, "--save-config")


def dry_run_apply(env: KubeEnv, path: Path, namespace: str | None = None) -> str:
    """`kubectl apply --dry-run=server -f path`: the server validates every object (schemas, defaults, admission)
    without storing it. Objects without a namespace go to `namespace` (default: "default")."""
    ensure_namespaces(env, namespaces_used(path))
    args = ["apply", "--dry-run=server", "-f", str(path)]
    if namespace:
        args += ["-n", namespace]
    return env.kubectl(*args).stdout
