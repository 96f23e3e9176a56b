"""Runs the detector set over a batch of ReadingBatch records and turns array events into detection records.

The engine owns the per-sensor state arrays for the sources this worker holds; the worker checkpoints them
per hazard source (export_source / import_source) so a restarted or rebalanced worker resumes exactly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from detectors.limits import LimitState, evaluate_limits
from hazardwatch.model import DETECTOR_VERSION, ReadingBatch, stable_id
from hazardwatch.registry import LIMIT_NAMES, Registry


class DetectorEngine:
    def __init__(self, registry: Registry):
        self.reg = registry
        self.state = LimitState.empty(len(registry.sensor_ids))
        self._slot = {sid: i for i, sid in enumerate(registry.sensor_ids)}
        self.skipped = 0  # readings not evaluated (bad quality, stale or out of order)

    def process(self, batches: list[ReadingBatch]) -> list[dict[str, Any]]:
        if not batches:
            return []
        slot_of = self._slot
        slots = np.fromiter((slot_of[s] for b in batches for s in b.sensors), dtype=np.int64)
        ts = np.concatenate([b.ts_ms for b in batches])
        val = np.concatenate([b.values for b in batches])
        q = np.concatenate([b.quality for b in batches])
        self.state, ev, skipped = evaluate_limits(self.state, slots, ts, val, q,
                                                  self.reg.limit_set, self.reg.limit_reset)
        self.skipped += skipped
        return self._records(ev)

    def _records(self, ev: Any) -> list[dict[str, Any]]:
        out = []
        reg = self.reg
        # Events are rare (transitions only): building dicts per event is off the per-reading path.
        for slot, k, raised, ts, value, thr, since in zip(ev.slot.tolist(), ev.limit.tolist(), ev.raised.tolist(),
                                                           ev.ts_ms.tolist(), ev.value.tolist(),
                                                           ev.threshold.tolist(), ev.since_ms.tolist(), strict=True):
            sid = reg.sensor_ids[slot]
            sensor = reg.sensors[sid]
            name = LIMIT_NAMES[k]
            lim = reg.limit(sid, name)
            src = reg.sources[sensor.source]
            alert_id = stable_id(src.id, sid, "limit", name, since)
            state = "raise" if raised else "clear"
            out.append({
                "id": stable_id(alert_id, state, ts), "alert_id": alert_id, "state": state,
                "source": src.id, "enterprise": src.enterprise, "sensor": sid, "rule": "limit", "limit": name,
                "level": lim.level, "value": value, "threshold": thr, "set": lim.value, "reset": lim.reset,
                "unit": sensor.unit, "clause": lim.clause, "ts_ms": ts, "since_ms": since,
                "detector": "limits", "detector_version": DETECTOR_VERSION,
            })
        return out

    # ---- checkpointing per hazard source ------------------------------------------------------------------
    def export_source(self, source_id: str) -> dict[str, Any]:
        st = self.state
        out = {}
        for sid in self.reg.sources[source_id].sensors:
            i = self._slot[sid]
            out[sid] = [st.active[i].astype(int).tolist(), st.since_ms[i].tolist(), int(st.last_ts_ms[i])]
        return {"v": DETECTOR_VERSION, "sensors": out}

    def import_source(self, source_id: str, saved: dict[str, Any] | None) -> None:
        """Restore a source's sensors; sensors added to the registry since the checkpoint start empty."""
        if not saved or saved.get("v") != DETECTOR_VERSION:
            return
        active, since, last = self.state.active.copy(), self.state.since_ms.copy(), self.state.last_ts_ms.copy()
        for sid, (a, s, t) in saved.get("sensors", {}).items():
            i = self._slot.get(sid)
            if i is None or self.reg.sensors[sid].source != source_id:
                continue
            active[i], since[i], last[i] = np.asarray(a, dtype=bool), np.asarray(s, dtype=np.int64), t
        self.state = replace(self.state, active=active, since_ms=since, last_ts_ms=last)
