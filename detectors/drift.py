"""Drift: a two-sided CUSUM of the deviation from a slow EWMA baseline.

Catches a slow creep that never crosses a limit (a gas head losing calibration, a slowly filling pocket)
earlier than the limit would. The baseline is an exponentially weighted mean with a long time constant; the
CUSUM S = max(0, S + y) is Lindley's recursion, whose closed form is C_i - min(-S_0, min_j C_j) with C the
running sum of y: a segmented cumulative sum and a segmented running minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.scan import Segments, affine_scan, segmented_cummin, segmented_cumsum
from detectors.transitions import put, rows, toggle, transitions


@dataclass(frozen=True)
class DriftState:
    mean: np.ndarray  # float [sensors]: EWMA baseline (NaN until the first reading)
    cusum: np.ndarray  # float [sensors, 2]: upper and lower CUSUM
    active: np.ndarray  # bool [sensors]
    since_ms: np.ndarray  # int64 [sensors]

    @classmethod
    def empty(cls, n: int) -> DriftState:
        return cls(np.full(n, np.nan), np.zeros((n, 2)), np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))


def evaluate_drift(state: DriftState, seg: Segments, t: np.ndarray, v: np.ndarray, last_t: np.ndarray,
                   tau_s: np.ndarray, k: np.ndarray, h: np.ndarray) -> tuple[DriftState, dict[str, np.ndarray]]:
    """k: allowance, h: decision interval (sensor units). tau NaN = not tracked."""
    s = seg.slot
    prev_t = np.where(seg.start, last_t[s], np.r_[0, t[:-1]])
    gap = np.where(prev_t > np.iinfo(np.int64).min // 2, (t - prev_t) / 1000.0, np.inf)
    tau = tau_s[s]
    prior_mean = state.mean[s]
    fresh = ~np.isfinite(prior_mean)
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.where(np.isfinite(tau), np.exp(-gap / tau), 0.0)
    a = np.where(seg.start & fresh, 0.0, a)  # the first reading seeds the baseline
    # The baseline used for reading i is the one before it (the deviation is judged against the past).
    mean_after = affine_scan(seg, a, (1 - a) * v, np.where(fresh, 0.0, prior_mean))
    mean_before = np.where(seg.start, np.where(fresh, v, prior_mean), np.r_[np.nan, mean_after[:-1]])
    dev = v - mean_before
    kk, hh = k[s], h[s]
    tracked = np.isfinite(tau) & np.isfinite(hh)
    # Untracked sensors contribute zeros: a NaN would poison the cumulative sum of every later segment.
    y = np.where(tracked[:, None], np.stack([dev - kk, -dev - kk], axis=1), 0.0)
    c = segmented_cumsum(seg, y)
    s0 = rows(state.cusum, s)[seg.seg_start]
    low = np.minimum(-s0, segmented_cummin(seg, c))
    cus = c - low
    score = cus.max(axis=1)
    on = tracked & (score > hh)
    off = tracked & (score <= 0.5 * hh)
    active = toggle(seg, on, off, state.active[s])
    kind, since = transitions(seg, active, state.active[s], t, state.since_ms[s])
    ev = np.flatnonzero(kind >= 0)
    events = {"row": ev, "kind": kind[ev], "value": dev[ev], "threshold": hh[ev], "since_ms": since[ev]}
    ls = s[seg.last]
    new = DriftState(put(state.mean, ls, mean_after[seg.last]), put(state.cusum, ls, cus[seg.last]),
                     put(state.active, ls, active[seg.last]), put(state.since_ms, ls, since[seg.last]))
    return new, events
