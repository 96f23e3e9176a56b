"""Cut a scenario's traces into time-ordered steps, and play them through the detector engine without services.

Both players (this offline one and the pipeline runner) see the same steps: every reading with
step_start < t <= step_end, grouped per hazard source in time order. After each step the clock stands at the
step's end, which is when a silent sensor can be judged offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.engine import DetectorEngine
from hazardwatch.model import ReadingBatch
from hazardwatch.registry import Registry
from simulators.trace import Scenario


@dataclass
class SourceRows:
    source: str
    enterprise: str
    sensors: list[str]
    t_s: np.ndarray
    value: np.ndarray
    quality: np.ndarray

    def batch(self, t0_ms: int) -> ReadingBatch:
        ts = t0_ms + np.round(self.t_s * 1000).astype(np.int64)
        return ReadingBatch(self.source, self.enterprise, self.sensors, ts, self.value, self.quality)


@dataclass
class Chunk:
    end_s: float
    rows: list[SourceRows]

    @property
    def readings(self) -> int:
        return sum(len(r.sensors) for r in self.rows)


def chunks(scenario: Scenario, registry: Registry, step_s: float) -> Iterator[Chunk]:
    """Steps of `step_s` simulated seconds up to the scenario's duration (the last one may hold nothing)."""
    if step_s <= 0:
        raise ValueError("step_s must be > 0")
    unknown = [t.sensor for t in scenario.traces if t.sensor not in registry.sensors]
    if unknown:
        raise ValueError(f"scenario {scenario.name}: sensors not in {registry.path.name}: {unknown[:5]}")
    ids = [t.sensor for t in scenario.traces]
    sensor_idx = np.concatenate([np.full(len(t), i, dtype=np.int64) for i, t in enumerate(scenario.traces)]) \
        if scenario.traces else np.zeros(0, dtype=np.int64)
    t = np.concatenate([tr.t_s for tr in scenario.traces]) if scenario.traces else np.zeros(0)
    v = np.concatenate([tr.value for tr in scenario.traces]) if scenario.traces else np.zeros(0)
    q = np.concatenate([tr.quality for tr in scenario.traces]) if scenario.traces else np.zeros(0, dtype=np.int8)
    order = np.argsort(t, kind="stable")
    sensor_idx, t, v, q = sensor_idx[order], t[order], v[order], q[order]
    trace_source = [registry.sensors[s].source for s in ids]
    source_names = sorted(set(trace_source))
    source_code = np.array([source_names.index(s) for s in trace_source], dtype=np.int64)
    ids_arr = np.array(ids, dtype=object)
    n_steps = max(1, int(np.ceil(scenario.duration_s / step_s - 1e-9)))
    edges = np.searchsorted(t, np.arange(1, n_steps + 1) * step_s, side="right")
    start = 0
    for k, end in enumerate(edges):
        sl = slice(start, int(end))
        start = int(end)
        codes = source_code[sensor_idx[sl]]
        rows = []
        for c in np.unique(codes):
            m = codes == c
            src = source_names[int(c)]
            rows.append(SourceRows(src, registry.sources[src].enterprise, ids_arr[sensor_idx[sl][m]].tolist(),
                                   t[sl][m], v[sl][m], q[sl][m]))
        yield Chunk(min((k + 1) * step_s, scenario.duration_s), rows)


def play_engine(scenario: Scenario, registry: Registry, t0_ms: int, step_s: float = 60.0) -> list[dict[str, Any]]:
    """Every detection record the engine produces for the scenario, the clock ticking at each step's end."""
    engine = DetectorEngine(registry)
    out: list[dict[str, Any]] = []
    for chunk in chunks(scenario, registry, step_s):
        batches = [r.batch(t0_ms) for r in chunk.rows]
        if batches:
            out += engine.process(batches)
        out += engine.tick(t0_ms + round(chunk.end_s * 1000), list(scenario.sources))
    return out
