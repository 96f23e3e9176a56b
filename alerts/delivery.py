"""Deliver one page to its recipients: retries with backoff, fallback channels, a record of every attempt.

Order for one recipient: its first channel (the primary), tried up to ``retry.attempts`` times while failures are
retryable. When it gives up, the next channel is the config's fallback for the failed one (e.g. wecom -> sms) if
the recipient has an address for it, otherwise the recipient's next listed channel; each again with retries, until
one succeeds or none is left. Attempts on a fallback carry ``fallback_of`` = the primary channel.

No double sends after a restart: ``log`` (delivery_id -> {"ok", "channel", "ts_ms", "receipt"}, in production a
Faust table, persisted by the caller) is read before anything is sent; a recipient with any of its delivery ids
already recorded ok is skipped. A final outcome is written straight after it happens.

Residual window: a crash after the provider accepted a message but before the log write re-sends that message
after the restart. The repeat carries the same delivery id (the id is deterministic from page, recipient and
channel): webhook receivers drop it by X-Hazardwatch-Delivery, mail systems and readers recognise the same
Message-ID <delivery_id@hazardwatch>, and the SMS gateway gets the same "id" to de-duplicate on. WeCom and DingTalk
robots take no idempotency key, so there the window can show a message twice: at-least-once, never zero times.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from alerts.channels import Channels, DeliveryError, Message
from alerts.model import delivery_id
from alerts.notify_config import RetryPolicy

OnAttempt = Callable[[dict[str, Any]], Awaitable[None] | None]


def backoff_s(policy: RetryPolicy, attempt: int, key: str) -> float:
    """The wait after failed attempt ``attempt`` (1-based). Jitter is 'full' and seeded by the delivery id, so it
    spreads retries of many deliveries yet replays identically in tests."""
    ceiling = min(policy.cap_s, policy.base_s * policy.factor ** (attempt - 1))
    return random.Random(f"{key}|{attempt}").uniform(0.0, ceiling) if policy.jitter else ceiling


def already_delivered(page: dict[str, Any], recipient: dict[str, Any], log: MutableMapping[str, dict]) -> bool:
    return any((log.get(delivery_id(page["page_id"], recipient["name"], ch)) or {}).get("ok")
               for ch in recipient.get("channels") or {})


async def deliver(page: dict[str, Any], channels: Channels, log: MutableMapping[str, dict],
                  now_ms: Callable[[], int], sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                  retry: RetryPolicy | None = None, on_attempt: OnAttempt | None = None,
                  alert_id: str | None = None) -> list[dict[str, Any]]:
    """Send ``page`` to every recipient not yet served; return the notify records of all attempts, in recipient
    order. Recipients are served concurrently so one dead endpoint's backoff does not delay the others.
    ``alert_id`` overrides page["alert_id"] (alerts.manager puts it in the page; else pass the event's)."""
    msg = Message.from_page(page, alert_id)
    run = _Run(msg, channels, log, now_ms, sleep, retry or channels.config.retry, on_attempt,
               list(page.get("mentions") or []))
    todo: list[dict[str, Any]] = []
    names: set[str] = set()
    for r in page.get("recipients") or []:
        # One person listed twice (two roles) has the same delivery ids: serve them once.
        if r.get("channels") and r["name"] not in names and not already_delivered(page, r, log):
            todo.append(r)
            names.add(r["name"])
    results = await asyncio.gather(*(run.recipient(r) for r in todo))
    return [rec for recs in results for rec in recs]


class _Run:
    def __init__(self, msg: Message, channels: Channels, log: MutableMapping[str, dict], now_ms: Callable[[], int],
                 sleep: Callable[[float], Awaitable[None]], policy: RetryPolicy, on_attempt: OnAttempt | None,
                 mentions: list[str]):
        self.msg, self.channels, self.log, self.now_ms, self.sleep = msg, channels, log, now_ms, sleep
        self.policy, self.on_attempt, self.mentions = policy, on_attempt, mentions

    async def recipient(self, r: dict[str, Any]) -> list[dict[str, Any]]:
        addresses: dict[str, str] = r["channels"]
        primary = next(iter(addresses))
        records: list[dict[str, Any]] = []
        tried: list[str] = []
        channel: str | None = primary
        while channel is not None:
            tried.append(channel)
            fallback_of = None if channel == primary else primary
            if await self.channel(r["name"], channel, addresses[channel], fallback_of, records):
                break
            channel = self.next_channel(channel, addresses, tried)
        return records

    def next_channel(self, failed: str, addresses: dict[str, str], tried: list[str]) -> str | None:
        preferred = self.channels.fallback.get(failed)
        if preferred in addresses and preferred not in tried:
            return preferred
        return next((ch for ch in addresses if ch not in tried), None)

    async def channel(self, name: str, channel: str, address: str, fallback_of: str | None,
                      records: list[dict[str, Any]]) -> bool:
        did = delivery_id(self.msg.page_id, name, channel)
        msg = self.msg.for_delivery(did)
        sender = self.channels.get(channel)
        attempt = 0
        while True:
            attempt += 1
            rec: dict[str, Any] = {
                "delivery_id": did, "page_id": msg.page_id, "alert_id": msg.alert_id, "channel": channel,
                "recipient": name, "address": address, "attempt": attempt, "ok": False, "status": "",
                "error": None, "fallback_of": fallback_of, "receipt": None, "ts_ms": 0}
            retryable = False
            try:
                if sender is None:
                    raise DeliveryError("not_configured", f"no {channel} section in {self.channels.config.path}",
                                        False)
                receipt = await sender.send(msg, address, self.mentions)
                rec.update(ok=True, status=receipt.status, receipt=receipt.receipt)
            except DeliveryError as exc:
                rec.update(status=exc.status, error=exc.detail)
                retryable = exc.retryable
            except Exception as exc:  # a bug in one channel must not stop the fallback
                rec.update(status="error", error=f"{type(exc).__name__}: {exc}")
            rec["ts_ms"] = self.now_ms()
            records.append(rec)
            if self.on_attempt is not None:
                result = self.on_attempt(rec)
                if inspect.isawaitable(result):
                    await result
            if rec["ok"] or not retryable or attempt >= self.policy.attempts:
                self.log[did] = {"ok": rec["ok"], "channel": channel, "ts_ms": rec["ts_ms"],
                                 "receipt": rec["receipt"]}
                return bool(rec["ok"])
            await self.sleep(backoff_s(self.policy, attempt, did))
