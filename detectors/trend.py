"""Trend: an exponentially weighted least-squares slope per sensor, and the forecast time to reach a limit.

For a tank this is the time to overfill from the fill rate: the warning a duty officer needs while there is
still time to stop the transfer. Weights decay with event time (time constant tau), so irregular reporting is
handled exactly; the running sums are first-order recurrences computed with a segmented affine scan.

Sums are kept relative to a per-sensor reference time; when it falls more than a day behind it is moved up
(an exact shift of the sums) so precision does not erode over months of operation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.scan import Segments, affine_scan
from detectors.transitions import put, rows, toggle, transitions

MIN_WEIGHT = 3.0  # effective number of samples before a slope is trusted
CLEAR_FACTOR = 1.5  # the warning clears once the forecast is beyond 1.5 x the horizon (deadband)
REBASE_S = 86400.0
_FIELDS = 5  # w, t, tt, v, tv


@dataclass(frozen=True)
class TrendState:
    ref_ms: np.ndarray  # int64 [sensors]
    sums: np.ndarray  # float [sensors, 5]
    active: np.ndarray  # bool [sensors]
    since_ms: np.ndarray  # int64 [sensors]

    @classmethod
    def empty(cls, n: int) -> TrendState:
        return cls(np.zeros(n, dtype=np.int64), np.zeros((n, _FIELDS)), np.zeros(n, dtype=bool),
                   np.zeros(n, dtype=np.int64))


def rebase(state: TrendState, slots: np.ndarray, new_ref_ms: np.ndarray) -> TrendState:
    """Move the reference time of `slots` to new_ref_ms, shifting the sums exactly."""
    d = (new_ref_ms - state.ref_ms[slots]) / 1000.0
    w, st, stt, sv, stv = rows(state.sums, slots).T
    shifted = np.stack([w, st - d * w, stt - 2 * d * st + d * d * w, sv, stv - d * sv], axis=1)
    return TrendState(put(state.ref_ms, slots, new_ref_ms), put(state.sums, slots, shifted), state.active,
                      state.since_ms)


def evaluate_trend(state: TrendState, seg: Segments, t: np.ndarray, v: np.ndarray, last_t: np.ndarray,
                   tau_s: np.ndarray, target: np.ndarray, high: np.ndarray,
                   horizon_s: np.ndarray) -> tuple[TrendState, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Returns (state, events, slope per s, forecast seconds to target) per reading. tau NaN = sensor not tracked."""
    s = seg.slot
    first_rows = seg.start
    # Re-base sensors whose reference is over a day old (or never set) to their first reading in this batch.
    stale = first_rows & ((t - state.ref_ms[s]) / 1000.0 > REBASE_S) | first_rows & (state.ref_ms[s] == 0)
    if stale.any():
        state = rebase(state, s[stale], t[stale])
    tau = tau_s[s]
    prev_t = np.where(seg.start, last_t[s], np.r_[0, t[:-1]])
    gap = np.where(prev_t > np.iinfo(np.int64).min // 2, (t - prev_t) / 1000.0, np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        decay = np.where(np.isfinite(tau), np.exp(-gap / tau), 0.0)
    x = (t - state.ref_ms[s]) / 1000.0
    f = np.stack([np.ones_like(x), x, x * x, v, x * v], axis=1)
    sums = affine_scan(seg, np.repeat(decay[:, None], _FIELDS, axis=1), f, rows(state.sums, s))
    w, st, stt, sv, stv = sums.T
    with np.errstate(invalid="ignore", divide="ignore"):
        den = w * stt - st * st
        slope = np.where((w >= MIN_WEIGHT) & (den > 1e-12 * np.maximum(w * stt, 1e-300)), (w * stv - st * sv) / den,
                         np.nan)
        fitted = sv / w + slope * (x - st / w)
        lim = target[s]
        hi = high[s]
        gap_to = np.where(hi, lim - fitted, fitted - lim)
        toward = np.where(hi, slope, -slope)
        eta = np.where((toward > 0) & (gap_to > 0), gap_to / toward, np.inf)
        eta = np.where(np.isfinite(tau) & np.isfinite(lim), eta, np.inf)
    hz = horizon_s[s]
    on = eta < hz
    off = (eta > CLEAR_FACTOR * hz) | (gap_to <= 0)  # past the limit: the limit alarm has taken over
    active = toggle(seg, on, off & ~on, state.active[s])
    kind, since = transitions(seg, active, state.active[s], t, state.since_ms[s])
    ev = np.flatnonzero(kind >= 0)
    events = {"row": ev, "kind": kind[ev], "value": fitted[ev], "threshold": lim[ev], "since_ms": since[ev],
              "forecast_s": eta[ev], "slope_per_min": slope[ev] * 60.0}
    ls = s[seg.last]
    new = TrendState(state.ref_ms, put(state.sums, ls, sums[seg.last]), put(state.active, ls, active[seg.last]),
                     put(state.since_ms, ls, since[seg.last]))
    return new, events, slope, eta
