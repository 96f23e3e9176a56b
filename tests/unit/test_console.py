"""Duty console: users file, passwords, login throttling, CSRF, and above all scope on every call and every push."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alerts.console.app import LoginLimiter, make_app
from alerts.console.board import AlertBoard
from alerts.console.service import secure_cookies_for, trend_query
from alerts.console.users import (
    User,
    UsersError,
    check_password,
    hash_password,
    init_users,
    load_users,
    set_password,
    visible_enterprises,
)
from hazardwatch.registry import Registry

T0 = 1_750_000_000_000


# ---- fixtures and builders (shared with test_console_browser.py) -------------------------------------------
def snapshot(reg: Registry, alert_id: str, source: str, level: int = 1, state: str = "UNACK", raised_ms: int = T0,
             **extra: Any) -> dict[str, Any]:
    src = reg.sources[source]
    ent = reg.enterprises[src.enterprise]
    sensor = src.sensors[0]
    s = reg.sensors[sensor]
    colour = {1: "红色", 2: "橙色", 3: "黄色", 4: "蓝色"}[level]
    snap = {
        "alert_id": alert_id, "key": f"{source}|limit|{sensor}", "source": source, "enterprise": ent.id,
        "district": ent.district, "sensor": sensor, "rule": "limit", "category": "process", "level": level,
        "max_level": level, "state": state, "active": state in ("UNACK", "ACKED"), "acked": state in ("ACKED",),
        "latching": False, "conditions": {}, "shelved": None, "suppressed": None, "out_of_service": None,
        "raised_ms": raised_ms, "updated_ms": raised_ms, "rtn_ms": None, "closed_ms": None, "acked_ms": None,
        "acked_by": None, "value": 95.2, "threshold": 90.0, "unit": s.unit, "clause": "test", "ts_ms": raised_ms,
        "text_zh": f"【{colour}预警】{ent.name_zh} {src.name_zh} {s.name_zh} 95.2 超过高高限 90",
        "text_en": f"[{colour}] {ent.name_en} {src.name_en} {s.name_en} 95.2 above high-high limit 90",
        "rule_version": "t", "comments": 0,
        "escalation": {"tier": 0, "tier_name": "control_room", "next_ms": raised_ms + 300_000, "repeat": 0,
                       "stopped": None},
    }
    snap.update(extra)
    return snap


def event(snap: dict[str, Any], action: str = "raise", kind: str = "transition", ts_ms: int | None = None,
          actor: str = "system", n: int = 0) -> dict[str, Any]:
    return {"event_id": f"ev-{snap['alert_id']}-{action}-{n}", "kind": kind, "action": action,
            "ts_ms": ts_ms or snap["updated_ms"], "actor": actor, "reason": "", "rule_version": "t",
            "source": snap["source"], "enterprise": snap["enterprise"], "district": snap["district"],
            "alert_id": snap["alert_id"], "alert": snap, "from_state": None, "to_state": snap["state"],
            "page": None, "notify": None, "flood": None}


def make_accounts(registry: Registry, directory: Path) -> tuple[dict[str, User], dict[str, str]]:
    """The users `hazardwatch console init` would create, loaded back, with their passwords."""
    path = directory / "console-users.yaml"
    passwords = init_users(path, registry)
    return load_users(path, registry), passwords


@pytest.fixture(scope="module")
def accounts(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, User], dict[str, str]]:
    return make_accounts(registry, tmp_path_factory.mktemp("console"))


class Harness:
    """The console app in-process with a hand-fed board, a recording send_command and a settable clock."""

    def __init__(self, registry: Registry, users: dict[str, User], secure: bool = False):
        self.reg = registry
        self.users = users
        self.board = AlertBoard(registry)
        self.commands: list[dict[str, Any]] = []
        self.clock = [T0 + 60_000]
        self.trend_calls: list[tuple[str, int, int]] = []
        self.fail_send = False
        self.app = make_app(registry, users, self.board, self._send, self._trend, lambda: self.clock[0], secure)

    async def _send(self, cmd: dict[str, Any]) -> None:
        if self.fail_send:
            raise ConnectionError("kafka down")
        self.commands.append(cmd)

    async def _trend(self, sensor: str, start: int, stop: int) -> list[tuple[int, float]]:
        self.trend_calls.append((sensor, start, stop))
        return [(start + 1000, 50.0), (stop - 1000, 60.0)]

    def feed(self, *snaps: dict[str, Any]) -> None:
        for s in snaps:
            self.board.apply(event(s))


def run(reg: Registry, users: dict[str, User], body: Callable[[Harness, Callable[..., Awaitable[TestClient]]],
                                                              Awaitable[None]], secure: bool = False) -> Harness:
    h = Harness(reg, users, secure)

    async def main() -> None:
        server = TestServer(h.app, host="127.0.0.1")
        clients: list[TestClient] = []

        async def client() -> TestClient:
            c = TestClient(server)
            await c.start_server()
            clients.append(c)
            return c

        try:
            await body(h, client)
        finally:
            for c in clients:
                await c.close()
            await server.close()

    asyncio.run(main())
    return h


async def login(c: TestClient, user: str, pw: str) -> str:
    r = await c.post("/login", json={"user": user, "password": pw})
    assert r.status == 200, await r.text()
    return (await r.json())["csrf"]


def standard_alerts(reg: Registry) -> list[dict[str, Any]]:
    # E01 (D01): S01, S02; E02 (D01): S03; E03 (D01): S04; E04 (D02): S06
    return [snapshot(reg, "A-E01", "S01", 1), snapshot(reg, "A-E01b", "S02", 3, raised_ms=T0 + 5),
            snapshot(reg, "A-E02", "S03", 2), snapshot(reg, "A-E03", "S04", 4), snapshot(reg, "A-E04", "S06", 1)]


async def ids(c: TestClient) -> set[str]:
    r = await c.get("/api/alerts")
    assert r.status == 200
    return {a["alert_id"] for a in (await r.json())["alerts"]}


# ---- passwords and the users file ---------------------------------------------------------------------------
def test_password_hash_round_trip() -> None:
    h = hash_password("correct horse battery")
    assert h.startswith("scrypt$16384$8$1$") and len(h.split("$")) == 6
    assert check_password("correct horse battery", h)
    assert not check_password("correct horse batterY", h)
    assert hash_password("correct horse battery") != h  # random salt
    for bad in ("", "plain", "scrypt$1$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!$AAAA", "md5$x"):
        assert not check_password("x", bad)


def test_users_file_validation_names_line_key_and_fix(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    good = hash_password("0123456789ab")
    path.write_text(textwrap.dedent(f"""\
        users:
        - name: a
          role: mayor
          scope: null
          password_hash: {good}
        - name: b
          role: district
          scope: D99
          password_hash: {good}
        - name: c
          role: enterprise
          scope: E01
        - name: d
          role: city
          scope: null
          password_hash: {good}
          permissions: [ack, launch]
        """), encoding="utf-8")
    with pytest.raises(UsersError) as err:
        load_users(path, registry)
    problems = err.value.problems
    assert len(problems) == 4, problems
    assert problems[0].startswith("users.yaml:3 users[a].role") and "unknown role 'mayor'" in problems[0]
    assert "'city'" in problems[0]
    assert problems[1].startswith("users.yaml:8 users[b].scope") and "D01" in problems[1]
    assert problems[2].startswith("users.yaml:10 users[c].password_hash")
    assert "run: hazardwatch console passwd c" in problems[2]
    assert problems[3].startswith("users.yaml:17 users[d].permissions") and "launch" in problems[3]


def test_users_file_missing_and_duplicates(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(UsersError, match="hazardwatch console init"):
        load_users(tmp_path / "nope.yaml", registry)
    path = tmp_path / "dup.yaml"
    h = hash_password("0123456789ab")
    path.write_text(f"users:\n- {{name: x, role: viewer, password_hash: '{h}'}}\n"
                    f"- {{name: x, role: city, password_hash: '{h}'}}\n", encoding="utf-8")
    with pytest.raises(UsersError, match=r"dup.yaml:3 users\[1\].name: 'x' is listed twice"):
        load_users(path, registry)


def test_init_users_and_set_password(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "u.yaml"
    pws = init_users(path, registry)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    users = load_users(path, registry)
    assert set(pws) == set(users)
    assert {"city-duty", "d01-duty", "d03-duty", "e01-operator", "e08-operator", "wall-screen"} <= set(users)
    assert users["d01-duty"].role == "district" and users["d01-duty"].scope == "D01"
    assert users["e02-operator"].scope == "E02" and users["e02-operator"].permissions == {"ack", "comment", "shelve",
                                                                                          "maintain"}
    assert users["wall-screen"].role == "viewer" and not users["wall-screen"].permissions
    assert all(check_password(pws[n], users[n].password_hash) for n in ("city-duty", "e05-operator"))
    with pytest.raises(FileExistsError):
        init_users(path, registry)
    set_password(path, "e01-operator", "a-new-long-password")
    again = load_users(path, registry)
    assert check_password("a-new-long-password", again["e01-operator"].password_hash)
    assert again["e02-operator"] == users["e02-operator"]  # the others are kept as they were
    with pytest.raises(ValueError, match="at least"):
        set_password(path, "e01-operator", "short")
    with pytest.raises(UsersError, match="no user 'ghost'"):
        set_password(path, "ghost", "a-new-long-password")


def test_scope_sets(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]) -> None:
    users, _ = accounts
    assert visible_enterprises(users["city-duty"], registry) is None
    assert visible_enterprises(users["wall-screen"], registry) is None
    assert visible_enterprises(users["d01-duty"], registry) == {"E01", "E02", "E03"}
    assert visible_enterprises(users["e01-operator"], registry) == {"E01"}
    orphan = User("x", "x", "district", "D99", frozenset(), "")
    assert visible_enterprises(orphan, registry) == frozenset()  # unknown scope sees nothing


# ---- login, sessions, CSRF, headers ----------------------------------------------------------------------------
def test_login_ok_bad_password_and_rate_limit(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]
                                              ) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        c = await client()
        assert (await c.get("/api/alerts")).status == 401
        await login(c, "e01-operator", pws["e01-operator"])
        me = await (await c.get("/api/me")).json()
        assert me["user"] == "e01-operator" and me["scope"] == "E01" and me["csrf"]
        r = await c.post("/login", json={"user": "e02-operator", "password": "wrong"})
        assert r.status == 401
        err = (await r.json())["error"]
        assert err["zh"] == "用户名或密码错误" and "wrong user name or password" in err["en"]
        # Five failures lock the name (and this address) for five minutes, even with the right password.
        for _ in range(3):
            assert (await c.post("/login", json={"user": "e02-operator", "password": "x"})).status == 401
        h.clock[0] += 60_000
        assert (await c.post("/login", json={"user": "e02-operator", "password": "x"})).status == 401
        r = await c.post("/login", json={"user": "e02-operator", "password": pws["e02-operator"]})
        assert r.status == 429
        assert r.headers["Retry-After"] == "240"  # the first failure ages out 4 minutes from now
        assert "秒后再试" in (await r.json())["error"]["zh"]
        h.clock[0] += 241_000
        await login(c, "e02-operator", pws["e02-operator"])

    run(registry, users, body)


def test_login_rate_limit_per_address(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        c = await client()
        # Guessing across many user names from one address is stopped too.
        for i in range(5):
            assert (await c.post("/login", json={"user": f"guess{i}", "password": "x"})).status == 401
        r = await c.post("/login", json={"user": "city-duty", "password": pws["city-duty"]})
        assert r.status == 429 and int(r.headers["Retry-After"]) == 300

    run(registry, users, body)


def test_login_limiter_counts_per_user_across_addresses() -> None:
    clock = [T0]
    lim = LoginLimiter(lambda: clock[0])
    for i in range(5):
        assert lim.retry_after_s("city-duty", f"10.0.0.{i}") == 0
        lim.failed("city-duty", f"10.0.0.{i}")
    assert lim.retry_after_s("city-duty", "10.0.0.99") == 300
    assert lim.retry_after_s("d01-duty", "10.0.0.99") == 0
    clock[0] += 300_000
    assert lim.retry_after_s("city-duty", "10.0.0.99") == 0


def test_cookie_flags_and_security_headers(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]
                                           ) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        c = await client()
        page = await c.get("/")
        assert page.status == 200 and "重大危险源" in await page.text()
        assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert page.headers["X-Frame-Options"] == "DENY"
        assert (await c.get("/console.js")).status == 200
        assert (await c.get("/../pyproject.toml")).status == 404
        r = await c.post("/login", json={"user": "city-duty", "password": pws["city-duty"]})
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
        me = await c.get("/api/me")
        assert me.headers["Cache-Control"] == "no-store"

    run(registry, users, body, secure=True)


def test_csrf_token_required_on_every_post(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]
                                           ) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        h.feed(*standard_alerts(registry))
        c = await client()
        csrf = await login(c, "e01-operator", pws["e01-operator"])
        assert (await c.post("/api/alerts/A-E01/ack", json={})).status == 403
        assert (await c.post("/api/alerts/A-E01/ack", json={}, headers={"X-CSRF-Token": "forged"})).status == 403
        assert (await c.post("/api/sources/S01/suppress", json={"reason": "x"})).status == 403
        assert (await c.post("/logout")).status == 403
        assert h.commands == []
        r = await c.post("/api/alerts/A-E01/ack", json={}, headers={"X-CSRF-Token": csrf})
        assert r.status == 202
        assert (await r.json())["command_id"] == h.commands[0]["command_id"]
        assert (await c.post("/logout", headers={"X-CSRF-Token": csrf})).status == 200
        assert (await c.get("/api/alerts")).status == 401

    run(registry, users, body)


# ---- scope -----------------------------------------------------------------------------------------------------
def test_enterprise_user_sees_only_its_own(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]
                                           ) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        h.feed(*standard_alerts(registry))
        c = await client()
        await login(c, "e01-operator", pws["e01-operator"])
        data = await (await c.get("/api/alerts")).json()
        assert [a["alert_id"] for a in data["alerts"]] == ["A-E01", "A-E01b"]  # level 1 before level 3
        assert set(data["levels"]) == {"S01", "S02"} and data["levels"]["S01"] == 1
        sources = (await (await c.get("/api/sources")).json())["sources"]
        assert {s["id"] for s in sources} == {"S01", "S02"}
        s01 = next(s for s in sources if s["id"] == "S01")
        assert s01["level"] == 1 and s01["lat"] == 30.633 and s01["sensors"][0]["id"] == "S01-T01-LT"
        assert (await c.get("/api/alerts/A-E02")).status == 404
        detail = await (await c.get("/api/alerts/A-E01")).json()
        assert detail["alert"]["alert_id"] == "A-E01" and [e["action"] for e in detail["timeline"]] == ["raise"]
        other = registry.sources["S03"].sensors[0]
        r = await c.get(f"/api/trend?sensor={other}&minutes=60")
        assert r.status == 403 and h.trend_calls == []
        r = await c.get("/api/trend?sensor=S01-T01-LT&minutes=60")
        assert r.status == 200
        trend = await r.json()
        assert {lim["name"]: lim["value"] for lim in trend["limits"]} == {"LL": 5.0, "L": 10.0, "H": 85.0, "HH": 90.0}
        assert len(trend["points"]) == 2 and trend["stop_ms"] - trend["start_ms"] == 3_600_000
        assert (await c.get("/api/trend?sensor=S01-T01-LT&minutes=0")).status == 400
        assert (await c.get("/api/trend?sensor=nope&minutes=5")).status == 404

    run(registry, users, body)


def test_enterprise_user_cannot_acknowledge_another_enterprises_alert(
        registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        h.feed(*standard_alerts(registry))
        c = await client()
        csrf = await login(c, "e01-operator", pws["e01-operator"])
        hdr = {"X-CSRF-Token": csrf}
        for action in ("ack", "comment", "shelve", "reset", "escalate", "oos"):
            r = await c.post(f"/api/alerts/A-E02/{action}", json={"reason": "r", "duration_s": 600,
                                                                  "authorised_by": "boss"}, headers=hdr)
            assert r.status == 404, action  # the same answer as for an alert that does not exist
            assert (await r.json())["error"]["en"] == "no such alert"
        r = await c.post("/api/sources/S03/suppress", json={"reason": "maintenance"}, headers=hdr)
        assert r.status == 403
        assert h.commands == []
        r = await c.post("/api/alerts/A-E01/ack", json={"reason": "seen"}, headers=hdr)
        assert r.status == 202
        (cmd,) = h.commands
        assert cmd == {"command_id": cmd["command_id"], "action": "ack", "alert_id": "A-E01", "source": "S01",
                       "user": "e01-operator", "role": "enterprise", "reason": "seen", "duration_s": 0.0,
                       "authorised_by": "", "ts_ms": h.clock[0]}
        assert len(cmd["command_id"]) == 32

    run(registry, users, body)


def test_district_and_city_scope(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        h.feed(*standard_alerts(registry))
        d01, city, wall = await client(), await client(), await client()
        csrf = await login(d01, "d01-duty", pws["d01-duty"])
        await login(city, "city-duty", pws["city-duty"])
        await login(wall, "wall-screen", pws["wall-screen"])
        assert await ids(d01) == {"A-E01", "A-E01b", "A-E02", "A-E03"}
        sources = {s["id"] for s in (await (await d01.get("/api/sources")).json())["sources"]}
        assert sources == {"S01", "S02", "S03", "S04", "S05"}
        assert (await d01.post("/api/alerts/A-E04/ack", json={}, headers={"X-CSRF-Token": csrf})).status == 404
        assert (await d01.post("/api/alerts/A-E02/ack", json={}, headers={"X-CSRF-Token": csrf})).status == 202
        assert await ids(city) == {"A-E01", "A-E01b", "A-E02", "A-E03", "A-E04"}
        assert len((await (await city.get("/api/sources")).json())["sources"]) == len(registry.sources)
        assert await ids(wall) == await ids(city)

    run(registry, users, body)


def test_viewer_cannot_act(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        h.feed(*standard_alerts(registry))
        c = await client()
        csrf = await login(c, "wall-screen", pws["wall-screen"])
        r = await c.post("/api/alerts/A-E01/ack", json={}, headers={"X-CSRF-Token": csrf})
        assert r.status == 403 and (await r.json())["error"]["zh"] == "您没有执行该操作的权限"
        r = await c.post("/api/sources/S01/suppress", json={"reason": "x"}, headers={"X-CSRF-Token": csrf})
        assert r.status == 403
        assert h.commands == []

    run(registry, users, body)


def test_command_input_checks(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        h.feed(*standard_alerts(registry))
        c = await client()
        hdr = {"X-CSRF-Token": await login(c, "e01-operator", pws["e01-operator"])}

        async def post(path: str, payload: Any) -> tuple[int, dict[str, Any]]:
            r = await c.post(path, json=payload, headers=hdr)
            return r.status, await r.json()

        status, data = await post("/api/alerts/A-E01/shelve", {"duration_s": 600})
        assert status == 400 and data["error"] == {"zh": "请填写原因", "en": "a reason is required to shelve"}
        assert (await post("/api/alerts/A-E01/shelve", {"reason": "nuisance", "duration_s": 30}))[0] == 400
        assert (await post("/api/alerts/A-E01/shelve", {"reason": "nuisance", "duration_s": 9 * 3600}))[0] == 400
        assert (await post("/api/alerts/A-E01/shelve", {"reason": "nuisance", "duration_s": "1h"}))[0] == 400
        assert (await post("/api/alerts/A-E01/oos", {"reason": "broken"}))[0] == 400
        assert (await post("/api/alerts/A-E01/oos", {"reason": "broken", "authorised_by": "e01-operator"}))[0] == 400
        assert (await post("/api/alerts/A-E01/comment", {"reason": "  "}))[0] == 400
        assert (await post("/api/alerts/A-E01/ack", ["not", "an", "object"]))[0] == 400
        assert (await post("/api/alerts/A-E01/launch", {}))[0] == 404
        assert (await post("/api/alerts/A-E01/suppress", {"reason": "x"}))[0] == 404  # source commands elsewhere
        assert (await post("/api/sources/S01/suppress", {}))[0] == 400
        assert h.commands == []
        assert (await post("/api/alerts/A-E01/shelve", {"reason": "nuisance", "duration_s": 3600}))[0] == 202
        assert (await post("/api/alerts/A-E01/oos", {"reason": "broken", "authorised_by": "chief"}))[0] == 202
        assert (await post("/api/sources/S01/suppress", {"reason": "tank cleaning"}))[0] == 202
        shelve, oos, suppress = h.commands
        assert shelve["duration_s"] == 3600.0 and shelve["reason"] == "nuisance"
        assert oos["authorised_by"] == "chief"
        assert suppress["alert_id"] is None and suppress["source"] == "S01" and suppress["action"] == "suppress"
        h.fail_send = True
        status, data = await post("/api/alerts/A-E01/ack", {})
        assert status == 503 and "重试" in data["error"]["zh"]

    run(registry, users, body)


# ---- live pushes -----------------------------------------------------------------------------------------------
async def next_sse(resp: Any) -> tuple[str, dict[str, Any]]:
    name, data = "", None
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = orjson.loads(line[6:])
        elif line == "" and name:
            return name, data or {}


def test_event_stream_is_scoped(registry: Registry, accounts: tuple[dict[str, User], dict[str, str]]) -> None:
    users, pws = accounts

    async def body(h: Harness, client: Callable[..., Awaitable[TestClient]]) -> None:
        alerts = standard_alerts(registry)
        h.feed(*alerts)
        e01, e02, d01 = await client(), await client(), await client()
        await login(e01, "e01-operator", pws["e01-operator"])
        await login(e02, "e02-operator", pws["e02-operator"])
        await login(d01, "d01-duty", pws["d01-duty"])
        s1, s2, s3 = (await e01.get("/api/events"), await e02.get("/api/events"), await d01.get("/api/events"))
        assert s1.headers["Content-Type"].startswith("text/event-stream")
        name, snap = await next_sse(s1)
        assert name == "snapshot" and [a["alert_id"] for a in snap["alerts"]] == ["A-E01", "A-E01b"]
        assert {a["alert_id"] for a in (await next_sse(s2))[1]["alerts"]} == {"A-E02"}
        assert len((await next_sse(s3))[1]["alerts"]) == 4
        # A new E02 alert, then a new E01 alert: each enterprise hears only its own.
        h.board.apply(event(snapshot(registry, "N-E02", "S03", 1, raised_ms=T0 + 10)))
        h.board.apply(event(snapshot(registry, "N-E01", "S02", 1, raised_ms=T0 + 20)))
        h.board.apply(event(snapshot(registry, "N-E04", "S06", 1, raised_ms=T0 + 30)))
        name, msg = await next_sse(s1)
        assert name == "event" and msg["alert"]["alert_id"] == "N-E01" and msg["source_level"] == 1
        name, msg = await next_sse(s2)
        assert msg["alert"]["alert_id"] == "N-E02"
        got = [(await next_sse(s3))[1]["alert"]["alert_id"] for _ in range(2)]
        assert got == ["N-E02", "N-E01"]
        # A flood in E04's position reaches nobody here; one in E01's reaches E01 and D01 only.
        for pos, src, n in (("E04", "S06", 1), ("E01", "S01", 2)):
            ent = registry.enterprises[pos]
            h.board.apply({"event_id": f"flood-{n}", "kind": "flood", "action": "flood", "ts_ms": T0 + 40,
                           "source": src, "enterprise": pos, "district": ent.district, "alert_id": None,
                           "alert": None, "flood": {"position": pos, "count": 12, "window_s": 600,
                                                    "first_out": "A-E01", "started_ms": T0}})
        name, msg = await next_sse(s1)
        assert name == "flood" and msg["flood"]["position"] == "E01"
        assert (await next_sse(s3))[1]["flood"]["position"] == "E01"
        # E02's stream got neither flood: its next message is the next E02 event.
        h.board.apply(event(snapshot(registry, "N2-E02", "S03", 2, raised_ms=T0 + 50)))
        assert (await next_sse(s2))[1]["alert"]["alert_id"] == "N2-E02"
        for s in (s1, s2, s3):
            s.close()

    run(registry, users, body)


# ---- the board on its own --------------------------------------------------------------------------------------
def test_board_drops_replays_and_stale_snapshots(registry: Registry,
                                                 accounts: tuple[dict[str, User], dict[str, str]]) -> None:
    users, _ = accounts
    board = AlertBoard(registry, max_closed=1)
    a = snapshot(registry, "A", "S01", 2)
    assert board.apply(event(a)) and not board.apply(event(a))  # the same event_id again: a replay
    acked = {**a, "state": "ACKED", "acked": True, "updated_ms": T0 + 10}
    assert board.apply(event(acked, "ack", "command"))
    assert board.apply({**event(a, "page", "page"), "page": {"tier": 1, "tier_name": "responsible", "repeat": 0,
                                                              "recipients": [{"name": "刘晓东", "channels": {}}]}})
    assert board.get("A")["state"] == "ACKED"  # the page carried the older snapshot: kept the newer one
    timeline = board.timeline("A")
    assert [e["action"] for e in timeline] == ["raise", "ack", "page"]
    assert timeline[2]["page"]["recipients"] == ["刘晓东"] and "channels" not in str(timeline[2])
    levels = board.source_levels(users["e01-operator"])
    assert levels == {"S01": 2, "S02": None}
    board.apply(event(snapshot(registry, "B", "S01", 1, out_of_service={"by": "x"}), n=1))
    assert board.source_level("S01") == 2  # an out-of-service instrument does not colour the map
    for i, (aid, src) in enumerate((("A", "S01"), ("C", "S02"))):
        board.apply(event({**snapshot(registry, aid, src, 3), "state": "NORMAL", "active": False,
                           "updated_ms": T0 + 100 + i}, "close", n=i))
    assert board.get("A") is None and board.get("C") is not None  # only max_closed closed alerts are kept
    vis = board.visible(users["city-duty"])
    assert [v["alert_id"] for v in vis] == ["B", "C"]


# ---- service helpers (the only pure parts of the Kafka/InfluxDB wiring) -----------------------------------------
def test_secure_cookies_default_and_trend_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HW_CONSOLE_SECURE_COOKIES", raising=False)
    assert not secure_cookies_for("127.0.0.1") and not secure_cookies_for("localhost")
    assert secure_cookies_for("0.0.0.0") and secure_cookies_for("console.example")
    monkeypatch.setenv("HW_CONSOLE_SECURE_COOKIES", "0")
    assert not secure_cookies_for("0.0.0.0")
    hour = trend_query("hw", 'S"1', T0, T0 + 3_600_000, 10.0)
    assert 'r.sensor == "S\\"1"' in hour and "aggregateWindow" not in hour  # 360 raw points: kept as they are
    assert "range(start: 2025-06-15T15:06:40.000Z, stop: 2025-06-15T16:06:40.000Z)" in hour
    week = trend_query("hw", "S1", T0, T0 + 7 * 86_400_000, 10.0)
    assert "aggregateWindow(every: 1008s, fn: mean, createEmpty: false)" in week
