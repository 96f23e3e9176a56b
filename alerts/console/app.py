"""The duty console web application: login, scoped alert queue, live pushes, commands, map data and trends.

Every API call resolves the session to a user and checks scope against the registry itself (never against what
the browser says); every pushed message is checked again before it is written. An alert outside the user's scope
answers 404, as if it did not exist. Commands are only checked and forwarded here: the alert manager re-checks
them and announces the outcome on alert-events, which is how the queue learns what happened.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from alerts.console.board import AlertBoard
from alerts.console.users import (
    User,
    can_see_alert,
    can_see_sensor,
    can_see_source,
    check_login,
)
from alerts.model import CATEGORIES, COMMANDS, SOURCE_COMMANDS, STATE_NAMES, TIER_NAMES, TIERS
from hazardwatch.metrics import ConsoleMetrics
from hazardwatch.ops import Ops
from hazardwatch.registry import LEVEL_NAMES, Registry

SendCommand = Callable[[dict[str, Any]], Awaitable[None]]
Trend = Callable[[str, int, int], Awaitable[list[tuple[int, float]]]]

COOKIE = "hw_console"
SESSION_IDLE_MS = 12 * 3600 * 1000  # one shift without any request
LOGIN_WINDOW_MS = 5 * 60 * 1000
LOGIN_MAX_FAILURES = 5
SHELVE_MIN_S, SHELVE_MAX_S = 60.0, 8 * 3600.0  # a shelf outlasting a shift would hide the alarm from the next one
HEARTBEAT_S = 15.0
TREND_MAX_MINUTES = 7 * 24 * 60
MAX_TEXT = 1000
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _error(status: int, zh: str, en: str, headers: Mapping[str, str] | None = None) -> web.HTTPException:
    """An HTTP error with a bilingual reason, raised so no handler can forget to stop after a failed check."""
    cls = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
           429: web.HTTPTooManyRequests, 503: web.HTTPServiceUnavailable}[status]
    return cls(text=_dumps({"error": {"zh": zh, "en": en}}), content_type="application/json", headers=headers)


# ---- sessions and login throttling (in memory: a console restart logs everybody out, which is acceptable) ----
@dataclass
class Session:
    id: str
    user: str
    csrf: str
    seen_ms: int


class Sessions:
    def __init__(self, now_ms: Callable[[], int], idle_ms: int = SESSION_IDLE_MS):
        self.now_ms = now_ms
        self.idle_ms = idle_ms
        self._by_id: dict[str, Session] = {}

    def create(self, user: str) -> Session:
        self._expire()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), self.now_ms())
        self._by_id[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        s = self._by_id.get(sid or "")
        now = self.now_ms()
        if s is None or now - s.seen_ms > self.idle_ms:
            self._by_id.pop(sid or "", None)
            return None
        s.seen_ms = now
        return s

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def _expire(self) -> None:
        now = self.now_ms()
        for sid in [k for k, s in self._by_id.items() if now - s.seen_ms > self.idle_ms]:
            del self._by_id[sid]


class LoginLimiter:
    """At most max_failures failed logins per user name and per client address within window_ms."""

    def __init__(self, now_ms: Callable[[], int], max_failures: int = LOGIN_MAX_FAILURES,
                 window_ms: int = LOGIN_WINDOW_MS):
        self.now_ms = now_ms
        self.max_failures = max_failures
        self.window_ms = window_ms
        self._fails: dict[tuple[str, str], deque[int]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[int]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        cutoff = self.now_ms() - self.window_ms
        while q and q[0] <= cutoff:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after_s(self, user: str, ip: str) -> int:
        """0 when a login may be tried; otherwise seconds until the oldest counted failure ages out."""
        wait = 0
        for key in (("user", user), ("ip", ip)):
            q = self._recent(key)
            if len(q) >= self.max_failures:
                wait = max(wait, math.ceil((q[-self.max_failures] + self.window_ms - self.now_ms()) / 1000), 1)
        return wait

    def failed(self, user: str, ip: str) -> None:
        now = self.now_ms()
        for key in (("user", user), ("ip", ip)):
            self._recent(key)
            self._fails.setdefault(key, deque()).append(now)

    def succeeded(self, user: str) -> None:
        self._fails.pop(("user", user), None)


# ---- the application ----------------------------------------------------------------------------------------
class Console:
    def __init__(self, registry: Registry, users: Mapping[str, User], board: AlertBoard, send_command: SendCommand,
                 trend: Trend, now_ms: Callable[[], int], secure_cookies: bool):
        self.reg = registry
        self.users = users
        self.board = board
        self.send_command = send_command
        self.trend = trend
        self.now_ms = now_ms
        self.secure_cookies = secure_cookies
        self.sessions = Sessions(now_ms)
        self.limiter = LoginLimiter(now_ms)
        self.static = {name: (STATIC / name).read_bytes() for name in ("index.html", "console.js", "console.css")}

    # ---- checks shared by every API call ----
    def auth(self, request: web.Request) -> tuple[Session, User]:
        s = self.sessions.get(request.cookies.get(COOKIE))
        user = self.users.get(s.user) if s else None
        if s is None or user is None:
            raise _error(401, "未登录或会话已过期，请重新登录", "not logged in or session expired; log in again")
        return s, user

    def auth_post(self, request: web.Request) -> tuple[Session, User]:
        s, user = self.auth(request)
        token = request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(token.encode(), s.csrf.encode()):
            raise _error(403, "缺少或错误的 CSRF 令牌，请刷新页面", "missing or wrong CSRF token; reload the page")
        return s, user

    # ---- pages ----
    async def page(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        ctype = {"html": "text/html", "js": "text/javascript", "css": "text/css"}[name.rsplit(".", 1)[1]]
        return web.Response(body=self.static[name], content_type=ctype, charset="utf-8")

    async def login(self, request: web.Request) -> web.Response:
        form = request.content_type != "application/json"
        try:
            body = dict(await request.post()) if form else await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _error(400, "请求格式错误", "malformed request")
        name = str(body.get("user") or "")[:64]
        pw = str(body.get("password") or "")[:256]
        ip = request.remote or "unknown"
        wait = self.limiter.retry_after_s(name, ip)
        if wait:
            raise _error(429, f"登录失败次数过多，请 {wait} 秒后再试", f"too many failed logins; retry in {wait} s",
                         headers={"Retry-After": str(wait)})
        # scrypt takes ~50 ms: off the event loop so live pushes keep flowing while someone logs in.
        user = await asyncio.get_running_loop().run_in_executor(None, check_login, self.users, name, pw)
        if user is None:
            self.limiter.failed(name, ip)
            raise _error(401, "用户名或密码错误", "wrong user name or password")
        self.limiter.succeeded(name)
        self.sessions.drop(request.cookies.get(COOKIE))  # a fresh id on every login: no session fixation
        s = self.sessions.create(user.name)
        # A plain form post (no JavaScript) lands on the page; the app itself posts JSON and reads the token.
        resp = web.Response(status=303, headers={"Location": "/"}) if form else _json({"user": user.name,
                                                                                      "csrf": s.csrf})
        resp.set_cookie(COOKIE, s.id, httponly=True, samesite="Strict", secure=self.secure_cookies, path="/")
        return resp

    async def logout(self, request: web.Request) -> web.Response:
        s, _ = self.auth_post(request)
        self.sessions.drop(s.id)
        resp = _json({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    # ---- reads ----
    def _scope_names(self, user: User) -> dict[str, str | None]:
        d = self.reg.districts.get(user.scope or "")
        e = self.reg.enterprises.get(user.scope or "")
        if d:
            return {"zh": d.name_zh, "en": d.name_en}
        if e:
            return {"zh": e.name_zh, "en": e.name_en}
        return {"zh": self.reg.city_zh, "en": self.reg.city_en}

    async def me(self, request: web.Request) -> web.Response:
        s, user = self.auth(request)
        return _json({
            "user": user.name, "display_name": user.display_name, "role": user.role, "scope": user.scope,
            "scope_name": self._scope_names(user), "permissions": sorted(user.permissions), "csrf": s.csrf,
            "server_ms": self.now_ms(), "city": {"zh": self.reg.city_zh, "en": self.reg.city_en},
            "commands": COMMANDS, "shelve_s": [SHELVE_MIN_S, SHELVE_MAX_S],
            "names": {"states": STATE_NAMES, "tiers": TIER_NAMES, "tier_order": TIERS, "categories": CATEGORIES,
                      "levels": {str(k): v for k, v in LEVEL_NAMES.items()}},
        })

    def _snapshot(self, user: User) -> dict[str, Any]:
        return {"alerts": self.board.visible(user), "floods": self.board.floods(user),
                "levels": self.board.source_levels(user), "server_ms": self.now_ms()}

    async def alerts(self, request: web.Request) -> web.Response:
        _, user = self.auth(request)
        return _json(self._snapshot(user))

    def _visible_alert(self, user: User, alert_id: str) -> dict[str, Any]:
        alert = self.board.get(alert_id)
        if alert is None or not can_see_alert(user, self.reg, alert):
            raise _error(404, "报警不存在", "no such alert")
        return alert

    async def alert(self, request: web.Request) -> web.Response:
        _, user = self.auth(request)
        alert = self._visible_alert(user, request.match_info["alert_id"])
        return _json({"alert": alert, "timeline": self.board.timeline(alert["alert_id"])})

    async def sources(self, request: web.Request) -> web.Response:
        _, user = self.auth(request)
        levels = self.board.source_levels(user)
        out = []
        for sid in levels:
            src = self.reg.sources[sid]
            ent = self.reg.enterprises[src.enterprise]
            dist = self.reg.districts[ent.district]
            sensors = [{"id": x, "name_zh": self.reg.sensors[x].name_zh, "name_en": self.reg.sensors[x].name_en,
                        "kind": self.reg.sensors[x].kind, "unit": self.reg.sensors[x].unit} for x in src.sensors]
            out.append({"id": sid, "name_zh": src.name_zh, "name_en": src.name_en, "kind": src.kind,
                        "lat": src.lat, "lon": src.lon, "grade": src.grade, "level": levels[sid],
                        "enterprise": ent.id, "enterprise_zh": ent.name_zh, "enterprise_en": ent.name_en,
                        "district": dist.id, "district_zh": dist.name_zh, "district_en": dist.name_en,
                        "sensors": sensors})
        return _json({"sources": out})

    async def trend_points(self, request: web.Request) -> web.Response:
        _, user = self.auth(request)
        sensor = request.query.get("sensor", "")
        try:
            minutes = int(request.query.get("minutes", "60"))
        except ValueError:
            minutes = -1
        if not 1 <= minutes <= TREND_MAX_MINUTES:
            raise _error(400, f"minutes 须在 1..{TREND_MAX_MINUTES} 之间", f"minutes must be 1..{TREND_MAX_MINUTES}")
        if sensor not in self.reg.sensors:
            raise _error(404, "传感器不存在", "no such sensor")
        if not can_see_sensor(user, self.reg, sensor):
            raise _error(403, "无权查看该传感器", "this sensor is outside your scope")
        stop = self.now_ms()
        start = stop - minutes * 60_000
        try:
            points = await self.trend(sensor, start, stop)
        except Exception as exc:  # InfluxDB down: the queue must keep working, the chart says why it is empty
            raise _error(503, "趋势数据暂不可用（时序数据库无响应）",
                         f"trend data unavailable (InfluxDB: {type(exc).__name__})") from None
        s = self.reg.sensors[sensor]
        return _json({"sensor": sensor, "name_zh": s.name_zh, "name_en": s.name_en, "unit": s.unit,
                      "range": list(s.range), "start_ms": start, "stop_ms": stop,
                      "limits": [{"name": lim.name, "value": lim.value, "level": lim.level} for lim in s.limits],
                      "points": [[int(t), float(v)] for t, v in points]})

    # ---- live stream ----
    def _pushable(self, user: User, msg: dict[str, Any]) -> bool:
        """The second scope check, on the very message about to be written."""
        if msg.get("type") == "flood":
            return can_see_alert(user, self.reg, msg.get("flood") or {})
        if msg.get("type") == "event":
            items = [msg.get("event") or {}] + ([msg["alert"]] if msg.get("alert") else [])
            return all(can_see_alert(user, self.reg, i) for i in items)
        return False

    async def events(self, request: web.Request) -> web.StreamResponse:
        s, user = self.auth(request)
        queue = self.board.subscribe(user)  # before the snapshot, so nothing falls between the two
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "X-Accel-Buffering": "no"})
        try:
            await resp.prepare(request)
            await _sse(resp, "snapshot", self._snapshot(user))
            while True:
                try:
                    msg: dict[str, Any] | None = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    msg = None
                if self.sessions.get(s.id) is None or self.users.get(user.name) is not user:
                    await _sse(resp, "logout", {})
                    break
                if msg is None:
                    await _sse(resp, "ping", {"server_ms": self.now_ms()})
                elif msg["type"] == "close":
                    break
                elif msg["type"] == "resync":
                    await _sse(resp, "snapshot", self._snapshot(user))
                elif self._pushable(user, msg):
                    await _sse(resp, msg["type"], {**msg, "server_ms": self.now_ms()})
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            self.board.unsubscribe(queue)
        return resp

    # ---- commands ----
    def _command(self, user: User, action: str, alert_id: str | None, source: str,
                 body: dict[str, Any]) -> dict[str, Any]:
        return {"command_id": uuid.uuid4().hex, "action": action, "alert_id": alert_id, "source": source,
                "user": user.name, "role": user.role, "reason": body["reason"], "duration_s": body["duration_s"],
                "authorised_by": body["authorised_by"], "ts_ms": self.now_ms()}

    async def _forward(self, cmd: dict[str, Any]) -> web.Response:
        try:
            await self.send_command(cmd)
        except Exception as exc:  # Kafka unreachable: say so, the officer must not believe it was done
            raise _error(503, "指令未送达，请重试或电话联系", f"command not delivered ({type(exc).__name__}); retry or "
                         "phone") from None
        return _json({"command_id": cmd["command_id"]}, status=202)

    def _permit(self, user: User, action: str) -> None:
        if COMMANDS[action] not in user.permissions:
            raise _error(403, "您没有执行该操作的权限", f"you are not permitted to {action}")

    async def alert_command(self, request: web.Request) -> web.Response:
        _, user = self.auth_post(request)
        action = request.match_info["action"]
        if action not in COMMANDS or action in SOURCE_COMMANDS:
            raise _error(404, "未知操作", f"unknown action {action!r}")
        alert = self._visible_alert(user, request.match_info["alert_id"])
        self._permit(user, action)
        body = await _command_body(request, action, user)
        return await self._forward(self._command(user, action, alert["alert_id"], str(alert["source"]), body))

    async def source_command(self, request: web.Request) -> web.Response:
        _, user = self.auth_post(request)
        action, source = request.match_info["action"], request.match_info["source"]
        if action not in SOURCE_COMMANDS:
            raise _error(404, "未知操作", f"unknown action {action!r}")
        if source not in self.reg.sources:
            raise _error(404, "危险源不存在", "no such hazard source")
        if not can_see_source(user, self.reg, source):
            raise _error(403, "该危险源不在您的管辖范围内", "this hazard source is outside your scope")
        self._permit(user, action)
        body = await _command_body(request, action, user)
        return await self._forward(self._command(user, action, None, source, body))


async def _sse(resp: web.StreamResponse, event: str, data: Any) -> None:
    await resp.write(f"event: {event}\ndata: {_dumps(data)}\n\n".encode())


async def _command_body(request: web.Request, action: str, user: User) -> dict[str, Any]:
    """Parse and check a command's fields; 400 with a bilingual reason for anything a person must fix."""
    try:
        raw = await request.json() if request.can_read_body else {}
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        raise _error(400, "请求内容须为 JSON 对象", "the body must be a JSON object")
    reason, who, duration = raw.get("reason", ""), raw.get("authorised_by", ""), raw.get("duration_s", 0)
    if not isinstance(reason, str) or not isinstance(who, str) or len(reason) > MAX_TEXT or len(who) > 64:
        raise _error(400, f"原因须为不超过 {MAX_TEXT} 字的文本",
                     f"reason must be text of at most {MAX_TEXT} characters")
    reason, who = reason.strip(), who.strip()
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
        raise _error(400, "搁置时长须为秒数", "duration_s must be a number of seconds")
    if action in ("shelve", "oos", "suppress", "comment") and not reason:
        zh = "请填写备注内容" if action == "comment" else "请填写原因"
        raise _error(400, zh, "write the comment" if action == "comment" else f"a reason is required to {action}")
    if action == "shelve" and not SHELVE_MIN_S <= duration <= SHELVE_MAX_S:
        raise _error(400, "搁置时长须在 1 分钟至 8 小时之间", "shelve for between 1 minute and 8 hours")
    if action == "oos":
        if not who:
            raise _error(400, "停用仪表须填写批准人", "taking a sensor out of service needs authorised_by")
        if who == user.name:
            raise _error(400, "批准人须为他人", "authorised_by must be another person")
    return {"reason": reason, "duration_s": float(duration) if action == "shelve" else 0.0,
            "authorised_by": who if action == "oos" else ""}


async def _headers(request: web.Request, resp: web.StreamResponse) -> None:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    # The page and the API carry live safety state and session data: never cache them anywhere.
    resp.headers["Cache-Control"] = "no-store"


def _ops_routes(app: web.Application, ops: Ops, metrics: ConsoleMetrics) -> None:
    """/metrics, /healthz, /readyz without a session: probes and Prometheus carry no user's identity, and none of
    the three reveals an alert or a reading (only counters by method and status)."""

    @web.middleware
    async def count(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            metrics.requests.labels(request.method, str(exc.status)).inc()
            raise
        metrics.requests.labels(request.method, str(resp.status)).inc()
        return resp

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=ops.metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        code, body = ops.health()
        return web.json_response(body, status=code)

    async def ready(_: web.Request) -> web.Response:
        code, body = ops.readiness()
        return web.json_response(body, status=code)

    app.middlewares.append(count)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)


def make_app(registry: Registry, users: Mapping[str, User], board: AlertBoard, send_command: SendCommand,
             trend: Trend, now_ms: Callable[[], int], secure_cookies: bool, *, ops: Ops | None = None,
             metrics: ConsoleMetrics | None = None) -> web.Application:
    c = Console(registry, users, board, send_command, trend, now_ms, secure_cookies)
    app = web.Application(client_max_size=64 * 1024)
    app.on_response_prepare.append(_headers)
    if ops is not None:
        _ops_routes(app, ops, metrics or ConsoleMetrics(ops.registry))
    app.router.add_get("/", c.page)
    app.router.add_get("/{name:console\\.(?:js|css)}", c.page)
    app.router.add_post("/login", c.login)
    app.router.add_post("/logout", c.logout)
    app.router.add_get("/api/me", c.me)
    app.router.add_get("/api/alerts", c.alerts)
    app.router.add_get("/api/alerts/{alert_id}", c.alert)
    app.router.add_get("/api/sources", c.sources)
    app.router.add_get("/api/trend", c.trend_points)
    app.router.add_get("/api/events", c.events)
    app.router.add_post("/api/alerts/{alert_id}/{action}", c.alert_command)
    app.router.add_post("/api/sources/{source}/{action}", c.source_command)

    async def _close_streams(_: web.Application) -> None:
        board.close_all()  # open event streams would otherwise hold the shutdown for its whole timeout

    app.on_shutdown.append(_close_streams)
    return app

