"""`/healthz`, `/readyz` and `/metrics` for a process that is not an HTTP service (consumers, workers)."""

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shared.metrics import render_metrics

#: Each dependency's name and whether it is usable right now.
Readiness = Callable[[], Mapping[str, bool]]


def serve_probes(port: int, readiness: Readiness) -> ThreadingHTTPServer:
    """Answer probes on `port` from a daemon thread; `/readyz` is 503 while any dependency is not usable."""

    class Probes(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, b'{"status": "ok"}', "application/json")
            elif self.path == "/readyz":
                checks = readiness()
                body = {name: "ok" if usable else "unavailable" for name, usable in checks.items()}
                self._reply(200 if all(checks.values()) else 503, json.dumps(body).encode(), "application/json")
            elif self.path == "/metrics":
                self._reply(200, *render_metrics())
            else:
                self._reply(404, b'{"status": 404}', "application/json")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes are polled every few seconds: no access log."""

    server = ThreadingHTTPServer(("0.0.0.0", port), Probes)
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
