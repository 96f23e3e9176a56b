"""Sensor faults injected into a trace, each with the record of which alerts it may rightly cause.

Every function returns a new Trace (the input is left alone) and a Fault. The Fault's rules name the health
rule the fault is for and every other rule the altered readings can legitimately trip on that sensor: a frozen
level gauge that is repaired jumps (rate, trend); a drifting head can cross a limit; an unhealthy gas detector
degrades its voting group; a member of a multivariate group disturbs the group's model.
"""

from __future__ import annotations

import numpy as np

from detectors.engine import DRIFT_KINDS
from hazardwatch.registry import Registry
from simulators.trace import Q_BAD, Fault, Trace


def _window(trace: Trace, start_s: float, end_s: float) -> np.ndarray:
    return (trace.t_s >= start_s) & (trace.t_s < end_s)


def _copy(trace: Trace, value: np.ndarray | None = None, quality: np.ndarray | None = None,
          keep: np.ndarray | None = None) -> Trace:
    v = trace.value.copy() if value is None else value
    q = trace.quality.copy() if quality is None else quality
    if keep is None:
        return Trace(trace.sensor, trace.t_s.copy(), v, q)
    return Trace(trace.sensor, trace.t_s[keep].copy(), v[keep], q[keep])


def consequences(registry: Registry, before: Trace, after: Trace, unhealthy: bool) -> tuple[str, ...]:
    """Rules other than the fault's own that the altered readings may trip on this sensor."""
    s = registry.sensors[before.sensor]
    out: list[str] = []
    # Missing rows alone change no value: only altered values can trip value rules.
    changed = len(before) == len(after) and not np.array_equal(before.value, after.value)
    if changed and len(after):
        v = after.value[after.quality != Q_BAD]
        v0 = before.value[before.quality != Q_BAD]
        for lim in s.limits:
            high = lim.name in ("H", "HH")
            hit = (v >= lim.value).any() if high else (v <= lim.value).any()
            was = (v0 >= lim.value).any() if high else (v0 <= lim.value).any()
            if hit and not was:
                out.append("limit")
                break
        if ((v < s.range[0]) | (v > s.range[1])).any():
            out.append("out_of_range")
        if s.rate is not None:
            out.append("rate")
        if s.trend is not None:
            out.append("trend")
        if s.kind in DRIFT_KINDS:
            out.append("drift")
    src = registry.sources[s.source]
    if unhealthy and any(before.sensor in g.sensors for g in src.voting):
        out.append("vote")  # an unhealthy voter degrades its group (detectors/voting.py)
    if any(before.sensor in g.sensors for g in src.multivariate):
        out.append("multivariate")
    return tuple(dict.fromkeys(out))


def stuck(registry: Registry, trace: Trace, start_s: float, end_s: float) -> tuple[Trace, Fault]:
    """The value freezes at its last reading before start_s (a gauge float jammed, a frozen transmitter)."""
    w = _window(trace, start_s, end_s)
    before = np.flatnonzero(trace.t_s < start_s)
    frozen = trace.value[before[-1]] if len(before) else trace.value[np.argmax(w)]
    v = trace.value.copy()
    v[w] = frozen
    out = _copy(trace, v)
    rules = ("stuck", *consequences(registry, trace, out, unhealthy=True))
    return out, Fault(trace.sensor, "stuck", start_s, end_s, tuple(dict.fromkeys(rules)))


def drift(registry: Registry, trace: Trace, start_s: float, end_s: float, per_hour: float) -> tuple[Trace, Fault]:
    """A zero drift: an offset growing linearly from start_s until the sensor is recalibrated at end_s."""
    w = _window(trace, start_s, end_s)
    v = trace.value.copy()
    v[w] = v[w] + per_hour * (trace.t_s[w] - start_s) / 3600.0
    out = _copy(trace, v)
    rules = ("drift", *consequences(registry, trace, out, unhealthy=False))
    return out, Fault(trace.sensor, "drift", start_s, end_s, tuple(dict.fromkeys(rules)))


def dropout(registry: Registry, trace: Trace, start_s: float, end_s: float) -> tuple[Trace, Fault]:
    """The sensor falls silent (cable cut, outstation power, radio link): its rows are missing."""
    out = _copy(trace, keep=~_window(trace, start_s, end_s))
    rules = ("offline", *consequences(registry, trace, out, unhealthy=True))
    return out, Fault(trace.sensor, "dropout", start_s, end_s, tuple(dict.fromkeys(rules)))


def spikes(registry: Registry, trace: Trace, start_s: float, end_s: float, n: int, rng: np.random.Generator,
           to_fraction: tuple[float, float] = (0.6, 0.95)) -> tuple[Trace, Fault]:
    """n isolated readings jump toward the top of the instrument range (interference on a 4-20 mA loop) and
    the next reading is normal again."""
    idx = np.flatnonzero(_window(trace, start_s, end_s))
    pick = np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False)) if len(idx) else idx
    hi = registry.sensors[trace.sensor].range[1]
    v = trace.value.copy()
    v[pick] = v[pick] + rng.uniform(*to_fraction, len(pick)) * (hi - v[pick])
    out = _copy(trace, v)
    # No health rule is meant for a spike: the rules are whatever the jumps can trip.
    rules = consequences(registry, trace, out, unhealthy=False) or ("limit",)
    return out, Fault(trace.sensor, "spikes", start_s, end_s, rules)


def bad_quality(registry: Registry, trace: Trace, start_s: float, end_s: float) -> tuple[Trace, Fault]:
    """The gateway flags the readings bad (transmitter diagnostics, loop current out of range); the value it
    still sends is the last good one."""
    w = _window(trace, start_s, end_s)
    q = trace.quality.copy()
    q[w] = Q_BAD
    out = _copy(trace, quality=q)
    rules = ("bad_quality", *consequences(registry, trace, out, unhealthy=True))
    return out, Fault(trace.sensor, "bad_quality", start_s, end_s, tuple(dict.fromkeys(rules)))
