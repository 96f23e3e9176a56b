"""Real local receivers for notifications: one HTTP server recording every request, one SMTP server.

They run in background threads so a synchronous integration test can start them next to the real worker
and count exactly what reached each channel.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller


class _Smtp:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


class _EphemeralController(Controller):
    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Receivers:
    """HTTP on 127.0.0.1:<port>: /wecom, /dingtalk, /sms, /hook/<name>; all answer success."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.smtp = _Smtp()
        self._smtp = _EphemeralController(self.smtp, hostname="127.0.0.1", port=0)
        self._smtp.start()
        self.smtp_port = self._smtp.port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def handle(request: web.Request) -> web.Response:
            t = time.time()  # on arrival: the benchmark measures publish -> delivery with it
            raw = await request.read()
            with self._lock:
                self.requests.append({"t": t, "path": request.path, "query": dict(request.query),
                                      "headers": dict(request.headers), "json": orjson.loads(raw) if raw else None})
            return web.json_response({"errcode": 0, "errmsg": "ok", "code": 0})

        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def timed(self) -> list[tuple[float, str, Any]]:
        """(arrival wall time, path, JSON body) of every request so far."""
        with self._lock:
            return [(r["t"], r["path"], r["json"]) for r in self.requests]

    def hits(self, path_prefix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].startswith(path_prefix)]

    def close(self) -> None:
        self._smtp.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def notify_yaml(self) -> str:
        """A notify config pointing every channel of the example city here (secrets from env, see SECRETS)."""
        wecom = "\n".join(f"    E0{i}: {{key_env: HW_WECOM_KEY_E0{i}}}" for i in range(1, 9))
        ding = "\n".join(f"    {r}: {{token_env: HW_DT_TOKEN, secret_env: HW_DT_SECRET}}" for r in
                         ("D01", "D02", "D03", "city"))
        return f"""timeout_s: 5
webhook:
  endpoints:
    command-centre: {{url: "{self.url}/hook/command-centre", secret_env: HW_WEBHOOK_SECRET}}
email: {{host: 127.0.0.1, port: {self.smtp_port}, sender: "hazardwatch <alerts@linjiang.example>"}}
sms: {{url: "{self.url}/sms", sign: 临江应急, api_key_env: HW_SMS_API_KEY}}
wecom:
  url: "{self.url}/wecom"
  robots:
{wecom}
dingtalk:
  url: "{self.url}/dingtalk"
  robots:
{ding}
retry: {{attempts: 2, base_s: 0.2, factor: 2, cap_s: 1, jitter: false}}
fallback: {{wecom: sms, dingtalk: sms, webhook: email}}
"""


SECRETS = {"HW_WEBHOOK_SECRET": "test-hmac", "HW_SMS_API_KEY": "test-sms", "HW_DT_TOKEN": "test-token",
           "HW_DT_SECRET": "SECtest", **{f"HW_WECOM_KEY_E0{i}": f"test-wecom-{i}" for i in range(1, 9)}}
