"""Limit alarms (LL / L / H / HH) with separate set and reset levels, vectorised over a batch.

A pure function: (state, batch arrays, limit table) -> (new state, events). No Python loop per reading: the
hysteresis state machine is resolved with a forward fill of the last decisive reading per sensor, so a batch
of 100,000 readings from thousands of sensors is a handful of array passes.

High limit k: becomes active at value >= set, returns to normal at value < reset (reset <= set).
Low limit k:  becomes active at value <= set, returns to normal at value > reset (reset >= set).
Between the two the previous state holds: that gap is the deadband the standards ask for (e.g. the coal-mine
re-energise level). Readings with bad quality or not newer than the sensor's last evaluated reading are not
evaluated, so the result is the same however the stream is cut into batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hazardwatch.model import Q_BAD

N_LIMITS = 4  # columns in the order of hazardwatch.registry.LIMIT_NAMES: LL, L, H, HH
HIGH = np.array([False, False, True, True])
_GROUP_SPAN = np.int64(1) << 43  # > any epoch-ms timestamp until year 2248


@dataclass(frozen=True)
class LimitState:
    active: np.ndarray  # bool [sensors, 4]
    since_ms: np.ndarray  # int64 [sensors, 4]: when the active alarm was raised (part of its id)
    last_ts_ms: np.ndarray  # int64 [sensors]: newest reading evaluated

    @classmethod
    def empty(cls, n_sensors: int) -> LimitState:
        return cls(np.zeros((n_sensors, N_LIMITS), dtype=bool), np.zeros((n_sensors, N_LIMITS), dtype=np.int64),
                   np.full(n_sensors, np.iinfo(np.int64).min, dtype=np.int64))


@dataclass(frozen=True)
class LimitEvents:
    """One row per alarm transition. raised=True: alarm became active; False: returned to normal."""

    slot: np.ndarray
    limit: np.ndarray  # column index into LL, L, H, HH
    raised: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray
    threshold: np.ndarray  # the set level for raises, the reset level for clears
    since_ms: np.ndarray  # activation time of the alarm this event belongs to

    def __len__(self) -> int:
        return len(self.slot)


def evaluate_limits(state: LimitState, slot: np.ndarray, ts_ms: np.ndarray, value: np.ndarray,
                    quality: np.ndarray, set_level: np.ndarray, reset_level: np.ndarray,
                    ) -> tuple[LimitState, LimitEvents, int]:
    """Return (new state, events, readings not evaluated). Inputs are in arrival order."""
    slot = np.asarray(slot, dtype=np.int64)
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    n = len(slot)
    if n == 0:
        return state, _no_events(), 0

    # Bad-quality readings are dropped first (they must not advance time either, or the result would depend
    # on batch boundaries). Then group by sensor keeping arrival order, and drop readings not newer than
    # everything evaluated before them.
    good = np.asarray(quality) != Q_BAD
    order = np.flatnonzero(good)[np.argsort(slot[good], kind="stable")]
    s, t, v = slot[order], ts_ms[order], value[order]
    if len(s) == 0:
        return state, _no_events(), n
    starts_mask = np.r_[True, s[1:] != s[:-1]]
    group_id = np.cumsum(starts_mask) - 1
    shifted = t + group_id * _GROUP_SPAN
    prev_max = np.maximum.accumulate(np.r_[np.iinfo(np.int64).min, shifted[:-1]])
    keep = (t > state.last_ts_ms[s]) & ((shifted > prev_max) | starts_mask)
    skipped = int(n - np.count_nonzero(keep))
    s, t, v = s[keep], t[keep], v[keep]
    m = len(s)
    if m == 0:
        return state, _no_events(), skipped

    starts_mask = np.r_[True, s[1:] != s[:-1]]
    idx = np.arange(m)
    group_start = np.maximum.accumulate(np.where(starts_mask, idx, 0))
    last_mask = np.r_[s[1:] != s[:-1], True]

    sets = set_level[s]  # [m, 4]
    resets = reset_level[s]
    vv = v[:, None]
    with np.errstate(invalid="ignore"):
        on = np.where(HIGH, vv >= sets, vv <= sets)
        off = np.where(HIGH, vv < resets, vv > resets) & ~on
    decisive = on | off
    # Forward-fill the last decisive reading within each sensor's group.
    cand = np.where(decisive, idx[:, None], -1)
    last_dec = np.maximum.accumulate(cand, axis=0)
    from_batch = last_dec >= group_start[:, None]
    prior_active = state.active[s]
    active = np.where(from_batch, on[np.maximum(last_dec, 0), np.arange(N_LIMITS)], prior_active)
    prev = np.empty_like(active)
    prev[1:] = active[:-1]
    prev[starts_mask] = prior_active[starts_mask]
    raised = active & ~prev
    cleared = ~active & prev

    # Activation time: the latest raise in this batch for the sensor/limit, else the one carried in state.
    rcand = np.where(raised, idx[:, None], -1)
    last_raise = np.maximum.accumulate(rcand, axis=0)
    since = np.where(last_raise >= group_start[:, None], t[np.maximum(last_raise, 0)], state.since_ms[s])

    ev_r, ev_k = np.nonzero(raised | cleared)
    is_raise = raised[ev_r, ev_k]
    events = LimitEvents(
        slot=s[ev_r], limit=ev_k.astype(np.int8), raised=is_raise, ts_ms=t[ev_r], value=v[ev_r],
        threshold=np.where(is_raise, sets[ev_r, ev_k], resets[ev_r, ev_k]), since_ms=since[ev_r, ev_k],
    )
    # New state: copy, then write each touched sensor's last row.
    new_active = state.active.copy()
    new_since = state.since_ms.copy()
    new_last = state.last_ts_ms.copy()
    ls = s[last_mask]
    new_active[ls] = active[last_mask]
    new_since[ls] = since[last_mask]
    new_last[ls] = t[last_mask]
    return LimitState(new_active, new_since, new_last), events, skipped


def _no_events() -> LimitEvents:
    e = np.empty(0)
    return LimitEvents(e.astype(np.int64), e.astype(np.int8), e.astype(bool), e.astype(np.int64), e, e,
                       e.astype(np.int64))
