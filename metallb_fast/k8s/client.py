"""A thin JSON transport over the `kubernetes` client's connection setup.

The official client gives us kubeconfig / in-cluster loading, TLS and token handling; its model classes are slow
and fail on some 1.20 responses, so every body here is raw JSON decoded with orjson.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3

from metallb_fast.k8s.connection import Connection, load

Json = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server; `status` is the HTTP code, `body` the decoded Status if any."""

    def __init__(self, method: str, path: str, status: int, body: Json | None) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body or {}
        super().__init__(f"{method} {path}: HTTP {status} {self.message}".rstrip())

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or "")

    @property
    def message(self) -> str:
        """The Status's message, else its reason ("" when the answer had no Status)."""
        return str(self.body.get("message") or self.reason)


class ApiUnavailable(ApiError):
    """The API server could not be reached or the connection broke (status 0): retry later."""

    def __init__(self, method: str, path: str, cause: Exception) -> None:
        super().__init__(method, path, 0, {"message": f"API server unreachable: {cause}"})


@dataclass
class KubeClient:
    connection: Connection

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None) -> KubeClient:
        """In-cluster config when no kubeconfig is given and we run in a pod, else the kubeconfig file."""
        return cls(load(kubeconfig))

    def _prepare(
        self, method: str, path: str, query: Mapping[str, Any] | None, content_type: str | None
    ) -> tuple[str, dict[str, str]]:
        headers = {"Accept": "application/json", **self.connection.headers()}
        if content_type:
            headers["Content-Type"] = content_type
        url = self.connection.server.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return url, headers

    def open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = 30.0,
    ) -> urllib3.BaseHTTPResponse:
        """Send a request and return the unread response (for watches); raises ApiError on non-2xx."""
        if body is not None and content_type is None:
            content_type = "application/json"
        url, headers = self._prepare(method, path, query, content_type)
        encoded = None if body is None else orjson.dumps(body)
        request_timeout: urllib3.Timeout | None
        if isinstance(timeout, tuple):
            request_timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        else:
            request_timeout = urllib3.Timeout(total=timeout) if timeout else None
        try:
            response = self.connection.pool.request(
                method, url, body=encoded, headers=headers, preload_content=False, timeout=request_timeout
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            # Callers handle one exception type: a lost server is an ApiError they retry, not a crash.
            raise ApiUnavailable(method, path, error) from error
        if response.status >= 300:
            raise ApiError(method, path, response.status, _decode_or_none(_read_all(response)))
        return response

    def request(self, method: str, path: str, **options: Any) -> Json:
        """`open` (same keyword options), with the whole body read and decoded: {} for an empty one."""
        response = self.open(method, path, **options)
        try:
            return _decode_or_none(_read_all(response)) or {}
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ApiUnavailable(method, path, error) from error

    def get(self, path: str, **query: Any) -> Json:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: Json) -> Json:
        return self.request("POST", path, body=body)

    def merge_patch(self, path: str, patch: Json) -> Json:
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    def json_patch(self, path: str, operations: list[Json]) -> Json:
        return self.request("PATCH", path, body=operations, content_type=JSON_PATCH)

    def put(self, path: str, body: Json) -> Json:
        return self.request("PUT", path, body=body)

    def delete(self, path: str) -> Json:
        return self.request("DELETE", path)

    def served(self, group_version_path: str) -> bool:
        """True when the server serves an API group version, e.g. "/apis/discovery.k8s.io/v1"."""
        try:
            self.get(group_version_path)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    def close(self) -> None:
        self.connection.close()


def _read_all(response: urllib3.BaseHTTPResponse) -> bytes:
    """The whole body; the connection goes back to the pool even when reading fails."""
    try:
        return response.read()
    finally:
        response.release_conn()


def _decode_or_none(data: bytes) -> Json | None:
    if not data:
        return None
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {"message": data[:200].decode("utf-8", "replace")}
    return decoded if isinstance(decoded, dict) else None


def iter_json_lines(response: urllib3.BaseHTTPResponse, chunk_size: int = 65536) -> Iterator[Json]:
    """Decode a watch stream: one JSON object per line, lines may span chunks."""
    pending = b""
    for chunk in response.stream(chunk_size, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
    if pending.strip():
        yield orjson.loads(pending)
