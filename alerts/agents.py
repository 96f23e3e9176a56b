"""The alert stage inside the Faust worker: lifecycle and escalation, notification, flood watch, audit chain.

- manage:  detections + alert-commands (keyed by source) -> AlertManager -> alert-events. Each source's alert
           state, escalation timers included, is checkpointed in the table `alert-state` before the batch is
           acknowledged, so a restarted or rebalanced worker carries on with the same deadlines.
- escalate (timer, 1 s): the clock's due steps for the sources this worker owns.
- notify:  alert-events pages -> channels; every attempt back onto alert-events; the table `notify-log`
           (delivery id -> outcome) is the notification log, so a restart never sends a delivery twice.
- audit:   alert-events -> the hash-chained audit file (one partition: one writer, one order).
- history: alert-events -> InfluxDB measurement `alert_event` in the alarm bucket (dashboard annotations).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from influxdb_client import WritePrecision

from alerts.audit import AuditLog
from alerts.channels import Channels
from alerts.delivery import deliver
from alerts.kpi import FloodWatch
from alerts.manager import AlertManager
from alerts.model import ALERT_COMMANDS, ALERT_EVENTS, event_id
from alerts.notify_config import load_notify_config
from hazardwatch.clock import clock_from_env
from hazardwatch.config import Settings
from hazardwatch.influx import InfluxWriter, LineProtocol
from hazardwatch.logs import get_logger
from hazardwatch.metrics import WorkerMetrics
from hazardwatch.registry import Registry
from hazardwatch.storage import alarm_bucket

log = get_logger("worker")


def audit_path(settings: Settings) -> Path:
    return Path(os.environ.get("HW_AUDIT_PATH") or settings.home / "audit" / f"{settings.app_id}.jsonl")


def notify_channels(settings: Settings) -> Channels | None:
    """The configured channels, or None (with a warning) when HW_NOTIFY_CONFIG is unset: pages are then
    recorded as not delivered, visibly, rather than silently dropped."""
    path = os.environ.get("HW_NOTIFY_CONFIG")
    if not path:
        log.warning("worker: WARNING no HW_NOTIFY_CONFIG: pages are recorded but nobody is notified; point it at a "
                    "file like deploy/examples/notify.yaml")
        return None
    return Channels(load_notify_config(path, settings.secrets_dir))


def install(app: faust.App, settings: Settings, registry: Registry, detections: faust.TopicT,
            fatal_on_error: Callable, stats: dict[str, int], *, metrics: WorkerMetrics, writer: InfluxWriter,
            lp: LineProtocol) -> None:
    now_ms = clock_from_env()
    p = settings.partitions
    commands = app.topic(settings.topic(ALERT_COMMANDS), key_type=bytes, value_type=bytes, value_serializer="raw",
                         key_serializer="raw", partitions=p)
    events_topic = app.topic(settings.topic(ALERT_EVENTS), key_type=bytes, value_type=bytes,
                             value_serializer="raw", key_serializer="raw", partitions=1)
    schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    alert_state = app.Table("alert-state", default=None, schema=schema, partitions=p, use_partitioner=True)
    manager = AlertManager(registry)
    loaded: set[str] = set()
    lock = asyncio.Lock()  # the agent and the timer share one manager; keep their batches whole
    stats.update(alert_events=0, commands=0)

    def ensure(src: str) -> None:
        if src not in loaded:
            manager.import_source(src, alert_state.get(src))
            loaded.add(src)

    async def publish(events: list[dict[str, Any]], sources: set[str]) -> None:
        futs = [await events_topic.send(key=(e["source"] or "-").encode(), value=orjson.dumps(e), partition=0)
                for e in events]
        if futs:
            await asyncio.gather(*futs)
        for src in sources:
            alert_state[src] = manager.export_source(src)
        await app.producer.flush()
        stats["alert_events"] += len(events)
        for e in events:
            metrics.alert_events.labels(e["kind"], e.get("action") or "").inc()

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set, **kwargs: Any) -> None:
        loaded.clear()

    @app.agent(app.topic(detections.get_topic_name(), commands.get_topic_name(), key_type=bytes, value_type=bytes,
                         value_serializer="raw", key_serializer="raw", partitions=p))
    @fatal_on_error
    async def manage(stream: faust.StreamT) -> None:
        cmd_topic = commands.get_topic_name()
        async for events in stream.noack_take(500, within=0.05):
            async with lock:
                now = now_ms()
                out: list[dict[str, Any]] = []
                touched: set[str] = set()
                for e in events:
                    rec = orjson.loads(e.value)
                    src = rec.get("source", "")
                    if src not in registry.sources:
                        continue  # a command for a source nobody knows: the console never sends one
                    ensure(src)
                    touched.add(src)
                    if e.message.topic == cmd_topic:
                        stats["commands"] += 1
                        out += manager.on_command(rec, now)
                    else:
                        out += manager.on_detection(rec, now)
                await publish(out, touched)
            for e in events:
                await stream.ack(e)

    def owned_sources() -> list[str]:
        parts = {tp.partition for tp in app.consumer.assignment() if tp.topic == detections.get_topic_name()}
        return [src for src in registry.sources if (murmur2(src.encode()) & 0x7FFFFFFF) % p in parts]

    @app.timer(1.0)
    async def escalate() -> None:
        if not app.tables.recovery.completed.is_set():
            return  # the alert-state table is still being restored: judging now would forget open alerts
        async with lock:
            sources = owned_sources()
            for src in sources:
                ensure(src)
            out = manager.tick(now_ms(), sources)
            if out:
                await publish(out, {e["source"] for e in out if e["source"]})

    # ---- notification, flood watch and audit: one partition, one owner ---------------------------------------
    notify_log = app.Table("notify-log", default=None, schema=schema, partitions=1, use_partitioner=True)
    flood_table = app.Table("flood-watch", default=None, schema=schema, partitions=1, use_partitioner=True)
    channels = notify_channels(settings)
    flood = FloodWatch()
    flood_loaded: list[bool] = [False]
    audit: dict[str, AuditLog | None] = {"log": None}
    stats.update(pages=0, delivered=0, failed=0, audited=0, floods=0)

    async def emit(ev: dict[str, Any]) -> None:
        await events_topic.send(key=(ev.get("source") or "-").encode(), value=orjson.dumps(ev), partition=0)
        metrics.alert_events.labels(ev["kind"], ev.get("action") or "").inc()

    async def send_page(ev: dict[str, Any]) -> None:
        page = ev["page"]
        if not page["recipients"]:
            return
        stats["pages"] += 1

        async def on_attempt(rec: dict[str, Any]) -> None:
            stats["delivered" if rec["ok"] else "failed"] += 1
            metrics.notifications.labels(rec["channel"], "delivered" if rec["ok"] else "failed").inc()
            await emit({"event_id": event_id("notify", rec["delivery_id"], rec["attempt"], rec["ts_ms"]),
                        "kind": "notify", "action": "delivered" if rec["ok"] else "attempt_failed",
                        "ts_ms": rec["ts_ms"], "actor": "system",
                        "reason": rec.get("error") or rec.get("status") or "", "rule_version": ev["rule_version"],
                        "source": ev["source"], "enterprise": ev["enterprise"], "district": ev["district"],
                        "alert_id": ev["alert_id"], "alert": None, "from_state": None, "to_state": None,
                        "page": None, "notify": rec, "flood": None})

        if channels is None:
            now = now_ms()
            for r in page["recipients"]:
                await on_attempt({"delivery_id": event_id("unconfigured", page["page_id"], r["name"]),
                                  "page_id": page["page_id"], "alert_id": ev["alert_id"], "channel": "none",
                                  "recipient": r["name"], "address": "", "attempt": 1, "ok": False,
                                  "status": "not_configured", "error": "HW_NOTIFY_CONFIG is not set",
                                  "fallback_of": None, "receipt": None, "ts_ms": now})
            return
        await deliver(page, channels, notify_log, now_ms, on_attempt=on_attempt, alert_id=ev["alert_id"])

    @app.agent(events_topic)
    @fatal_on_error
    async def notify(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(200, within=0.05):
            evs = [orjson.loads(e.value) for e in events]
            if not flood_loaded[0]:
                saved = flood_table.get("state")
                if saved:
                    flood.import_(saved)
                flood_loaded[0] = True
            floods = [f for f in (flood.observe(ev) for ev in evs) if f]
            for f in floods:
                stats["floods"] += 1
                await emit(f)
            if floods or any(ev["kind"] == "transition" for ev in evs):
                flood_table["state"] = flood.export()
            # Deliveries run side by side: one dead endpoint's backoff must not hold up a red page elsewhere.
            await asyncio.gather(*(send_page(ev) for ev in evs if ev["kind"] == "page"))
            await app.producer.flush()
            for e in events:
                await stream.ack(e)

    @app.agent(events_topic)
    @fatal_on_error
    async def audit_chain(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(500, within=0.2):
            if audit["log"] is None:
                audit["log"] = AuditLog(audit_path(settings))
            # Durable (fsync) before the offsets move on: an acknowledged event is always in the chain.
            stats["audited"] += len(audit["log"].append(orjson.loads(e.value) for e in events))
            for e in events:
                await stream.ack(e)

    bucket = alarm_bucket(settings)

    @app.agent(events_topic)
    @fatal_on_error
    async def history(stream: faust.StreamT) -> None:
        await writer.ensure_started()
        async for events in stream.noack_take(500, within=0.2):
            await writer.write(lp.alert_events([orjson.loads(e.value) for e in events]), len(events), bucket,
                               "alert_event", WritePrecision.NS)
            for e in events:
                await stream.ack(e)

    @app.on_partitions_revoked.connect
    async def release_audit(sender: Any, revoked: set, **kwargs: Any) -> None:
        # Another worker may own alert-events next; it must be able to take the audit file's lock.
        if audit["log"] is not None:
            audit["log"].close()
            audit["log"] = None
        flood_loaded[0] = False
