"""Drift on a gas detector: quiet on noise and brief transients, loud on a sustained offset."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.engine import DetectorEngine
from hazardwatch.config import PROJECT_ROOT
from hazardwatch.registry import Registry, load_registry

T0 = 1_800_000_000_000
SENSOR = "S05-GC03"  # combustible gas, %LEL, every 5 s


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry(PROJECT_ROOT / "deploy" / "examples" / "city-registry.yaml")


def drift_events(reg: Registry, values: np.ndarray, batch: int = 500) -> list[dict]:
    engine = DetectorEngine(reg)
    slot = engine._slot[SENSOR]
    t = T0 + np.arange(len(values), dtype=np.int64) * 5000
    out = []
    for i in range(0, len(values), batch):
        sl = slice(i, i + batch)
        out += engine.process_arrays(np.full(len(values[sl]), slot), t[sl], values[sl],
                                     np.zeros(len(values[sl]), np.int8))
    return [r for r in out if r["rule"] == "drift"]


def background(n: int, seed: int = 1) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(0.5, 0.3, n), 0, None).round(1)


def test_a_noisy_first_reading_does_not_become_the_baseline(reg: Registry) -> None:
    v = background(12 * 720)
    v[0] = 2.5  # the first value the detector ever sees is an outlier
    assert drift_events(reg, v) == []


def test_a_brief_transient_is_not_drift(reg: Registry) -> None:
    v = background(6 * 720)
    v[3000:3012] = 12.0  # a truck's exhaust passing the head for a minute
    assert drift_events(reg, v) == []


def test_a_sustained_zero_offset_raises_drift_and_says_by_how_much(reg: Registry) -> None:
    v = background(12 * 720)
    start = 4 * 720  # after four hours of normal background, the zero creeps up 3 %LEL per hour
    v[start:] += 3.0 * np.arange(len(v) - start) * 5 / 3600
    ev = drift_events(reg, v)
    assert ev and ev[0]["state"] == "raise" and ev[0]["level"] == 4 and ev[0]["category"] == "sensor_health"
    raised_h = (ev[0]["ts_ms"] - T0) / 3.6e6 - 4
    assert 0.5 < raised_h < 4, raised_h  # well before the 25 %LEL alarm would be reached (8 h at this rate)
    assert ev[0]["value"] > 2.0  # the deviation of the short mean from the baseline, in %LEL


def test_methane_is_not_judged_against_its_own_history(reg: Registry) -> None:
    engine = DetectorEngine(reg)
    assert not engine.has_drift[engine._slot["S10-F1-CH4-T1"]]
    assert engine.has_drift[engine._slot[SENSOR]]
