"""Sensor health: a sensor that lies or falls silent is itself an alarm.

- out of range: a value outside the instrument's range (broken loop, wrong scaling);
- bad quality: the gateway flags the value as bad;
- stuck: the value has not moved for stuck_s while a related sensor shows the process moving (Buncefield: the
  level gauge flat-lined while product kept flowing in);
- offline: no value within `multiple` x the expected reporting period, judged on a clock tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.scan import Segments, forward_fill_index, prev_in_segment
from detectors.transitions import put, rows, toggle, transitions

HEALTH_RULES = ("out_of_range", "bad_quality", "stuck", "offline")
OOR, BADQ, STUCK, OFFLINE = range(4)
FLAT_FRACTION = 1e-4  # a step smaller than 0.01 % of the span counts as "no change"
MOVING_FRACTION = 0.01  # a related flow above 1 % of its span means product is moving


@dataclass(frozen=True)
class HealthState:
    active: np.ndarray  # bool [sensors, 4]
    since_ms: np.ndarray  # int64 [sensors, 4]
    flat_since_ms: np.ndarray  # int64 [sensors]: time of the last real change of value
    last_seen_ms: np.ndarray  # int64 [sensors]: newest reading of any quality (for offline)
    last_good: np.ndarray  # float [sensors]: newest good value seen here (for flatness)

    @classmethod
    def empty(cls, n: int) -> HealthState:
        return cls(np.zeros((n, 4), dtype=bool), np.zeros((n, 4), dtype=np.int64), np.zeros(n, dtype=np.int64),
                   np.full(n, np.iinfo(np.int64).min, dtype=np.int64), np.full(n, np.nan))


def evaluate_health(state: HealthState, seg: Segments, t: np.ndarray, v: np.ndarray, q_bad: np.ndarray,
                    lo: np.ndarray, hi: np.ndarray, related: np.ndarray,
                    stuck_ms: np.ndarray, related_value: np.ndarray) -> tuple[HealthState, dict[str, np.ndarray]]:
    """Readings sorted by segment, including bad-quality ones (q_bad marks them).

    related[slot]: the related sensor's slot or -1; related_value: the related sensor's latest value at each
    reading's time (NaN if unknown), computed by the caller with an as-of join.
    """
    s = seg.slot
    span = hi[s] - lo[s]
    good = ~q_bad
    oor = good & ((v < lo[s]) | (v > hi[s]))
    # Flatness: time since the value last moved by more than a tiny fraction of the span, comparing each good
    # value with the previous good one (bad-quality values in between are ignored).
    kg = forward_fill_index(seg, good)
    prev_k = prev_in_segment(seg, kg, np.full(len(s), -1))
    pv = np.where(prev_k >= 0, v[np.maximum(prev_k, 0)], state.last_good[s])
    moved = good & ~(np.abs(v - pv) <= FLAT_FRACTION * span)
    km = forward_fill_index(seg, moved)
    flat_since = np.where(km >= 0, t[np.maximum(km, 0)], state.flat_since_ms[s])
    rel = related[s]
    rel_span = np.where(rel >= 0, hi[np.maximum(rel, 0)] - lo[np.maximum(rel, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        rel_moving = (rel >= 0) & (related_value > MOVING_FRACTION * rel_span)
    stuck = good & rel_moving & (t - flat_since >= stuck_ms[s])
    on = np.stack([oor, q_bad, stuck], axis=1)
    off = np.stack([good & ~oor, good, good & ~stuck], axis=1)
    prior_full = rows(state.active, s)
    prior = prior_full[:, :3]
    active = toggle(seg, on, off & ~on, prior)
    # A reading of any quality ends an offline alarm.
    offline = np.zeros(len(s), dtype=bool)
    full = np.concatenate([active, offline[:, None]], axis=1)
    kind, since = transitions(seg, full, prior_full, t, rows(state.since_ms, s))
    er, ek = np.nonzero(kind >= 0)
    values = np.stack([v, v, t - flat_since, v], axis=1).astype(float)
    thresholds = np.stack([np.where(v < lo[s], lo[s], hi[s]), np.full_like(v, 2.0), stuck_ms[s] / 1.0,
                           np.zeros_like(v)], axis=1)
    events = {"row": er, "rule": ek, "kind": kind[er, ek], "value": values[er, ek], "threshold": thresholds[er, ek],
              "since_ms": since[er, ek]}
    ls = s[seg.last]
    last_good = np.where(kg >= 0, v[np.maximum(kg, 0)], state.last_good[s])
    new = HealthState(put(state.active, ls, full[seg.last]), put(state.since_ms, ls, since[seg.last]),
                      put(state.flat_since_ms, ls, flat_since[seg.last]),
                      put(state.last_seen_ms, ls, np.maximum(state.last_seen_ms[ls], t[seg.last])),
                      put(state.last_good, ls, last_good[seg.last]))
    return new, events


def check_offline(state: HealthState, slots: np.ndarray, now_ms: int, period_s: np.ndarray,
                  multiple: float) -> tuple[HealthState, dict[str, np.ndarray]]:
    """Clock tick for `slots` (the sensors this worker owns): raise offline where nothing arrived in time."""
    seen = state.last_seen_ms[slots]
    late = (seen > np.iinfo(np.int64).min // 2) & (now_ms - seen > multiple * period_s[slots] * 1000.0)
    was = state.active[slots, OFFLINE]
    rise = late & ~was
    ev = slots[rise]
    active, since = state.active, state.since_ms  # updated in place (see detectors.transitions.put)
    active[ev, OFFLINE] = True
    since[ev, OFFLINE] = now_ms
    events = {"slot": ev, "kind": np.ones(len(ev), dtype=np.int8), "value": (now_ms - seen[rise]) / 1000.0,
              "threshold": multiple * period_s[ev], "since_ms": since[ev, OFFLINE]}
    return HealthState(active, since, state.flat_since_ms, state.last_seen_ms, state.last_good), events


RING = 4  # evaluated (time, value) pairs kept per sensor for the as-of lookup of related sensors


@dataclass(frozen=True)
class History:
    """The last RING evaluated readings per sensor, oldest first (time MIN where empty)."""

    t_ms: np.ndarray  # int64 [sensors, RING]
    value: np.ndarray  # float [sensors, RING]

    @classmethod
    def empty(cls, n: int) -> History:
        return cls(np.full((n, RING), np.iinfo(np.int64).min, dtype=np.int64), np.full((n, RING), np.nan))


def remember(hist: History, slot: np.ndarray, t: np.ndarray, v: np.ndarray) -> History:
    """Append evaluated readings (strictly newer per sensor, in time order) to each sensor's ring."""
    if len(slot) == 0:
        return hist
    order = np.argsort(slot, kind="stable")
    s, tt, vv = slot[order], t[order], v[order]
    start = np.r_[True, s[1:] != s[:-1]]
    seg_start = np.maximum.accumulate(np.where(start, np.arange(len(s)), 0))
    ends = np.r_[np.flatnonzero(start)[1:], len(s)]
    seg_end = np.repeat(ends, np.diff(np.r_[np.flatnonzero(start), len(s)]))
    from_end = seg_end - 1 - np.arange(len(s))  # 0 for the newest reading of its sensor
    count = np.minimum(seg_end - seg_start, RING)
    rows = s[start]
    n_new = count[start]
    t_ring, v_ring = hist.t_ms, hist.value  # in place (see detectors.transitions.put)
    # Shift the old entries left by the number of new ones, then write the new ones at the end. Column k reads
    # column k + n_new >= k, which has not been overwritten yet.
    for k in range(RING):
        src = k + n_new
        ok = src < RING
        t_ring[rows[ok], k] = t_ring[rows[ok], src[ok]]
        v_ring[rows[ok], k] = v_ring[rows[ok], src[ok]]
    recent = from_end < RING
    col = RING - 1 - from_end[recent]
    t_ring[s[recent], col] = tt[recent]
    v_ring[s[recent], col] = vv[recent]
    return History(t_ring, v_ring)


def related_values_asof(slot: np.ndarray, t: np.ndarray, related: np.ndarray, ev_slot: np.ndarray,
                        ev_t: np.ndarray, ev_v: np.ndarray, hist: History) -> np.ndarray:
    """For each reading, its related sensor's latest evaluated value at or before the reading's time.

    Candidates are this batch's evaluated readings (ev_*) and the related sensor's ring of earlier ones, so the
    answer is the same however the stream is cut into batches (as long as the value needed is among the last
    RING evaluated ones). NaN when nothing that old is known.
    """
    rel = related[slot]
    out = np.full(len(slot), np.nan)
    need = np.flatnonzero(rel >= 0)
    if len(need) == 0:
        return out
    r, tq = rel[need], t[need]
    best_t = np.full(len(need), np.iinfo(np.int64).min, dtype=np.int64)
    best_v = np.full(len(need), np.nan)
    ring_t, ring_v = hist.t_ms[r], hist.value[r]
    ok = ring_t <= tq[:, None]
    k = np.where(ok, ring_t, np.iinfo(np.int64).min).argmax(axis=1)
    has = ok[np.arange(len(need)), k]
    best_t = np.where(has, ring_t[np.arange(len(need)), k], best_t)
    best_v = np.where(has, ring_v[np.arange(len(need)), k], best_v)
    if len(ev_slot):
        span = np.int64(1) << 43
        keys = ev_slot * span + ev_t
        order = np.argsort(keys, kind="stable")
        keys, vals, times = keys[order], ev_v[order], ev_t[order]
        pos = np.searchsorted(keys, r * span + tq, side="right") - 1
        p = np.maximum(pos, 0)
        hit = (pos >= 0) & (ev_slot[order][p] == r)
        newer = hit & (times[p] >= best_t)
        best_v = np.where(newer, vals[p], best_v)
    out[need] = best_v
    return out
