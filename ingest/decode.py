"""Payload decoding and validation: MQTT topic + bytes -> a columnar ReadingBatch and a list of rejects.

Never raises on input. Every rejected message or reading comes back with a reason code from REASONS, the
offending bytes and a human detail, so the bridge can dead-letter it and count it. Good readings in a batch
with some bad ones still go through: one broken detector must not blind a whole tank farm.

Topic: hw/<enterprise>/<source>/<sensor> with {"ts", "v", "q"?, "u"?}
       hw/<enterprise>/<source>          with {"ts"?, "readings": [{"s", "v", "ts"?, "q"?, "u"?}, ...]}
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from hazardwatch.config import Settings
from hazardwatch.model import ReadingBatch
from hazardwatch.registry import Registry
from ingest.units import conversion

REASONS = {
    "payload_too_large": "payload larger than HW_MAX_PAYLOAD_BYTES",
    "too_many_readings": "batch holds more readings than HW_MAX_BATCH_READINGS",
    "bad_topic": "topic is not hw/<enterprise>/<source>[/<sensor>]",
    "unknown_enterprise": "topic names an enterprise not in the registry",
    "unknown_source": "topic names a hazard source not in the registry",
    "not_owner": "the topic's enterprise/source does not own this source or sensor",
    "unknown_sensor": "sensor id not in the registry",
    "malformed_json": "payload is not valid JSON",
    "bad_schema": "JSON is valid but not a reading object",
    "wrong_type": "a field has the wrong type",
    "not_finite": "value is NaN or infinite (NaN/Infinity literals or an overflowing number)",
    "bad_timestamp": "timestamp missing or unparseable",
    "ts_future": "timestamp further ahead than HW_MAX_FUTURE_S",
    "ts_too_old": "timestamp older than HW_MAX_AGE_S",
    "too_late": "older than the sensor's newest reading by more than HW_MAX_LATENESS_S",
    "duplicate": "same sensor and timestamp already accepted",
    "bad_unit": "unit cannot be converted to the registry's unit",
}
_RING = 16  # recent timestamps kept per sensor for duplicate detection


@dataclass
class Reject:
    reason: str
    detail: str
    raw: bytes


@dataclass
class Decoded:
    batch: ReadingBatch | None
    rejects: list[Reject] = field(default_factory=list)


def _parse_ts(x: Any) -> float | None:
    if type(x) in (int, float):
        return float(x)
    if isinstance(x, str) and 0 < len(x) <= 40:
        try:
            dt = datetime.fromisoformat(x)
        except ValueError:
            return None
        if dt.tzinfo is None:  # a naive time is ambiguous across time zones: refuse rather than guess
            return None
        return dt.timestamp()
    return None


class Decoder:
    """Holds the per-sensor recency state (newest timestamp, recent timestamps) used for order checks."""

    def __init__(self, registry: Registry, settings: Settings):
        self.reg = registry
        self.s = settings
        n = len(registry.sensor_ids)
        self.newest = np.full(n, -np.inf)
        self.ring = np.full((n, _RING), -1, dtype=np.int64)
        self.ring_pos = np.zeros(n, dtype=np.int64)
        self.counters: Counter[str] = Counter()
        self._sensor_unit = {sid: s.unit for sid, s in registry.sensors.items()}

    # ---- public -------------------------------------------------------------------------------------------
    def decode(self, topic: str, payload: bytes, now: float) -> Decoded:
        out = self._decode(topic, payload, now)
        for r in out.rejects:
            self.counters[r.reason] += 1
        if out.batch is not None:
            self.counters["accepted"] += len(out.batch)
        return out

    # ---- steps --------------------------------------------------------------------------------------------
    def _whole(self, reason: str, detail: str, payload: bytes) -> Decoded:
        return Decoded(None, [Reject(reason, detail, payload)])

    def _decode(self, topic: str, payload: bytes, now: float) -> Decoded:
        if len(payload) > self.s.max_payload_bytes:
            return self._whole("payload_too_large", f"{len(payload)} bytes > {self.s.max_payload_bytes}", payload)
        root = self.s.mqtt_root + "/"
        parts = [self.s.mqtt_root, *topic[len(root):].split("/")] if topic.startswith(root) else []
        if len(parts) not in (3, 4) or not all(parts[1:]):
            return self._whole("bad_topic", f"topic {topic[:200]!r} is not {root}<enterprise>/<source>[/<sensor>]",
                               payload)
        ent, src = parts[1], parts[2]
        if ent not in self.reg.enterprises:
            return self._whole("unknown_enterprise", f"enterprise {ent[:100]!r}", payload)
        source = self.reg.sources.get(src)
        if source is None:
            return self._whole("unknown_source", f"source {src[:100]!r}", payload)
        if source.enterprise != ent:
            return self._whole("not_owner", f"source {src} belongs to {source.enterprise}, not {ent}", payload)
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            doc = _lenient_json(payload)
            if doc is None:
                return self._whole("malformed_json", str(exc)[:200], payload)
            # NaN / Infinity literals and overflowing numbers parse leniently and are then refused as
            # not_finite per reading, which tells the gateway's owner exactly what is wrong.
        if not isinstance(doc, dict):
            return self._whole("bad_schema", f"top level is {type(doc).__name__}, expected an object", payload)
        if len(parts) == 4:
            if "readings" in doc:
                return self._whole("bad_schema", "a batch ('readings') must go to hw/<enterprise>/<source>", payload)
            items = [dict(doc, s=parts[3])]
            default_ts = None
        else:
            items = doc.get("readings")
            if not isinstance(items, list) or not items:
                return self._whole("bad_schema", "expected 'readings': [ {s, v, ts?, q?}, ... ]", payload)
            if len(items) > self.s.max_batch_readings:
                return self._whole("too_many_readings", f"{len(items)} > {self.s.max_batch_readings}", payload)
            default_ts = doc.get("ts")
        return self._readings(topic, src, ent, items, default_ts, now)

    def _readings(self, topic: str, src: str, ent: str, items: list, default_ts: Any, now: float) -> Decoded:
        rejects: list[Reject] = []
        sensors_reg = self.reg.sensors
        keep: list[int] = []
        slots: list[int] = []
        tss: list[float] = []
        vals: list[float] = []
        qs: list[int] = []

        def bad(i: int, reason: str, detail: str) -> None:
            rejects.append(Reject(reason, detail, _piece(items[i], topic)))

        # Field checks need per-item type inspection; everything after this pass is array code.
        for i, it in enumerate(items):
            if not isinstance(it, dict):
                bad(i, "bad_schema", f"reading {i} is {type(it).__name__}, expected an object")
                continue
            sid = it.get("s")
            if not isinstance(sid, str):
                bad(i, "wrong_type", f"reading {i}: sensor id 's' must be a string")
                continue
            sensor = sensors_reg.get(sid)
            if sensor is None:
                bad(i, "unknown_sensor", f"sensor {sid[:100]!r}")
                continue
            if sensor.source != src:
                bad(i, "not_owner", f"sensor {sid} belongs to source {sensor.source}, topic is {ent}/{src}")
                continue
            v = it.get("v")
            if type(v) not in (int, float):
                bad(i, "wrong_type", f"sensor {sid}: value 'v' must be a number, got {type(v).__name__}")
                continue
            ts = _parse_ts(it.get("ts", default_ts))
            if ts is None:
                bad(i, "bad_timestamp", f"sensor {sid}: 'ts' must be epoch seconds or RFC 3339 with a zone")
                continue
            q = it.get("q", 0)
            if type(q) is not int or not 0 <= q <= 2:
                bad(i, "wrong_type", f"sensor {sid}: quality 'q' must be 0 (good), 1 (uncertain) or 2 (bad)")
                continue
            u = it.get("u")
            if u is not None:
                conv = conversion(u, self._sensor_unit[sid]) if isinstance(u, str) else None
                if conv is None:
                    bad(i, "bad_unit", f"sensor {sid}: cannot convert {u!r} to {self._sensor_unit[sid]!r}")
                    continue
                v = v * conv[0] + conv[1]
            keep.append(i)
            slots.append(sensor.slot)
            tss.append(ts)
            vals.append(float(v))
            qs.append(q)
        if not keep:
            return Decoded(None, rejects)

        slot = np.asarray(slots, dtype=np.int64)
        ts_s = np.asarray(tss, dtype=np.float64)
        val = np.asarray(vals, dtype=np.float64)
        q = np.asarray(qs, dtype=np.int8)
        ts_ms = np.round(ts_s * 1000.0).astype(np.int64) if np.all(np.abs(ts_s) < 1e15) else None
        reason = np.zeros(len(slot), dtype=np.int8)  # 0 = ok; codes index _ARRAY_REASONS
        reason[~np.isfinite(val)] = 1
        reason[(reason == 0) & (ts_s > now + self.s.max_future_s)] = 2
        reason[(reason == 0) & (ts_s < now - self.s.max_age_s)] = 3
        if ts_ms is None:
            ts_ms = np.zeros(len(slot), dtype=np.int64)
        ok = reason == 0
        reason[ok & (ts_s < self.newest[slot] - self.s.max_lateness_s)] = 4
        ok = reason == 0
        seen = (self.ring[slot] == ts_ms[:, None]).any(axis=1)
        # Duplicates inside this message: keep the first of each (sensor, ts).
        order = np.lexsort((np.arange(len(slot)), ts_ms, slot))
        ks, ts_sorted = slot[order], ts_ms[order]
        repeat = np.zeros(len(slot), dtype=bool)
        repeat[order[1:]] = (ks[1:] == ks[:-1]) & (ts_sorted[1:] == ts_sorted[:-1])
        reason[ok & (seen | repeat)] = 5
        ok = reason == 0

        for j in np.flatnonzero(~ok):
            i = keep[j]
            code = _ARRAY_REASONS[reason[j]]
            detail = f"sensor {items[i]['s']}: ts={float(ts_s[j])} v={float(val[j])}"
            rejects.append(Reject(code, detail, _piece(items[i], topic)))
        if not ok.any():
            return Decoded(None, rejects)
        slot, ts_s, ts_ms, val, q = slot[ok], ts_s[ok], ts_ms[ok], val[ok], q[ok]
        self._remember(slot, ts_s, ts_ms)
        ids = self.reg.sensor_ids
        batch = ReadingBatch(src, ent, [ids[k] for k in slot.tolist()], ts_ms, val, q)
        return Decoded(batch, rejects)

    def _remember(self, slot: np.ndarray, ts_s: np.ndarray, ts_ms: np.ndarray) -> None:
        np.maximum.at(self.newest, slot, ts_s)
        order = np.argsort(slot, kind="stable")
        s_sorted = slot[order]
        starts = np.r_[0, np.flatnonzero(s_sorted[1:] != s_sorted[:-1]) + 1]
        counts = np.diff(np.r_[starts, len(s_sorted)])
        rank = np.arange(len(s_sorted)) - np.repeat(starts, counts)
        pos = (self.ring_pos[s_sorted] + rank) % _RING
        self.ring[s_sorted, pos] = ts_ms[order]
        np.add.at(self.ring_pos, s_sorted, 1)


_ARRAY_REASONS = {1: "not_finite", 2: "ts_future", 3: "ts_too_old", 4: "too_late", 5: "duplicate"}


def _lenient_json(payload: bytes) -> Any:
    """Python's parser accepts NaN, Infinity and 1e999 (as inf); used only after orjson has refused."""
    if not any(tok in payload for tok in (b"NaN", b"Infinity", b"e", b"E")):
        return None
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return None


def _piece(item: Any, topic: str) -> bytes:
    try:
        return orjson.dumps(item)
    except (TypeError, orjson.JSONEncodeError):
        return repr(item).encode()[:4096]

