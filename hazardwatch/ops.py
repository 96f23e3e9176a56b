"""The operations endpoints every hazardwatch process serves: /metrics, /healthz, /readyz.

Liveness is an event-loop heartbeat, not "the HTTP thread answers": a worker whose loop is stuck in a long call
still answers HTTP from this thread, yet it evaluates nothing, so only a beat the loop itself sets proves it
alive. Readiness is a set of named checks the service flips as it connects (MQTT subscribed, Kafka producer up,
partitions assigned and tables recovered); an orchestrator sends no traffic and a rollout waits until all pass.

The bridge and the worker run a small threaded HTTP server (their event loops are busy with NumPy batches, and a
scrape must never queue behind one); the console, already an aiohttp app, mounts the same handlers.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

STALL_S = 30.0  # a loop silent this long is dead for all practical purposes: restart it


class Ops:
    """Health state of one process. Checks are set from the event loop and read from the HTTP thread."""

    def __init__(self, service: str, registry: CollectorRegistry, checks: tuple[str, ...] = (),
                 stall_s: float = STALL_S):
        self.service = service
        self.registry = registry
        self.stall_s = stall_s
        self.started = time.monotonic()
        self.last_beat = time.monotonic()
        self._checks: dict[str, str | None] = {name: "not yet" for name in checks}
        self._lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # ---- set from the service ---------------------------------------------------------------------------
    def ready(self, check: str, ok: bool = True, why: str = "") -> None:
        with self._lock:
            self._checks[check] = None if ok else (why or "failing")

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    async def heartbeat(self, every_s: float = 1.0) -> None:
        """Run as a task on the service's loop: the beat stops when the loop stops turning."""
        while True:
            self.beat()
            await asyncio.sleep(every_s)

    # ---- read by probes -----------------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        silent = time.monotonic() - self.last_beat
        ok = silent < self.stall_s
        return (200 if ok else 503), {"service": self.service, "status": "ok" if ok else "stalled",
                                      "loop_silent_s": round(silent, 3),
                                      "uptime_s": round(time.monotonic() - self.started, 1)}

    def readiness(self) -> tuple[int, dict[str, Any]]:
        with self._lock:
            failing = {k: v for k, v in self._checks.items() if v is not None}
        code, body = self.health()
        if code != 200:
            failing["event_loop"] = body["status"]
        return (200 if not failing else 503), {"service": self.service, "ready": not failing, "failing": failing}

    def metrics(self) -> bytes:
        return generate_latest(self.registry)

    # ---- serving -----------------------------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Start the threaded server; returns the bound port (port 0 picks a free one, for tests and sandboxes)."""
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, ops.metrics(), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    code, body = ops.health() if path == "/healthz" else ops.readiness()
                    self._send(code, json.dumps(body, ensure_ascii=False).encode(), "application/json")
                else:
                    self._send(404, b'{"error": "try /metrics, /healthz or /readyz"}', "application/json")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a scrape every 15 s must not fill the service's log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name=f"{self.service}-ops", daemon=True).start()
        return int(self.server.server_address[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def start_ops(service: str, registry: CollectorRegistry, host: str, port: int,
              checks: tuple[str, ...] = ()) -> Ops:
    """Serve the ops endpoints and say where, so an operator (and the tests) can find a port picked at random."""
    from hazardwatch.logs import get_logger

    ops = Ops(service, registry, checks)
    bound = ops.serve(host, port)
    get_logger(service).info(f"{service}: ops endpoints on http://{host}:{bound} (/metrics /healthz /readyz)",
                             extra={"ops_port": bound})
    return ops
