"""InfluxDB output: line protocol built from columnar batches, written in large requests, retried until stored.

Points are keyed by measurement + tags + timestamp, so writing the same reading twice (a replay after a
restart) overwrites it with itself: at-least-once delivery gives exactly-once storage.
"""

from __future__ import annotations

import asyncio
from typing import Any

from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from hazardwatch.config import Settings
from hazardwatch.model import ReadingBatch
from hazardwatch.registry import Registry


def _tag(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field_str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


class InfluxWriter:
    """Async writer that returns only when InfluxDB has accepted the data; retries with backoff forever."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.client: InfluxDBClientAsync | None = None
        self.retries = 0

    async def ensure_started(self) -> None:
        if self.client is not None:
            return
        self.client = InfluxDBClientAsync(url=self.s.influx_url, token=self.s.influx_token(), org=self.s.influx_org,
                                          timeout=30_000)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def write(self, body: str) -> None:
        if not body:
            return
        assert self.client is not None, "InfluxWriter.ensure_started() first"
        delay = 0.5
        while True:
            try:
                await self.client.write_api().write(bucket=self.s.influx_bucket, record=body,
                                                    write_precision=WritePrecision.MS)
                return
            except Exception as exc:  # InfluxDB down or overloaded: hold the ack and retry
                self.retries += 1
                print(f"influx: write failed ({type(exc).__name__}: {str(exc)[:200]}); retry in {delay:.1f}s",
                      flush=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
