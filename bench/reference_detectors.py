"""A per-reading, pure-Python reference for `detectors.engine.DetectorEngine.process_arrays`.

The same detector set written the way one would without NumPy: one Python loop step per reading, per-sensor
state in plain Python objects (lists, floats, ints). It exists for two reasons:

- an oracle: the vectorised engine (segmented scans, forward fills, affine scans) must emit the same events
  (sensor, rule, limit, state, ts_ms, since) as this literal reading of the module docstrings
  (tests/unit/test_reference_equivalence.py);
- a baseline: bench/detector_speed.py measures how much faster the vectorised engine is.

Parameters are derived from the registry objects (Sensor, Limit, RateSpec, TrendSpec) directly, not from the
engine's column arrays, so a mistake in `Params.from_registry` shows up as a difference. Only the tuning
constants are imported, so both sides always use the same values.

Rules, in the order the engine applies them to a batch:

1. Health sees every reading newer than the newest reading of any quality seen for the sensor (bad quality
   included); it has its own newest-seen time. out_of_range and stuck need a good value and hold through a
   bad one; bad_quality follows the flag; any reading clears an offline alarm.
2. Limits, rate, trend and drift see only good-quality readings newer than the sensor's newest evaluated one.

Stuck compares against the related sensor's latest evaluated value at or before the reading's time ("history",
what the engine does, with a ring of the last few values per sensor). `related_asof="engine"` keeps the
engine's earlier lookup (the batch's readings, else the last evaluated value whatever its time), which made
detections depend on batch boundaries; it stays for comparison only.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from detectors.engine import DRIFT_KINDS
from detectors.health import FLAT_FRACTION, MOVING_FRACTION
from detectors.rate import CLEAR_FRACTION
from detectors.trend import CLEAR_FACTOR, MIN_WEIGHT, REBASE_S
from hazardwatch.model import Q_BAD
from hazardwatch.registry import HIGH_LIMITS, LIMIT_NAMES, Registry

# The drift alarm clears once the CUSUM score is back to half the decision interval (drift.py hard-codes it).
DRIFT_CLEAR_FRACTION = 0.5
DRIFT_MAX_GAP_PERIODS = 2.0  # a gap counts as at most two reporting periods
# Denominator of the weighted least-squares slope below this fraction of w * stt: x has no spread, no slope.
SLOPE_DEN_EPS = 1e-12
HEALTH_RULES = ("out_of_range", "bad_quality", "stuck", "offline")
OOR, BADQ, STUCK, OFFLINE = range(4)
_INT64_MIN = -(2**63)  # the engine's "never" timestamp, only used when exporting state for comparison

RelatedAsof = Literal["history", "engine"]


@dataclass(slots=True)
class LimitSpec:
    column: int  # index into LIMIT_NAMES
    name: str
    set_level: float
    reset_level: float
    high: bool
    on_delay_ms: int
    off_delay_ms: int
    latching: bool


@dataclass(slots=True)
class SensorConfig:
    slot: int
    id: str
    lo: float
    hi: float
    period_s: float
    limits: list[LimitSpec]
    rate_max: float | None
    trend_tau_s: float | None
    trend_target: float
    trend_high: bool
    trend_horizon_s: float
    drift_tau_s: float | None
    drift_fast_tau_s: float
    drift_k: float
    drift_h: float
    related: int | None  # slot of the first related sensor
    stuck_ms: float  # inf when not configured


@dataclass(slots=True)
class SensorState:
    """Everything one sensor's detectors remember between readings."""

    # Limits, one entry per column of LIMIT_NAMES (columns the sensor lacks never change).
    cond: list[bool] = field(default_factory=lambda: [False] * 4)
    cond_since: list[int] = field(default_factory=lambda: [0] * 4)
    active: list[bool] = field(default_factory=lambda: [False] * 4)
    latched: list[bool] = field(default_factory=lambda: [False] * 4)
    since: list[int] = field(default_factory=lambda: [0] * 4)
    last_ts: int | None = None  # newest evaluated (good) reading
    last_v: float = math.nan
    # Rate of change.
    rate_active: bool = False
    rate_since: int = 0
    # Trend: exponentially weighted sums of 1, x, x^2, v, x*v with x in seconds since ref_ms.
    ref_ms: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0] * 5)
    trend_active: bool = False
    trend_since: int = 0
    # Drift: bias-corrected EWMA baseline and short mean (weighted sums and weights), two-sided CUSUM.
    mean: float = 0.0
    weight: float = 0.0
    fast: float = 0.0
    fast_weight: float = 0.0
    cusum: list[float] = field(default_factory=lambda: [0.0, 0.0])
    drift_active: bool = False
    drift_since: int = 0
    # Health.
    h_active: list[bool] = field(default_factory=lambda: [False] * 4)
    h_since: list[int] = field(default_factory=lambda: [0] * 4)
    flat_since: int = 0
    last_seen: int | None = None  # newest reading of any quality
    last_good: float = math.nan  # newest good value seen by health
    # Evaluated (t, v) kept only for sensors another sensor names as related, for the as-of lookup.
    hist_t: list[int] = field(default_factory=list)
    hist_v: list[float] = field(default_factory=list)


def _config(reg: Registry, sid: str) -> SensorConfig:
    s = reg.sensors[sid]
    lo, hi = s.range
    span = hi - lo
    limits = [LimitSpec(LIMIT_NAMES.index(lim.name), lim.name, lim.value, lim.reset, lim.name in HIGH_LIMITS,
                        round(lim.on_delay_s * 1000), round(lim.off_delay_s * 1000), lim.latching)
              for lim in s.limits]
    limits.sort(key=lambda x: x.column)
    trend_target, trend_high = math.nan, True
    if s.trend:
        trend_target = reg.limit(sid, s.trend.limit).value
        trend_high = s.trend.limit in HIGH_LIMITS
    drift_tau, drift_fast, k_frac, h_min = DRIFT_KINDS.get(s.kind, (None, math.nan, math.nan, math.nan))
    return SensorConfig(
        slot=s.slot, id=sid, lo=lo, hi=hi, period_s=s.period_s, limits=limits,
        rate_max=s.rate.max_per_min if s.rate else None,
        trend_tau_s=s.trend.tau_s if s.trend else None, trend_target=trend_target, trend_high=trend_high,
        trend_horizon_s=s.trend.horizon_s if s.trend else math.nan,
        drift_tau_s=drift_tau, drift_fast_tau_s=drift_fast, drift_k=k_frac * span, drift_h=h_min * k_frac * span,
        related=reg.sensors[s.related[0]].slot if s.related else None,
        stuck_ms=s.stuck_s * 1000.0 if s.stuck_s else math.inf,
    )


def _event(cfg: SensorConfig, rule: str, limit: str, state: str, ts: int, since: int, value: float,
           threshold: float) -> dict[str, Any]:
    return {"sensor": cfg.id, "rule": rule, "limit": limit, "state": state, "ts_ms": ts, "since_ms": since,
            "value": value, "threshold": threshold}


class ReferenceDetectors:
    """Per-reading twin of DetectorEngine: same inputs (slot, ts_ms, value, quality), same events."""

    def __init__(self, registry: Registry, offline_multiple: float = 3.0,
                 related_asof: RelatedAsof = "history") -> None:
        self.reg = registry
        self.offline_multiple = offline_multiple
        self.related_asof = related_asof
        self.cfg = [_config(registry, sid) for sid in registry.sensor_ids]
        self.state = [SensorState() for _ in self.cfg]
        self.slot_of = {sid: i for i, sid in enumerate(registry.sensor_ids)}
        # Who looks up whom: history is only worth keeping for sensors that are someone's related sensor.
        self.dependents: dict[int, list[int]] = {}
        for c in self.cfg:
            if c.related is not None:
                self.dependents.setdefault(c.related, []).append(c.slot)

    # ---- one batch ------------------------------------------------------------------------------------------
    def process_arrays(self, slot: Sequence[int] | Any, ts: Sequence[int] | Any, val: Sequence[float] | Any,
                       q: Sequence[int] | Any) -> list[dict[str, Any]]:
        rows = list(zip(_as_list(slot), _as_list(ts), _as_list(val), _as_list(q), strict=True))
        # Health goes first and sees the whole batch for its as-of lookup, like the engine: the related value for
        # a reading may come from a related reading that arrived later in the same batch.
        before = {r: self.state[r].last_v for r in self.dependents}
        if self.related_asof == "engine":
            batch_good = self._health_good_in_batch(rows)
        else:
            self._extend_history(rows)
        out: list[dict[str, Any]] = []
        for s, t, v, qq in rows:
            if self.related_asof == "engine":
                relv = self._related_engine(s, t, batch_good, before)
            else:
                relv = self._related_history(s, t)
            self._health(s, t, v, qq == Q_BAD, relv, out)
        evaluated: set[int] = set()  # sensors with an evaluated reading in this batch (trend re-basing)
        for s, t, v, qq in rows:
            if qq != Q_BAD and self._evaluate(s, t, v, s not in evaluated, out):
                evaluated.add(s)
        self._prune_history()
        return out

    def process(self, readings: Iterable[tuple[str, int, float, int]]) -> list[dict[str, Any]]:
        """(sensor id, ts_ms, value, quality) in arrival order, as one batch."""
        rows = list(readings)
        return self.process_arrays([self.slot_of[r[0]] for r in rows], [r[1] for r in rows],
                                   [r[2] for r in rows], [r[3] for r in rows])

    def tick(self, now_ms: int, sources: list[str] | None = None) -> list[dict[str, Any]]:
        """Clock tick: offline for sensors with a reading once, but none within multiple x the period since."""
        out: list[dict[str, Any]] = []
        for src in sources if sources is not None else list(self.reg.sources):
            for sid in self.reg.sources[src].sensors:
                s = self.slot_of[sid]
                c, st = self.cfg[s], self.state[s]
                if st.last_seen is None or st.h_active[OFFLINE]:
                    continue
                if now_ms - st.last_seen > self.offline_multiple * c.period_s * 1000.0:
                    st.h_active[OFFLINE] = True
                    st.h_since[OFFLINE] = now_ms
                    out.append(_event(c, "offline", "", "raise", now_ms, now_ms, (now_ms - st.last_seen) / 1000.0,
                                      self.offline_multiple * c.period_s))
        return out

    # ---- related sensor look-ups ----------------------------------------------------------------------------
    def _extend_history(self, rows: list[tuple[int, int, float, int]]) -> None:
        """Append what limits will evaluate for related sensors: good, newer than the newest evaluated."""
        newest = {r: self.state[r].last_ts for r in self.dependents}
        for s, t, v, qq in rows:
            if s in newest and qq != Q_BAD:
                last = newest[s]
                if last is None or t > last:
                    newest[s] = t
                    self.state[s].hist_t.append(t)
                    self.state[s].hist_v.append(v)

    def _related_history(self, s: int, t: int) -> float:
        r = self.cfg[s].related
        if r is None:
            return math.nan
        st = self.state[r]
        i = bisect.bisect_right(st.hist_t, t) - 1
        return st.hist_v[i] if i >= 0 else math.nan

    def _prune_history(self) -> None:
        # A dependent's readings are only evaluated when newer than its newest seen one, so the history before
        # that time is needed only for its last entry.
        for r, deps in self.dependents.items():
            st = self.state[r]
            seen = [self.state[d].last_seen for d in deps]
            if not st.hist_t or any(x is None for x in seen):
                continue
            keep_from = max(bisect.bisect_right(st.hist_t, min(x for x in seen if x is not None)) - 1, 0)
            if keep_from:
                del st.hist_t[:keep_from], st.hist_v[:keep_from]

    def _health_good_in_batch(self, rows: list[tuple[int, int, float, int]]) -> dict[int, tuple[list[int],
                                                                                              list[float]]]:
        """Good readings health will see in this batch, per related sensor (times strictly increasing)."""
        newest = {r: self.state[r].last_seen for r in self.dependents}
        out: dict[int, tuple[list[int], list[float]]] = {r: ([], []) for r in self.dependents}
        for s, t, v, qq in rows:
            if s in newest:
                last = newest[s]
                if last is None or t > last:
                    newest[s] = t
                    if qq != Q_BAD:
                        out[s][0].append(t)
                        out[s][1].append(v)
        return out

    def _related_engine(self, s: int, t: int, batch_good: dict[int, tuple[list[int], list[float]]],
                        before: dict[int, float]) -> float:
        r = self.cfg[s].related
        if r is None:
            return math.nan
        times, values = batch_good[r]
        i = bisect.bisect_right(times, t) - 1
        return values[i] if i >= 0 else before[r]

    # ---- health ---------------------------------------------------------------------------------------------
    def _health(self, s: int, t: int, v: float, bad: bool, relv: float, out: list[dict[str, Any]]) -> None:
        c, st = self.cfg[s], self.state[s]
        if st.last_seen is not None and t <= st.last_seen:
            return
        st.last_seen = t
        good = not bad
        span = c.hi - c.lo
        oor = good and (v < c.lo or v > c.hi)
        if good:
            # A step smaller than FLAT_FRACTION of the span is no change; the first value ever is a change.
            if not abs(v - st.last_good) <= FLAT_FRACTION * span:
                st.flat_since = t
            st.last_good = v
        stuck = False
        if good and c.related is not None:
            rc = self.cfg[c.related]
            moving = relv > MOVING_FRACTION * (rc.hi - rc.lo)
            stuck = moving and t - st.flat_since >= c.stuck_ms
        new = list(st.h_active)
        if oor:
            new[OOR] = True
        elif good:
            new[OOR] = False
        new[BADQ] = bad
        if stuck:
            new[STUCK] = True
        elif good:
            new[STUCK] = False
        new[OFFLINE] = False  # a reading of any quality ends an offline alarm
        for rule in range(4):
            if new[rule] == st.h_active[rule]:
                continue
            if new[rule]:
                st.h_since[rule] = t
            if rule in (OOR, BADQ):
                thr = 2.0 if rule == BADQ else (c.lo if v < c.lo else c.hi)
                value = v
            elif rule == STUCK:
                value, thr = float(t - st.flat_since), c.stuck_ms
            else:
                value, thr = v, 0.0
            out.append(_event(c, HEALTH_RULES[rule], "", "raise" if new[rule] else "clear", t, st.h_since[rule],
                              value, thr))
        st.h_active = new

    # ---- limits, rate, trend, drift -------------------------------------------------------------------------
    def _evaluate(self, s: int, t: int, v: float, first_in_batch: bool, out: list[dict[str, Any]]) -> bool:
        """Run limits, rate, trend and drift on one good reading; False when it is not newer than the last."""
        c, st = self.cfg[s], self.state[s]
        if st.last_ts is not None and t <= st.last_ts:
            return False  # stale or out of order: already past this time for this sensor
        prev_t, prev_v = st.last_ts, st.last_v
        for lim in c.limits:
            self._limit(c, st, lim, t, v, out)
        if c.rate_max is not None:
            self._rate(c, st, t, v, prev_t, prev_v, out)
        self._trend(c, st, t, v, prev_t, first_in_batch, out)
        self._drift(c, st, t, v, prev_t, out)
        st.last_ts, st.last_v = t, v
        return True

    @staticmethod
    def _limit(c: SensorConfig, st: SensorState, lim: LimitSpec, t: int, v: float, out: list[dict[str, Any]]) -> None:
        k = lim.column
        # 1. Deadband: between the set and reset levels the previous condition holds.
        if lim.high:
            on, off = v >= lim.set_level, v < lim.reset_level
        else:
            on, off = v <= lim.set_level, v > lim.reset_level
        cond = True if on else (False if off else st.cond[k])
        if cond != st.cond[k]:
            st.cond[k], st.cond_since[k] = cond, t
        # 2. Delays in event time: the condition must have held for on_delay (off_delay) at this reading.
        held = t - st.cond_since[k]
        was_active, was_latched = st.active[k], st.latched[k]
        active = was_active
        if cond and held >= lim.on_delay_ms:
            active = True
        elif not cond and held >= lim.off_delay_ms:
            active = False
        rose, fell = active and not was_active, was_active and not active
        # 3. Latching: the first rise latches; only a person's reset (not modelled here) unlatches.
        latched = lim.latching and (was_latched or rose)
        alarm, was_alarm = active or latched, was_active or was_latched
        kind = None
        if rose and was_latched:
            kind = "realarm"
        elif fell and latched:
            kind = "rtn"
        elif alarm and not was_alarm:
            kind = "raise"
        elif was_alarm and not alarm:
            kind = "clear"
        st.active[k], st.latched[k] = active, latched
        if kind == "raise":
            st.since[k] = t  # a realarm keeps the id of the alarm it re-sounds
        if kind is not None:
            thr = lim.set_level if kind in ("raise", "realarm") else lim.reset_level
            out.append(_event(c, "limit", lim.name, kind, t, st.since[k], v, thr))

    @staticmethod
    def _rate(c: SensorConfig, st: SensorState, t: int, v: float, prev_t: int | None, prev_v: float,
              out: list[dict[str, Any]]) -> None:
        assert c.rate_max is not None
        rate = math.nan
        if prev_t is not None and math.isfinite(prev_v):
            rate = (v - prev_v) / ((t - prev_t) / 60000.0)
        active = st.rate_active
        if abs(rate) > c.rate_max:
            active = True
        elif abs(rate) <= CLEAR_FRACTION * c.rate_max:
            active = False
        if active != st.rate_active:
            st.rate_active = active
            if active:
                st.rate_since = t
            out.append(_event(c, "rate", "", "raise" if active else "clear", t, st.rate_since, rate, c.rate_max))

    @staticmethod
    def _trend(c: SensorConfig, st: SensorState, t: int, v: float, prev_t: int | None, first_in_batch: bool,
               out: list[dict[str, Any]]) -> None:
        tau = c.trend_tau_s
        if tau is None:
            return  # not tracked: no sums kept (the engine leaves them untouched too)
        # Keep x small: move the reference time up when it is over a day old (an exact shift of the sums). Like
        # the engine, only at the sensor's first evaluated reading of a batch, so the states compare field by
        # field; checking every reading would change rounding only, never the fit.
        if first_in_batch and (st.ref_ms == 0 or (t - st.ref_ms) / 1000.0 > REBASE_S):
            d = (t - st.ref_ms) / 1000.0
            w, sx, sxx, sv, sxv = st.sums
            st.sums = [w, sx - d * w, sxx - 2 * d * sx + d * d * w, sv, sxv - d * sv]
            st.ref_ms = t
        decay = 0.0 if prev_t is None else math.exp(-((t - prev_t) / 1000.0) / tau)
        x = (t - st.ref_ms) / 1000.0
        w, sx, sxx, sv, sxv = (decay * a + b for a, b in zip(st.sums, (1.0, x, x * x, v, x * v), strict=True))
        st.sums = [w, sx, sxx, sv, sxv]
        den = w * sxx - sx * sx
        slope = math.nan
        if w >= MIN_WEIGHT and den > SLOPE_DEN_EPS * max(w * sxx, 1e-300):
            slope = (w * sxv - sx * sv) / den
        fitted = sv / w + slope * (x - sx / w)
        target = c.trend_target
        gap_to = target - fitted if c.trend_high else fitted - target
        toward = slope if c.trend_high else -slope
        eta = gap_to / toward if toward > 0 and gap_to > 0 else math.inf
        hz = c.trend_horizon_s
        active = st.trend_active
        if eta < hz:
            active = True
        elif eta > CLEAR_FACTOR * hz or gap_to <= 0:  # past the limit: the limit alarm has taken over
            active = False
        if active != st.trend_active:
            st.trend_active = active
            if active:
                st.trend_since = t
            ev = _event(c, "trend", "", "raise" if active else "clear", t, st.trend_since, fitted, target)
            ev["forecast_s"] = eta if math.isfinite(eta) else None
            ev["slope_per_min"] = slope * 60.0
            out.append(ev)

    @staticmethod
    def _drift(c: SensorConfig, st: SensorState, t: int, v: float, prev_t: int | None,
               out: list[dict[str, Any]]) -> None:
        tau = c.drift_tau_s
        if tau is None:
            return  # not tracked: no baseline kept
        period = c.period_s
        gap = period if prev_t is None else min((t - prev_t) / 1000.0, DRIFT_MAX_GAP_PERIODS * period)
        base = st.mean / st.weight if st.weight > 0 else v  # judged against the baseline before this reading
        a, af = math.exp(-gap / tau), math.exp(-gap / c.drift_fast_tau_s)
        st.mean, st.weight = a * st.mean + (1 - a) * v, a * st.weight + (1 - a)
        st.fast, st.fast_weight = af * st.fast + (1 - af) * v, af * st.fast_weight + (1 - af)
        dev = st.fast / st.fast_weight - base
        minutes = gap / 60.0
        up = max(0.0, st.cusum[0] + (dev - c.drift_k) * minutes)
        down = max(0.0, st.cusum[1] + (-dev - c.drift_k) * minutes)
        st.cusum = [up, down]
        score = max(up, down)
        active = st.drift_active
        if score > c.drift_h:
            active = True
        elif score <= DRIFT_CLEAR_FRACTION * c.drift_h:
            active = False
        if active != st.drift_active:
            st.drift_active = active
            if active:
                st.drift_since = t
            out.append(_event(c, "drift", "", "raise" if active else "clear", t, st.drift_since, dev, c.drift_k))

    # ---- comparison with the engine -------------------------------------------------------------------------
    def export(self, slot: int) -> dict[str, Any]:
        """One sensor's state under the engine's names ("limits.cond", ...), engine sentinels for "never"."""
        st = self.state[slot]
        return {
            "limits.cond": st.cond, "limits.cond_since_ms": st.cond_since, "limits.active": st.active,
            "limits.latched": st.latched, "limits.since_ms": st.since,
            "limits.last_ts_ms": _INT64_MIN if st.last_ts is None else st.last_ts,
            "rate.active": st.rate_active, "rate.since_ms": st.rate_since,
            "trend.ref_ms": st.ref_ms, "trend.sums": st.sums, "trend.active": st.trend_active,
            "trend.since_ms": st.trend_since,
            "drift.mean": st.mean, "drift.weight": st.weight, "drift.fast": st.fast,
            "drift.fast_weight": st.fast_weight, "drift.cusum": st.cusum, "drift.active": st.drift_active,
            "drift.since_ms": st.drift_since,
            "health.active": st.h_active, "health.since_ms": st.h_since, "health.flat_since_ms": st.flat_since,
            "health.last_seen_ms": _INT64_MIN if st.last_seen is None else st.last_seen,
            "health.last_good": st.last_good, "last.value": st.last_v,
        }


def _as_list(x: Sequence[Any] | Any) -> list[Any]:
    return x.tolist() if hasattr(x, "tolist") else list(x)
