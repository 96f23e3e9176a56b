"""Notification channels: webhook, e-mail, SMS gateway, WeCom and DingTalk group robots.

Each channel turns one Message into one provider call and returns a Receipt, or raises DeliveryError saying
whether trying again could help. Retries, fallback and the record of attempts live in alerts.delivery; the
channels only know their wire formats. Every call carries the delivery id (webhook header, e-mail Message-ID,
SMS "id") so a receiver can drop a repeat; the group robots have no such field.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import quote_plus

import aiohttp
import orjson
from yarl import URL

from alerts.notify_config import NotifyConfig

WECOM_MAX_BYTES = 2048  # text.content limit, developer.work.weixin.qq.com/document/path/91770
DINGTALK_MAX_BYTES = 20000
WECOM_RATE_LIMITED = 45009
DINGTALK_TOO_FAST = 130101


class DeliveryError(Exception):
    """A send failed. ``retryable``: the same call may succeed later (5xx, timeout, rate limit)."""

    def __init__(self, status: str, detail: str, retryable: bool):
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.retryable = str(status), detail, retryable


@dataclass(frozen=True)
class Receipt:
    status: str  # HTTP status, SMTP reply code or provider errcode
    receipt: str | None = None  # the provider's message id or reply text


@dataclass(frozen=True)
class Message:
    """What is said, built from a page (alerts-spec "Page"); ``delivery_id`` is set per recipient and channel."""

    page_id: str
    alert_id: str
    level: int
    colour: str
    title_zh: str
    title_en: str
    text_zh: str
    text_en: str
    purpose: str = "alert"
    delivery_id: str = ""

    @classmethod
    def from_page(cls, page: dict[str, Any], alert_id: str | None = None) -> Message:
        return cls(page["page_id"], alert_id or page.get("alert_id") or "", int(page["level"]), page["colour"],
                   page.get("title_zh", ""), page.get("title_en", ""), page.get("text_zh", ""),
                   page.get("text_en", ""), page.get("purpose", "alert"))

    def for_delivery(self, delivery_id: str) -> Message:
        return replace(self, delivery_id=delivery_id)

    @property
    def zh(self) -> str:
        # Alert texts already open with their own header (【红色预警】, 【预警解除】...); do not say it twice.
        return self.text_zh if self.text_zh.startswith(("【", self.title_zh)) else f"{self.title_zh}{self.text_zh}"

    @property
    def en(self) -> str:
        if self.text_en.startswith(("[", self.title_en)):
            return self.text_en
        return f"{self.title_en} {self.text_en}".strip()

    @property
    def bilingual(self) -> str:
        return f"{self.zh}\n{self.en}"

    def subject(self) -> str:
        return f"{clip_chars(self.zh, 60)} {self.title_en}".strip()


def clip_chars(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_bytes(text: str, limit: int) -> str:
    """Cut to at most ``limit`` UTF-8 bytes on a character boundary (never half a Chinese character)."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[: limit - len("…".encode())].decode("utf-8", errors="ignore") + "…"


def mobile(phone: str) -> str:
    """+86-13970010000 -> 13970010000: the robots match group members by their bare mainland number."""
    digits = "".join(ch for ch in phone if ch.isdigit() or ch == "+")
    return digits[3:] if digits.startswith("+86") else digits.lstrip("+")


class Channel(Protocol):
    name: str

    async def send(self, msg: Message, address: str, mentions: list[str]) -> Receipt: ...


class Http:
    """One shared aiohttp session, created on first use inside the running loop."""

    def __init__(self, timeout_s: float):
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str | URL, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        data = orjson.dumps(body)
        return await self.post_raw(url, data, headers)

    async def post_raw(self, url: str | URL, data: bytes,
                       headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        try:
            async with self._session.post(url, data=data, headers=hdrs, allow_redirects=False) as resp:
                return resp.status, await resp.read(), {k.lower(): v for k, v in resp.headers.items()}
        except TimeoutError:
            raise DeliveryError("timeout", f"no answer within {self._timeout.total:g} s", True) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError("connect", f"{type(exc).__name__}: {exc}", True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _check_http(status: int, body: bytes) -> None:
    if 200 <= status < 300:
        return
    retryable = status >= 500 or status in (408, 425, 429)
    raise DeliveryError(str(status), body[:200].decode("utf-8", errors="replace"), retryable)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


class WebhookChannel:
    """POST the page as JSON, signed: X-Hazardwatch-Signature = "sha256=" + hex HMAC-SHA256(secret, body)."""

    name = "webhook"

    def __init__(self, config: NotifyConfig, http: Http, clock_ms: Callable[[], int]):
        self.endpoints, self.http, self.clock_ms = config.webhook, http, clock_ms

    async def send(self, msg: Message, address: str, mentions: list[str]) -> Receipt:
        ep = self.endpoints.get(address)
        if ep is None:
            raise DeliveryError("unknown_endpoint", f"no webhook endpoint named {address!r} in the config", False)
        sent_ms = self.clock_ms()
        body = orjson.dumps({
            "delivery_id": msg.delivery_id, "page_id": msg.page_id, "alert_id": msg.alert_id,
            "level": msg.level, "colour": msg.colour, "purpose": msg.purpose,
            "title_zh": msg.title_zh, "title_en": msg.title_en, "text_zh": msg.text_zh, "text_en": msg.text_en,
            "text": msg.bilingual, "mentions": mentions, "sent_ms": sent_ms,
        })
        signature = hmac.new(ep.secret.encode(), body, hashlib.sha256).hexdigest()
        status, reply, headers = await self.http.post_raw(ep.url, body, {
            "X-Hazardwatch-Signature": f"sha256={signature}", "X-Hazardwatch-Timestamp": str(sent_ms),
            "X-Hazardwatch-Delivery": msg.delivery_id})
        _check_http(status, reply)
        data = _json(reply)
        receipt = (data.get("id") or data.get("receipt")) if isinstance(data, dict) else None
        return Receipt(str(status), str(receipt or headers.get("x-request-id") or "") or None)


class EmailChannel:
    """SMTP through the standard library in a worker thread; Message-ID <delivery_id@hazardwatch>."""

    name = "email"

    def __init__(self, config: NotifyConfig):
        assert config.email is not None
        self.cfg, self.timeout_s = config.email, config.timeout_s

    def compose(self, msg: Message, address: str) -> EmailMessage:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self.cfg.sender, address, msg.subject()
        mail["Message-ID"] = f"<{msg.delivery_id}@hazardwatch>"
        mail["Date"] = formatdate(localtime=False)
        mail["X-Hazardwatch-Delivery"] = msg.delivery_id
        mail.set_content(f"{msg.zh}\n\n{msg.en}\n\n-- hazardwatch page {msg.page_id} / alert {msg.alert_id}\n",
                         charset="utf-8", cte="base64")  # 7-bit safe through any relay
        return mail

    async def send(self, msg: Message, address: str, mentions: list[str]) -> Receipt:
        if "@" not in address:
            raise DeliveryError("bad_address", f"{address!r} is not an e-mail address", False)
        return await asyncio.to_thread(self._send, self.compose(msg, address), address)

    def _send(self, mail: EmailMessage, address: str) -> Receipt:
        cfg = self.cfg
        try:
            if cfg.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, local_hostname=cfg.helo,
                                                      timeout=self.timeout_s, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, local_hostname=cfg.helo, timeout=self.timeout_s)
            with smtp:
                if cfg.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username:
                    smtp.login(cfg.username, cfg.password or "")
                smtp.ehlo_or_helo_if_needed()
                for code, reply in (smtp.mail(cfg.sender), smtp.rcpt(address)):
                    if code not in (250, 251):
                        raise smtplib.SMTPResponseException(code, reply)
                code, reply = smtp.data(mail.as_bytes())
                if code != 250:
                    raise smtplib.SMTPResponseException(code, reply)
                return Receipt(str(code), reply.decode("utf-8", errors="replace"))
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(str(exc.smtp_code), "login refused; check the SMTP user name and password",
                                False) from None
        except smtplib.SMTPResponseException as exc:
            # 4xx is the server asking us to come back later; 5xx is a permanent refusal.
            detail = exc.smtp_error.decode("utf-8", errors="replace") if isinstance(exc.smtp_error, bytes) \
                else str(exc.smtp_error)
            raise DeliveryError(str(exc.smtp_code), detail, 400 <= exc.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError("connect", f"{type(exc).__name__}: {exc}", True) from None


class SmsChannel:
    """A generic SMS gateway: POST {"phone","text","sign","id"} with a bearer API key; Chinese text only."""

    name = "sms"

    def __init__(self, config: NotifyConfig, http: Http):
        assert config.sms is not None
        self.cfg, self.http = config.sms, http

    async def send(self, msg: Message, address: str, mentions: list[str]) -> Receipt:
        if not any(ch.isdigit() for ch in address):
            raise DeliveryError("bad_address", f"{address!r} is not a phone number", False)
        body = {"phone": address, "text": clip_chars(msg.zh, self.cfg.max_chars), "sign": self.cfg.sign,
                "id": msg.delivery_id}
        status, reply, _ = await self.http.post(self.cfg.url, body,
                                                {"Authorization": f"Bearer {self.cfg.api_key}"})
        _check_http(status, reply)
        data = _json(reply)
        if isinstance(data, dict) and "code" in data and data["code"] not in (0, "0", "OK"):
            raise DeliveryError(str(data["code"]), str(data.get("message") or data.get("msg") or ""), False)
        receipt = next((data[k] for k in ("message_id", "msg_id", "biz_id", "id") if k in data), None) \
            if isinstance(data, dict) else None
        return Receipt(str(status), str(receipt) if receipt is not None else None)


def _robot_result(status: int, reply: bytes, retry_code: int) -> Receipt:
    _check_http(status, reply)
    data = _json(reply)
    if not isinstance(data, dict) or "errcode" not in data:
        raise DeliveryError(str(status), f"unexpected reply {reply[:200]!r}", False)
    code = data["errcode"]
    if code != 0:
        raise DeliveryError(str(code), str(data.get("errmsg", "")), code == retry_code)
    return Receipt("0", str(data.get("errmsg") or "ok"))


class WecomChannel:
    """企业微信群机器人: POST {url}?key=<key> {"msgtype":"text","text":{"content","mentioned_mobile_list"}}."""

    name = "wecom"

    def __init__(self, config: NotifyConfig, http: Http):
        self.url, self.robots, self.http = config.wecom_url, config.wecom, http

    async def send(self, msg: Message, address: str, mentions: list[str]) -> Receipt:
        key = self.robots.get(address)
        if key is None:
            raise DeliveryError("unknown_robot", f"no WeCom robot named {address!r} in the config", False)
        body = {"msgtype": "text", "text": {"content": clip_bytes(msg.bilingual, WECOM_MAX_BYTES),
                                            "mentioned_mobile_list": [mobile(p) for p in mentions]}}
        status, reply, _ = await self.http.post(URL(f"{self.url}?key={quote_plus(key)}", encoded=True), body)
        return _robot_result(status, reply, WECOM_RATE_LIMITED)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HmacSHA256(key=secret, f"{timestamp}\\n{secret}")), before URL-encoding (钉钉自定义机器人加签)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class DingtalkChannel:
    """钉钉自定义机器人 (加签): POST {url}?access_token&timestamp&sign {"msgtype":"text",...,"at":{...}}."""

    name = "dingtalk"

    def __init__(self, config: NotifyConfig, http: Http, clock_ms: Callable[[], int]):
        self.url, self.robots, self.http, self.clock_ms = config.dingtalk_url, config.dingtalk, http, clock_ms

    async def send(self, msg: Message, address: str, mentions: list[str]) -> Receipt:
        robot = self.robots.get(address)
        if robot is None:
            raise DeliveryError("unknown_robot", f"no DingTalk robot named {address!r} in the config", False)
        phones = [mobile(p) for p in mentions]
        # DingTalk highlights an @ only when the number also appears in the content.
        at = "".join(f" @{p}" for p in phones)
        content = clip_bytes(msg.bilingual, DINGTALK_MAX_BYTES - len(at.encode())) + at
        body = {"msgtype": "text", "text": {"content": content}, "at": {"atMobiles": phones, "isAtAll": False}}
        ts = self.clock_ms()  # wall clock: DingTalk refuses a timestamp more than an hour off
        url = (f"{self.url}?access_token={quote_plus(robot.token)}&timestamp={ts}"
               f"&sign={quote_plus(dingtalk_sign(robot.secret, ts))}")
        status, reply, _ = await self.http.post(URL(url, encoded=True), body)
        return _robot_result(status, reply, DINGTALK_TOO_FAST)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Channels:
    """The configured channels, sharing one HTTP session. ``async with Channels(cfg) as ch: ...`` closes it."""

    def __init__(self, config: NotifyConfig, clock_ms: Callable[[], int] = wall_ms):
        self.config = config
        self.http = Http(config.timeout_s)
        have = config.configured()
        self.by_name: dict[str, Channel] = {}
        if "webhook" in have:
            self.by_name["webhook"] = WebhookChannel(config, self.http, clock_ms)
        if "email" in have:
            self.by_name["email"] = EmailChannel(config)
        if "sms" in have:
            self.by_name["sms"] = SmsChannel(config, self.http)
        if "wecom" in have:
            self.by_name["wecom"] = WecomChannel(config, self.http)
        if "dingtalk" in have:
            self.by_name["dingtalk"] = DingtalkChannel(config, self.http, clock_ms)

    @property
    def fallback(self) -> dict[str, str]:
        return self.config.fallback

    def get(self, name: str) -> Channel | None:
        return self.by_name.get(name)

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> Channels:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
