"""Notifiers against real local receivers: an aiosmtpd SMTP server and aiohttp web servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from alerts.channels import Channels, DeliveryError, Message, dingtalk_sign
from alerts.delivery import backoff_s, deliver
from alerts.model import delivery_id
from alerts.notify_config import NotifyConfigError, RetryPolicy, load_notify_config
from hazardwatch.config import PROJECT_ROOT

NOW = 1_760_000_000_000
TEXT_ZH = "【红色预警】临江石化储运有限公司 一号汽油罐区 T03储罐液位 95.2% 超过高高限 90%（一级，依据 GB 50160）"
TEXT_EN = "[RED Level 1] Linjiang Petrochem / Tank farm 1 / T03 level 95.2% above high-high limit 90%"
SECRETS = {"HW_WH_SECRET": "wh-secret-1", "HW_SMS_KEY": "sms-key-1", "HW_WECOM_KEY_E01": "wecom-key/E01+=",
           "HW_DT_TOKEN_D01": "dt-token-1", "HW_DT_SECRET_D01": "SECabc123"}


# ---- receivers -----------------------------------------------------------------------------------------------
class HttpReceiver:
    """An aiohttp server on 127.0.0.1:<ephemeral> recording every request; replies are scripted in order."""

    def __init__(self, *replies: tuple[int, Any], default: tuple[int, Any] = (200, {"errcode": 0, "errmsg": "ok"})):
        self.replies, self.default = list(replies), default
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                              "query_string": request.query_string, "headers": dict(request.headers),
                              "raw": raw, "json": orjson.loads(raw) if raw else None})
        status, body = self.replies.pop(0) if self.replies else self.default
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)

    async def __aenter__(self) -> HttpReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


class SmtpRecorder:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.replies: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return self.replies.pop(0) if self.replies else "250 Message accepted for delivery"


class EphemeralController(Controller):
    """aiosmtpd's readiness probe connects to self.port; learn the port the OS gave before it does."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture()
def smtp() -> Iterator[tuple[SmtpRecorder, int]]:
    handler = SmtpRecorder()
    controller = EphemeralController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- config, page, clock -----------------------------------------------------------------------------------------
def write_config(tmp_path: Path, *, webhook: str = "http://127.0.0.1:9/hook", smtp_port: int = 25,
                 sms: str = "http://127.0.0.1:9/sms", wecom: str = "http://127.0.0.1:9/wecom",
                 dingtalk: str = "http://127.0.0.1:9/dingtalk", attempts: int = 3, extra: str = "") -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(f"""\
timeout_s: 5
webhook:
  endpoints:
    command-centre: {{url: "{webhook}", secret_env: HW_WH_SECRET}}
email:
  host: 127.0.0.1
  port: {smtp_port}
  sender: "hazardwatch 预警 <alerts@city.example>"
sms: {{url: "{sms}", sign: 临江应急, api_key_env: HW_SMS_KEY}}
wecom:
  url: "{wecom}"
  robots:
    E01: {{key_env: HW_WECOM_KEY_E01}}
dingtalk:
  url: "{dingtalk}"
  robots:
    D01: {{token_env: HW_DT_TOKEN_D01, secret_env: HW_DT_SECRET_D01}}
retry: {{attempts: {attempts}, base_s: 1, factor: 2, cap_s: 30, jitter: false}}
fallback: {{wecom: sms, webhook: email}}
{extra}""", encoding="utf-8")
    return path


def channels_for(tmp_path: Path, **kw: Any) -> Channels:
    return Channels(load_notify_config(write_config(tmp_path, **kw), tmp_path / "secrets", environ=SECRETS),
                    clock_ms=lambda: NOW)


def make_page(*recipients: dict[str, Any], mentions: list[str] | None = None) -> dict[str, Any]:
    return {"page_id": "p1", "alert_id": "a1", "tier": 0, "tier_name": "control_room", "repeat": 0,
            "purpose": "alert", "level": 1, "colour": "red", "title_zh": "【红色预警】", "title_en": "[RED Level 1]",
            "text_zh": TEXT_ZH, "text_en": TEXT_EN, "recipients": list(recipients),
            "mentions": mentions or []}


def msg(delivery: str = "d1", text_zh: str = TEXT_ZH) -> Message:
    page = make_page()
    page["text_zh"] = text_zh
    return Message.from_page(page).for_delivery(delivery)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, s: float) -> None:
        self.delays.append(s)


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro_fn())


# ---- wire formats ------------------------------------------------------------------------------------------------
def test_webhook_is_signed_with_hmac_and_carries_the_delivery_id(tmp_path: Path) -> None:
    async def go() -> None:
        async with HttpReceiver((200, {"id": "r-77"})) as rx:
            async with channels_for(tmp_path, webhook=rx.url + "/hook") as ch:
                receipt = await ch.get("webhook").send(msg(), "command-centre", ["+86-13970010000"])
        req = rx.requests[0]
        assert req["method"] == "POST" and req["path"] == "/hook"
        want = hmac.new(b"wh-secret-1", req["raw"], hashlib.sha256).hexdigest()
        assert req["headers"]["X-Hazardwatch-Signature"] == f"sha256={want}"
        assert req["headers"]["X-Hazardwatch-Delivery"] == "d1"
        assert req["headers"]["X-Hazardwatch-Timestamp"] == str(NOW)
        body = req["json"]
        assert body["text_zh"] == TEXT_ZH and body["delivery_id"] == "d1" and body["alert_id"] == "a1"
        assert body["text"] == f"{TEXT_ZH}\n{TEXT_EN}"  # Chinese first, then English
        assert receipt.status == "200" and receipt.receipt == "r-77"

    run(go)


def test_unknown_webhook_endpoint_is_not_retryable(tmp_path: Path) -> None:
    async def go() -> None:
        async with channels_for(tmp_path) as ch:
            with pytest.raises(DeliveryError) as err:
                await ch.get("webhook").send(msg(), "nowhere", [])
        assert not err.value.retryable and err.value.status == "unknown_endpoint"

    run(go)


def test_email_is_bilingual_utf8_with_a_deterministic_message_id(tmp_path: Path, smtp: Any) -> None:
    handler, port = smtp

    async def go() -> None:
        async with channels_for(tmp_path, smtp_port=port) as ch:
            receipt = await ch.get("email").send(msg("dlv-9"), "liu@e01.example", [])
        assert receipt.status == "250" and "accepted" in (receipt.receipt or "")

    run(go)
    env = handler.envelopes[0]
    assert env.mail_from == "alerts@city.example" and env.rcpt_tos == ["liu@e01.example"]
    mail = email.message_from_bytes(env.original_content, policy=email.policy.default)
    assert mail["Message-ID"] == "<dlv-9@hazardwatch>"
    assert str(mail["Subject"]).startswith("【红色预警】临江石化") and "[RED Level 1]" in str(mail["Subject"])
    body = mail.get_content()
    assert body.index(TEXT_ZH) < body.index(TEXT_EN)


def test_email_server_4xx_is_retryable_5xx_is_not(tmp_path: Path, smtp: Any) -> None:
    handler, port = smtp
    handler.replies = ["451 try again later", "554 rejected"]

    async def go() -> None:
        async with channels_for(tmp_path, smtp_port=port) as ch:
            for retryable in (True, False):
                with pytest.raises(DeliveryError) as err:
                    await ch.get("email").send(msg(), "liu@e01.example", [])
                assert err.value.retryable is retryable

    run(go)


def test_sms_gateway_call_is_short_chinese_with_bearer_key(tmp_path: Path) -> None:
    async def go() -> None:
        async with HttpReceiver((200, {"code": 0, "message_id": "m-1"}), (200, {"code": 1001, "msg": "bad phone"})
                                ) as rx:
            async with channels_for(tmp_path, sms=rx.url + "/sms") as ch:
                receipt = await ch.get("sms").send(msg("d2", "预" * 400), "+86-13970010000", [])
                with pytest.raises(DeliveryError) as err:
                    await ch.get("sms").send(msg(), "+86-1", [])
        req = rx.requests[0]
        assert req["headers"]["Authorization"] == "Bearer sms-key-1"
        body = req["json"]
        assert body["phone"] == "+86-13970010000" and body["sign"] == "临江应急" and body["id"] == "d2"
        assert len(body["text"]) == 300 and body["text"].endswith("…") and "RED" not in body["text"]
        assert receipt.receipt == "m-1"
        assert err.value.status == "1001" and not err.value.retryable

    run(go)


def test_wecom_robot_json_mentions_and_safe_truncation(tmp_path: Path) -> None:
    async def go() -> None:
        async with HttpReceiver() as rx:
            async with channels_for(tmp_path, wecom=rx.url + "/cgi-bin/webhook/send") as ch:
                await ch.get("wecom").send(msg(), "E01", ["+86-13970010000"])
                await ch.get("wecom").send(msg("d3", "液位" * 2000), "E01", [])
        first, long = rx.requests
        assert first["path"] == "/cgi-bin/webhook/send" and first["query"] == {"key": "wecom-key/E01+="}
        assert first["json"] == {"msgtype": "text", "text": {"content": f"{TEXT_ZH}\n{TEXT_EN}",
                                                             "mentioned_mobile_list": ["13970010000"]}}
        content = long["json"]["text"]["content"]
        assert len(content.encode("utf-8")) <= 2048 and content.endswith("…") and content.startswith("【红色预警】液位")

    run(go)


@pytest.mark.parametrize(("errcode", "retryable"), [(45009, True), (93000, False)])
def test_wecom_errcodes(tmp_path: Path, errcode: int, retryable: bool) -> None:
    async def go() -> None:
        async with HttpReceiver((200, {"errcode": errcode, "errmsg": "x"})) as rx:
            async with channels_for(tmp_path, wecom=rx.url + "/w") as ch:
                with pytest.raises(DeliveryError) as err:
                    await ch.get("wecom").send(msg(), "E01", [])
        assert err.value.status == str(errcode) and err.value.retryable is retryable

    run(go)


def test_dingtalk_signature_verifies_and_mentions_are_in_the_text(tmp_path: Path) -> None:
    async def go() -> None:
        async with HttpReceiver((200, {"errcode": 0, "errmsg": "ok"}),
                                (200, {"errcode": 130101, "errmsg": "send too fast"})) as rx:
            async with channels_for(tmp_path, dingtalk=rx.url + "/robot/send") as ch:
                await ch.get("dingtalk").send(msg(), "D01", ["+86-13970010000"])
                with pytest.raises(DeliveryError) as err:
                    await ch.get("dingtalk").send(msg(), "D01", [])
        assert err.value.retryable  # 130101: too fast, try later
        req = rx.requests[0]
        assert req["path"] == "/robot/send"
        # Recompute as DingTalk does: the sign is URL-encoded base64(HmacSHA256(secret, "ts\nsecret")).
        q = parse_qs(req["query_string"])
        assert q["access_token"] == ["dt-token-1"] and q["timestamp"] == [str(NOW)]
        digest = hmac.new(b"SECabc123", f"{NOW}\nSECabc123".encode(), hashlib.sha256).digest()
        assert q["sign"] == [base64.b64encode(digest).decode()] == [dingtalk_sign("SECabc123", NOW)]
        body = req["json"]
        assert body["msgtype"] == "text" and body["at"] == {"atMobiles": ["13970010000"], "isAtAll": False}
        assert body["text"]["content"] == f"{TEXT_ZH}\n{TEXT_EN} @13970010000"

    run(go)


# ---- delivery: retries, fallback, idempotency --------------------------------------------------------------------
def test_503_is_retried_with_backoff_then_succeeds(tmp_path: Path) -> None:
    sleeps, log, seen = Sleeps(), {}, []

    async def go() -> list[dict]:
        async with HttpReceiver((503, "busy"), (503, "busy"), (200, {})) as rx:
            async with channels_for(tmp_path, webhook=rx.url + "/hook") as ch:
                page = make_page({"name": "市应急指挥中心", "role": "city", "channels": {"webhook": "command-centre"}})
                recs = await deliver(page, ch, log, lambda: NOW, sleep=sleeps, on_attempt=seen.append)
        assert {r["headers"]["X-Hazardwatch-Delivery"] for r in rx.requests} == {recs[0]["delivery_id"]}
        return recs

    recs = run(go)
    assert [(r["attempt"], r["ok"], r["status"]) for r in recs] == [(1, False, "503"), (2, False, "503"),
                                                                     (3, True, "200")]
    assert sleeps.delays == [1.0, 2.0] and seen == recs
    did = delivery_id("p1", "市应急指挥中心", "webhook")
    assert log == {did: {"ok": True, "channel": "webhook", "ts_ms": NOW, "receipt": None}}
    assert set(recs[0]) == {"delivery_id", "page_id", "alert_id", "channel", "recipient", "address", "attempt", "ok",
                            "status", "error", "fallback_of", "receipt", "ts_ms"}


def test_a_down_endpoint_is_retried_then_the_fallback_delivers(tmp_path: Path, smtp: Any) -> None:
    handler, port = smtp
    sleeps, log = Sleeps(), {}
    recipient = {"name": "城区值班", "role": "duty", "channels": {"webhook": "command-centre",
                                                                  "email": "duty@city.example"}}

    async def go() -> list[dict]:
        async with channels_for(tmp_path, webhook=f"http://127.0.0.1:{closed_port()}/hook", smtp_port=port) as ch:
            return await deliver(make_page(recipient), ch, log, lambda: NOW, sleep=sleeps)

    recs = run(go)
    assert [(r["channel"], r["attempt"], r["ok"], r["status"]) for r in recs] == [
        ("webhook", 1, False, "connect"), ("webhook", 2, False, "connect"), ("webhook", 3, False, "connect"),
        ("email", 1, True, "250")]
    assert recs[-1]["fallback_of"] == "webhook" and recs[0]["fallback_of"] is None
    assert sleeps.delays == [1.0, 2.0]
    assert len(handler.envelopes) == 1
    assert log[delivery_id("p1", "城区值班", "webhook")]["ok"] is False
    assert log[delivery_id("p1", "城区值班", "email")]["ok"] is True


def test_a_4xx_goes_straight_to_the_configured_fallback(tmp_path: Path, smtp: Any) -> None:
    handler, port = smtp
    sleeps, log = Sleeps(), {}
    # Listed order would be email next; the config's fallback map says wecom -> sms, and the recipient has sms.
    recipient = {"name": "中控室", "role": "control room",
                 "channels": {"wecom": "E01", "email": "cr@e01.example", "sms": "+86-13970010000"}}

    async def go() -> tuple[list[dict], HttpReceiver, HttpReceiver]:
        async with HttpReceiver((404, {"errcode": 404})) as wx, HttpReceiver((200, {"code": "OK"})) as sms:
            async with channels_for(tmp_path, wecom=wx.url + "/w", sms=sms.url + "/sms", smtp_port=port) as ch:
                return await deliver(make_page(recipient), ch, log, lambda: NOW, sleep=sleeps), wx, sms

    recs, wx, sms = run(go)
    assert [(r["channel"], r["attempt"], r["ok"], r["fallback_of"]) for r in recs] == [
        ("wecom", 1, False, None), ("sms", 1, True, "wecom")]
    assert sleeps.delays == [] and len(wx.requests) == 1 and len(sms.requests) == 1 and handler.envelopes == []


def test_a_second_delivery_with_the_same_log_sends_nothing(tmp_path: Path, smtp: Any) -> None:
    handler, port = smtp
    log: dict[str, dict] = {}
    recipients = [{"name": "甲", "role": "r", "channels": {"wecom": "E01"}},
                  {"name": "乙", "role": "r", "channels": {"webhook": "command-centre", "email": "b@x.example"}}]

    async def go() -> tuple[list[dict], list[dict], HttpReceiver]:
        async with HttpReceiver() as wx:
            dead = f"http://127.0.0.1:{closed_port()}/hook"
            async with channels_for(tmp_path, wecom=wx.url + "/w", webhook=dead, smtp_port=port) as ch:
                first = await deliver(make_page(*recipients), ch, log, lambda: NOW, sleep=Sleeps())
            # "after a restart": new channels, same persisted log
            async with channels_for(tmp_path, wecom=wx.url + "/w", webhook=dead, smtp_port=port) as ch:
                second = await deliver(make_page(*recipients), ch, dict(log), lambda: NOW, sleep=Sleeps())
        return first, second, wx

    first, second, wx = run(go)
    assert [r["ok"] for r in first if r["ok"]] == [True, True]
    assert second == [] and len(wx.requests) == 1 and len(handler.envelopes) == 1


def test_a_channel_without_a_section_is_recorded_and_skipped(tmp_path: Path) -> None:
    seen: list[dict] = []

    async def on_attempt(rec: dict) -> None:  # the worker publishes each attempt as it happens
        seen.append(rec)

    async def go() -> list[dict]:
        async with HttpReceiver() as wx:
            async with channels_for(tmp_path, wecom=wx.url + "/w") as ch:
                del ch.by_name["dingtalk"]  # as if the YAML had no dingtalk section
                page = make_page({"name": "区局", "role": "district", "channels": {"dingtalk": "D01", "wecom": "E01"}})
                return await deliver(page, ch, {}, lambda: NOW, sleep=Sleeps(), on_attempt=on_attempt)

    recs = run(go)
    assert [(r["channel"], r["status"], r["ok"]) for r in recs] == [("dingtalk", "not_configured", False),
                                                                    ("wecom", "0", True)]
    assert seen == recs


def test_full_jitter_is_bounded_and_replays_identically() -> None:
    policy = RetryPolicy(attempts=6, base_s=2, factor=2, cap_s=10, jitter=True)
    delays = [backoff_s(policy, n, "d1") for n in range(1, 6)]
    assert all(0 <= d <= min(10, 2 * 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert delays == [backoff_s(policy, n, "d1") for n in range(1, 6)] != [backoff_s(policy, n, "d2")
                                                                           for n in range(1, 6)]
    assert [backoff_s(RetryPolicy(jitter=False, cap_s=10), n, "x") for n in range(1, 6)] == [2, 4, 8, 10, 10]


# ---- config --------------------------------------------------------------------------------------------------------
def test_config_problems_name_file_line_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text("""\
email:
  host: 127.0.0.1
  port: abc
  sender: alerts@city.example
  password: hunter2
sms: {url: "http://127.0.0.1:1/sms?key=x", sign: 临江应急, api_key_env: HW_SMS_KEY}
wecom:
  robots:
    E01: {key_env: "not a name"}
retry: {attempts: 0, jitter: maybe}
fallback: {wecom: dingtalk, pager: sms}
colour: red
""", encoding="utf-8")
    with pytest.raises(NotifyConfigError) as err:
        load_notify_config(path, tmp_path, environ=SECRETS)
    problems = err.value.problems
    expect = [
        (3, "email.port: 'abc' is not a port; use an integer 1..65535"),
        (5, "email.password: a credential must not be written in this file"),
        (5, "password_env: HW_"),
        (6, "sms.url: 'http://127.0.0.1:1/sms?key=x' is not an http(s) URL without a query"),
        (9, "wecom.robots.E01.key_env: 'not a name' is not an environment variable name"),
        (10, "retry.attempts: 0 is out of range; use an integer 1..20"),
        (10, "retry.jitter: 'maybe' is not true/false"),
        (11, "fallback.wecom: falls back to dingtalk, which has no section above"),
        (11, "fallback.pager: 'pager' is not a channel"),
        (12, "colour: unknown key; use one of"),
    ]
    for line, text in expect:
        assert any(p.startswith(f"{path} line {line}: ") and text in p for p in problems), (line, text, problems)
    assert str(path) in str(err.value)


def test_a_missing_secret_names_the_variable_the_file_and_the_fix(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with pytest.raises(NotifyConfigError) as err:
        load_notify_config(path, tmp_path / "secrets", environ={k: v for k, v in SECRETS.items() if k != "HW_SMS_KEY"})
    (problem,) = err.value.problems
    assert problem.startswith(f"{path} line 9: sms.api_key_env: no SMS gateway API key")
    assert "environment variable HW_SMS_KEY is not set" in problem and "export HW_SMS_KEY=" in problem


def test_secrets_resolve_env_first_then_a_file_under_the_secrets_dir(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "wecom").mkdir(parents=True)
    (secrets / "wecom" / "E01").write_text("from-file\n")
    path = write_config(tmp_path, extra="")
    path.write_text(path.read_text().replace("{key_env: HW_WECOM_KEY_E01}",
                                             "{key_env: HW_WECOM_KEY_E01, key_file: wecom/E01}"))
    env = {k: v for k, v in SECRETS.items() if k != "HW_WECOM_KEY_E01"}
    assert load_notify_config(path, secrets, environ=env).wecom == {"E01": "from-file"}
    assert load_notify_config(path, secrets, environ=SECRETS).wecom == {"E01": "wecom-key/E01+="}
    assert "from-file" not in repr(load_notify_config(path, secrets, environ=env))


def test_the_shipped_example_is_valid() -> None:
    example = PROJECT_ROOT / "deploy" / "examples" / "notify.yaml"
    cfg = load_notify_config(example, Path("/nonexistent"), environ={}, require_secrets=False)
    assert set(cfg.wecom) == {f"E0{i}" for i in range(1, 9)}
    assert set(cfg.dingtalk) == {"D01", "D02", "D03", "city"}
    assert "command-centre" in cfg.webhook and cfg.email is not None and cfg.email.port == 8025
    assert cfg.fallback["wecom"] == "sms"
    with pytest.raises(NotifyConfigError) as err:
        load_notify_config(example, Path("/nonexistent"), environ={})
    assert any("HW_WECOM_KEY_E01" in p for p in err.value.problems)
