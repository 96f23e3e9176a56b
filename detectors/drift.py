"""Drift: a two-sided, time-weighted CUSUM of a smoothed reading's deviation from its slow baseline.

Catches a gas head losing calibration, or a small persistent leak, that never crosses a limit. Three choices
keep it quiet on a normal day (found by playing simulated normal days through it):
- the baseline is a bias-corrected EWMA (time constant ~6 h): until it has hours of history it is the plain
  mean of what it has seen, so one noisy first reading cannot become the baseline for hours;
- the deviation is taken from a short EWMA (10 min) of the reading, so noise and brief transients (a truck
  passing a detector) average out while a sustained offset does not;
- the CUSUM adds (|deviation| - k) x minutes rather than per reading, so the decision interval h (in sensor
  units x minutes) means the same for a detector reporting every 5 s and one reporting every minute; a gap is
  counted as at most two reporting periods, so a sensor back from an outage is judged against its old baseline.
S = max(0, S + y) is Lindley's recursion, whose closed form is C_i - min(-S_0, min_j C_j) with C the running sum
of y: a segmented cumulative sum and a segmented running minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.scan import Segments, affine_scan, segmented_cummin, segmented_cumsum
from detectors.transitions import put, rows, toggle, transitions

CLEAR_FRACTION = 0.5  # the alarm clears once the score is back to half the decision interval
MAX_GAP_PERIODS = 2.0


@dataclass(frozen=True)
class DriftState:
    mean: np.ndarray  # float [sensors]: weighted sum of the slow baseline (divide by weight)
    weight: np.ndarray  # float [sensors]: total weight of the slow baseline (0 = nothing seen)
    fast: np.ndarray  # float [sensors]: weighted sum of the short mean
    fast_weight: np.ndarray  # float [sensors]
    cusum: np.ndarray  # float [sensors, 2]: upper and lower CUSUM (sensor units x minutes)
    active: np.ndarray  # bool [sensors]
    since_ms: np.ndarray  # int64 [sensors]

    @classmethod
    def empty(cls, n: int) -> DriftState:
        z = np.zeros(n)
        return cls(z.copy(), z.copy(), z.copy(), z.copy(), np.zeros((n, 2)), np.zeros(n, dtype=bool),
                   np.zeros(n, dtype=np.int64))


def evaluate_drift(state: DriftState, seg: Segments, t: np.ndarray, v: np.ndarray, last_t: np.ndarray,
                   tau_s: np.ndarray, fast_tau_s: np.ndarray, k: np.ndarray, h: np.ndarray,
                   period_s: np.ndarray) -> tuple[DriftState, dict[str, np.ndarray]]:
    """k: allowance (sensor units), h: decision interval (sensor units x minutes). tau NaN = not tracked."""
    s = seg.slot
    prev_t = np.where(seg.start, last_t[s], np.r_[0, t[:-1]])
    per = period_s[s]
    seen = prev_t > np.iinfo(np.int64).min // 2
    gap = np.where(seen, np.minimum((t - prev_t) / 1000.0, MAX_GAP_PERIODS * per), per)
    tau, ftau = tau_s[s], fast_tau_s[s]
    tracked = np.isfinite(tau) & np.isfinite(h[s])
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.where(tracked, np.exp(-gap / tau), 0.0)
        af = np.where(tracked, np.exp(-gap / ftau), 0.0)
    m = affine_scan(seg, a, (1 - a) * v, state.mean[s])
    w = affine_scan(seg, a, 1 - a, state.weight[s])
    f = affine_scan(seg, af, (1 - af) * v, state.fast[s])
    wf = affine_scan(seg, af, 1 - af, state.fast_weight[s])
    # The baseline a reading is judged against is the one before it; the very first reading is its own.
    m_before = np.where(seg.start, state.mean[s], np.r_[0.0, m[:-1]])
    w_before = np.where(seg.start, state.weight[s], np.r_[0.0, w[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        base = np.where(w_before > 0, m_before / w_before, v)
        dev = f / wf - base
    dev = np.where(tracked, dev, 0.0)
    kk, hh = k[s], h[s]
    minutes = gap / 60.0
    # Untracked sensors contribute zeros: a NaN would poison the cumulative sum of every later segment.
    y = np.where(tracked[:, None], np.stack([dev - kk, -dev - kk], axis=1) * minutes[:, None], 0.0)
    c = segmented_cumsum(seg, y)
    s0 = rows(state.cusum, s)[seg.seg_start]
    low = np.minimum(-s0, segmented_cummin(seg, c))
    cus = c - low
    score = cus.max(axis=1)
    on = tracked & (score > hh)
    off = tracked & (score <= CLEAR_FRACTION * hh)
    active = toggle(seg, on, off, state.active[s])
    kind, since = transitions(seg, active, state.active[s], t, state.since_ms[s])
    ev = np.flatnonzero(kind >= 0)
    events = {"row": ev, "kind": kind[ev], "value": dev[ev], "threshold": kk[ev], "since_ms": since[ev]}
    ls = s[seg.last]
    last = seg.last
    new = DriftState(put(state.mean, ls, m[last]), put(state.weight, ls, w[last]), put(state.fast, ls, f[last]),
                     put(state.fast_weight, ls, wf[last]), put(state.cusum, ls, cus[last]),
                     put(state.active, ls, active[last]), put(state.since_ms, ls, since[last]))
    return new, events
