"""InfluxDB output: line protocol built from columnar batches, written in large requests, retried until stored.

Points are keyed by measurement + tags + timestamp, so writing the same reading twice (a replay after a
restart) overwrites it with itself: at-least-once delivery gives exactly-once storage.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from hazardwatch.config import Settings
from hazardwatch.logs import get_logger
from hazardwatch.metrics import WorkerMetrics
from hazardwatch.model import ReadingBatch
from hazardwatch.registry import Registry

log = get_logger("influx")


def _tag(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field_str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sub_ms(event_id: str) -> int:
    """0..999,999 ns, stable for an event id (hex as made by alerts.model.event_id; anything else is hashed)."""
    try:
        return int(event_id[:12], 16) % 1_000_000
    except ValueError:
        return zlib.crc32(event_id.encode()) % 1_000_000


class LineProtocol:
    """Per-sensor line prefixes computed once from the registry; a batch only appends value and time."""

    def __init__(self, registry: Registry):
        self.reg = registry
        self.prefix: dict[str, str] = {}
        for sid, s in registry.sensors.items():
            src = registry.sources[s.source]
            ent = registry.enterprises[src.enterprise]
            self.prefix[sid] = (f"reading,district={_tag(ent.district)},enterprise={_tag(ent.id)},"
                                f"source={_tag(src.id)},sensor={_tag(sid)},kind={_tag(s.kind)} v=")

    def readings(self, batches: list[ReadingBatch]) -> str:
        parts = []
        p = self.prefix
        for b in batches:
            vals = b.values.tolist()
            parts.append("\n".join([f"{p[s]}{v!r},q={q}i {t}" for s, v, q, t in
                                    zip(b.sensors, vals, b.quality.tolist(), b.ts_ms.tolist(), strict=True)]))
        return "\n".join(parts)

    def alerts(self, records: list[dict[str, Any]]) -> str:
        lines = []
        for r in records:
            tag_values = [("district", r["district"]), ("enterprise", r["enterprise"]), ("source", r["source"]),
                          ("sensor", r["sensor"]), ("rule", r["rule"]), ("limit", r.get("limit", "")),
                          ("state", r["state"]), ("category", r.get("category", ""))]
            # Line protocol has no empty tag values: leave out the ones a rule does not use.
            tags = "alert," + ",".join(f"{k}={_tag(str(v))}" for k, v in tag_values if v)
            fields = (f"level={int(r['level'])}i,value={float(r['value'])!r},threshold={float(r['threshold'])!r},"
                      f"alert_id={_field_str(r['alert_id'])},text_zh={_field_str(r['text_zh'])},"
                      f"text_en={_field_str(r['text_en'])},clause={_field_str(r['clause'])}")
            lines.append(f"{tags} {fields} {int(r['ts_ms'])}")
        return "\n".join(lines)

    def alert_events(self, events: list[dict[str, Any]]) -> str:
        """Lifecycle transitions (ack, shelve, escalate, page, notify ...) for dashboard annotations.

        The alert id is a tag (alerts number thousands a year, so the series count stays small). One batch can
        raise, clear and re-raise an alert within the same millisecond, and one recipient can get two pages in
        it, so the time is written in nanoseconds: the event's millisecond plus a sub-millisecond offset taken
        from its deterministic event id. Distinct events never overwrite each other, a replayed one overwrites
        itself, and every reader that works in milliseconds sees the event's own time. Write with NS precision."""
        lines = []
        for e in events:
            snap = e.get("alert") if isinstance(e.get("alert"), dict) else {}
            page = e.get("page") if isinstance(e.get("page"), dict) else {}
            notify = e.get("notify") if isinstance(e.get("notify"), dict) else {}
            tag_values = [("district", e.get("district")), ("enterprise", e.get("enterprise")),
                          ("source", e.get("source")), ("kind", e.get("kind")), ("action", e.get("action")),
                          ("alert_id", e.get("alert_id")), ("channel", notify.get("channel")),
                          ("recipient", notify.get("recipient")), ("tier", page.get("tier_name"))]
            tags = "alert_event," + ",".join(f"{k}={_tag(str(v))}" for k, v in tag_values if v)
            level = snap.get("level") or page.get("level") or 0
            fields = (f"event_id={_field_str(str(e.get('event_id') or ''))},"
                      f"actor={_field_str(str(e.get('actor') or ''))},reason={_field_str(str(e.get('reason') or ''))},"
                      f"to_state={_field_str(str(e.get('to_state') or ''))},level={int(level)}i")
            lines.append(f"{tags} {fields} {int(e['ts_ms']) * 1_000_000 + _sub_ms(str(e.get('event_id') or ''))}")
        return "\n".join(lines)


class InfluxWriter:
    """Async writer that returns only when InfluxDB has accepted the data; retries with backoff forever."""

    def __init__(self, settings: Settings, metrics: WorkerMetrics | None = None):
        self.s = settings
        self.client: InfluxDBClientAsync | None = None
        self.retries = 0
        self.metrics = metrics

    async def ensure_started(self) -> None:
        if self.client is not None:
            return
        self.client = InfluxDBClientAsync(url=self.s.influx_url, token=self.s.influx_token(), org=self.s.influx_org,
                                          timeout=30_000)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def write(self, body: str, points: int = 0, bucket: str | None = None, measurement: str = "reading",
                    precision: str = WritePrecision.MS) -> None:
        """points: how many lines the body holds, for the metric (the caller knows; counting would rescan the
        body). bucket: the raw bucket unless told (alarm records go to their long-retention bucket)."""
        if not body:
            return
        assert self.client is not None, "InfluxWriter.ensure_started() first"
        delay = 0.5
        while True:
            try:
                await self.client.write_api().write(bucket=bucket or self.s.influx_bucket, record=body,
                                                    write_precision=precision)
                if self.metrics is not None:
                    self.metrics.points.labels(measurement).inc(points)
                return
            except Exception as exc:  # InfluxDB down or overloaded: hold the ack and retry
                self.retries += 1
                if self.metrics is not None:
                    self.metrics.write_retries.inc()
                log.warning(f"influx: write failed ({type(exc).__name__}: {str(exc)[:200]}); retry in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
