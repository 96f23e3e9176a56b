"""Rate of change: |dv/dt| above a credible maximum (a burst line, a gauge jump, a runaway fill)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.scan import Segments, prev_in_segment
from detectors.transitions import put, toggle, transitions

CLEAR_FRACTION = 0.8  # deadband: the alarm clears once the rate is back under 80 % of the maximum


@dataclass(frozen=True)
class RateState:
    active: np.ndarray  # bool [sensors]
    since_ms: np.ndarray  # int64 [sensors]

    @classmethod
    def empty(cls, n: int) -> RateState:
        return cls(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))


def evaluate_rate(state: RateState, seg: Segments, t: np.ndarray, v: np.ndarray, last_t: np.ndarray,
                  last_v: np.ndarray, max_per_min: np.ndarray) -> tuple[RateState, dict[str, np.ndarray]]:
    """Readings sorted by segment (seg), newer than last_t. max_per_min NaN = no rate alarm for the sensor."""
    s = seg.slot
    pt = prev_in_segment(seg, t, last_t[s])
    pv = prev_in_segment(seg, v, last_v[s])
    dt_min = (t - pt) / 60000.0
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where((dt_min > 0) & np.isfinite(pv), (v - pv) / dt_min, np.nan)
        lim = max_per_min[s]
        on = np.abs(rate) > lim
        off = np.abs(rate) <= CLEAR_FRACTION * lim
    active = toggle(seg, on, off, state.active[s])
    kind, since = transitions(seg, active, state.active[s], t, state.since_ms[s])
    ev = np.flatnonzero(kind >= 0)
    events = {"row": ev, "kind": kind[ev], "value": rate[ev], "threshold": lim[ev], "since_ms": since[ev]}
    ls = s[seg.last]
    return RateState(put(state.active, ls, active[seg.last]), put(state.since_ms, ls, since[seg.last])), events
