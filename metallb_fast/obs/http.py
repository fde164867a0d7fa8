"""The programs' HTTP endpoint: /metrics (Prometheus), /healthz (liveness), /readyz (readiness); 404 elsewhere.

prometheus_client's own server answers every path with the metrics, so a probe of /healthz would always pass;
this one answers each path for what it is. Bound where the caller says (the speaker: the host IP, METALLB_HOST, as
MetalLB binds it), on a daemon thread.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from metallb_fast.obs.health import Health, Verdict
from metallb_fast.obs.metrics import REGISTRY


class _Handler(BaseHTTPRequestHandler):
    health: Health  # set on the subclass made per server

    def do_GET(self) -> None:  # http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._verdict(self.health.liveness())
        elif path == "/readyz":
            self._verdict(self.health.readiness())
        else:
            self._send(404, b"not found: /metrics, /healthz, /readyz\n", "text/plain; charset=utf-8")

    def _verdict(self, verdict: Verdict) -> None:
        body = f"{'ok' if verdict.ok else 'failed'}: {verdict.reason}\n".encode()
        self._send(200 if verdict.ok else 503, body, "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # probed every few seconds: no log line each time


def serve(port: int, host: str, health: Health) -> ThreadingHTTPServer:
    """Start serving on (host, port) on a daemon thread; the server is returned so a test can close it."""
    handler = type("Handler", (_Handler,), {"health": health})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
