"""Limit alarms (LL / L / H / HH): set and reset levels, on-delay, off-delay and latching, vectorised.

A pure function: (state, batch arrays, parameters) -> (new state, events). No Python loop per reading: each
stage of the alarm state machine is a forward fill of the last decisive reading within the sensor's segment
of the batch, seeded from the state the previous batch left.

1. Deadband. High limit: the condition is on at value >= set, off at value < reset (reset <= set); low limit:
   on at value <= set, off at value > reset. Between the two the previous condition holds (e.g. coal-mine
   methane: power-off at 1.5 %, re-energise only below 1.0 %).
2. Delays (event time). The alarm activates once the condition has been on for on_delay, and returns to
   normal once it has been off for off_delay (ISA-18.2 anti-chatter tools).
3. Latching (gas alarm controllers, GB 16808). A latched alarm stays active after the value returns to
   normal ("rtn" event) until a person resets it (`reset_latches`); a new excursion while latched re-sounds it
   ("realarm").

Readings with bad quality, or not newer than the sensor's newest evaluated reading, are not evaluated, so the
result is identical however the stream is cut into batches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from detectors.scan import Segments, forward_fill_index, from_grouped, prev_in_segment
from detectors.transitions import put, rows
from hazardwatch.model import Q_BAD

N_LIMITS = 4  # columns in the order of hazardwatch.registry.LIMIT_NAMES: LL, L, H, HH
HIGH = np.array([False, False, True, True])
_GROUP_SPAN = np.int64(1) << 43  # > any epoch-ms timestamp until year 2248
_MIN = np.iinfo(np.int64).min

# Event kinds.
RAISE, CLEAR, RTN_LATCHED, REALARM = 1, 0, 2, 3
EVENT_NAMES = {RAISE: "raise", CLEAR: "clear", RTN_LATCHED: "rtn", REALARM: "realarm"}


@dataclass(frozen=True)
class LimitParams:
    set_level: np.ndarray  # float [sensors, 4], NaN where the sensor has no such limit
    reset_level: np.ndarray  # float [sensors, 4]
    on_delay_ms: np.ndarray  # int64 [sensors, 4]
    off_delay_ms: np.ndarray  # int64 [sensors, 4]
    latching: np.ndarray  # bool [sensors, 4]

    @classmethod
    def simple(cls, set_level: np.ndarray, reset_level: np.ndarray) -> LimitParams:
        z = np.zeros(set_level.shape, dtype=np.int64)
        return cls(set_level, reset_level, z, z.copy(), np.zeros(set_level.shape, dtype=bool))


@dataclass(frozen=True)
class LimitState:
    cond: np.ndarray  # bool [sensors, 4]: condition after the deadband, before delays
    cond_since_ms: np.ndarray  # int64 [sensors, 4]: when cond took its current value
    active: np.ndarray  # bool [sensors, 4]: delayed alarm, ignoring latches
    latched: np.ndarray  # bool [sensors, 4]: latched alarm awaiting a person's reset
    since_ms: np.ndarray  # int64 [sensors, 4]: when the current/last alarm was raised (part of its id)
    last_ts_ms: np.ndarray  # int64 [sensors]: newest reading evaluated

    @classmethod
    def empty(cls, n_sensors: int) -> LimitState:
        b = np.zeros((n_sensors, N_LIMITS), dtype=bool)
        i = np.zeros((n_sensors, N_LIMITS), dtype=np.int64)
        return cls(b, i, b.copy(), b.copy(), i.copy(), np.full(n_sensors, _MIN, dtype=np.int64))

    @property
    def alarm(self) -> np.ndarray:
        """What the operator sees: active, or latched and not yet reset."""
        return self.active | self.latched


@dataclass(frozen=True)
class LimitEvents:
    """One row per alarm transition."""

    slot: np.ndarray
    limit: np.ndarray  # column index into LL, L, H, HH
    kind: np.ndarray  # RAISE, CLEAR, RTN_LATCHED, REALARM
    ts_ms: np.ndarray
    value: np.ndarray
    threshold: np.ndarray  # set level for raise/realarm, reset level for clear/rtn
    since_ms: np.ndarray  # activation time of the alarm the event belongs to

    @property
    def raised(self) -> np.ndarray:
        return self.kind == RAISE

    def __len__(self) -> int:
        return len(self.slot)


def by_slot(slot: np.ndarray, n_slots: int | None = None) -> np.ndarray:
    """Indices of a batch grouped by sensor, arrival order kept within each sensor. Any subset of it, taken in
    this order, is grouped the same way, so one grouping per batch serves every detector.

    With n_slots given, sensors with a single reading in the batch (nearly all of them when sensors report every
    few seconds and batches span a fraction of that) are left where they are and only the rest are sorted.
    """
    if n_slots is None or len(slot) == 0:
        return np.argsort(slot, kind="stable")
    once = np.bincount(slot, minlength=n_slots)[slot] == 1
    if once.all():
        return np.arange(len(slot))
    multi = np.flatnonzero(~once)
    return np.concatenate([np.flatnonzero(once), multi[np.argsort(slot[multi], kind="stable")]])


def evaluable(state_last_ts: np.ndarray, slot: np.ndarray, ts_ms: np.ndarray, quality: np.ndarray,
              grouped: np.ndarray | None = None) -> np.ndarray:
    """Mask of readings to evaluate: good quality and newer than everything evaluated before for the sensor."""
    good = np.asarray(quality) != Q_BAD
    grouped = by_slot(slot) if grouped is None else grouped
    order = grouped[good[grouped]]
    s, t = slot[order], ts_ms[order]
    keep_sorted = np.zeros(len(order), dtype=bool)
    if len(order):
        starts = np.r_[True, s[1:] != s[:-1]]
        newer = t > state_last_ts[s]
        if starts.all():  # one reading per sensor: only the state's newest time to beat
            keep_sorted = newer
        else:
            shifted = t + (np.cumsum(starts) - 1) * _GROUP_SPAN
            prev_max = np.maximum.accumulate(np.r_[_MIN, shifted[:-1]])
            keep_sorted = newer & ((shifted > prev_max) | starts)
    keep = np.zeros(len(slot), dtype=bool)
    keep[order[keep_sorted]] = True
    return keep


def evaluate_limits(state: LimitState, slot: np.ndarray, ts_ms: np.ndarray, value: np.ndarray,
                    quality: np.ndarray, params: LimitParams) -> tuple[LimitState, LimitEvents, int]:
    """Return (new state, events, readings not evaluated). Inputs are in arrival order."""
    slot = np.asarray(slot, dtype=np.int64)
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    keep = evaluable(state.last_ts_ms, slot, ts_ms, quality)
    skipped = int(len(slot) - np.count_nonzero(keep))
    if not keep.any():
        return state, _no_events(), skipped
    seg = sorted_segments(slot, keep)
    new, events = limits_on_segments(state, seg, ts_ms[seg.order], value[seg.order], params)
    return new, events, skipped


def sorted_segments(slot: np.ndarray, keep: np.ndarray, grouped: np.ndarray | None = None) -> Segments:
    grouped = by_slot(slot) if grouped is None else grouped
    order = grouped[keep[grouped]]
    return from_grouped(order, slot[order])


def limits_on_segments(state: LimitState, seg: Segments, t: np.ndarray, v: np.ndarray,
                       params: LimitParams) -> tuple[LimitState, LimitEvents]:
    """The state machine over readings already filtered and sorted into segments (t, v in segment order)."""
    s = seg.slot
    m = len(s)
    last = seg.last
    cols = np.arange(N_LIMITS)
    tt = t[:, None]

    # 1. Deadband.
    sets, resets = rows(params.set_level, s), rows(params.reset_level, s)
    vv = v[:, None]
    with np.errstate(invalid="ignore"):
        on = np.where(HIGH, vv >= sets, vv <= sets)
        off = np.where(HIGH, vv < resets, vv > resets) & ~on
    k = forward_fill_index(seg, on | off)
    cond = np.where(k >= 0, on[np.maximum(k, 0), cols], rows(state.cond, s))
    prev_cond = prev_in_segment(seg, cond, rows(state.cond, s))

    # 2. Delays: how long has the condition held its current value?
    changed = cond != prev_cond
    kc = forward_fill_index(seg, changed)
    cond_since = np.where(kc >= 0, t[np.maximum(kc, 0)], rows(state.cond_since_ms, s))
    held = tt - cond_since
    go_on = cond & (held >= rows(params.on_delay_ms, s))
    go_off = ~cond & (held >= rows(params.off_delay_ms, s))
    ka = forward_fill_index(seg, go_on | go_off)
    active = np.where(ka >= 0, go_on[np.maximum(ka, 0), cols], rows(state.active, s))
    prev_active = prev_in_segment(seg, active, rows(state.active, s))
    rose = active & ~prev_active
    fell = ~active & prev_active

    # 3. Latching: once raised, held until reset; the first rise latches it.
    latching = rows(params.latching, s)
    prior_latched = rows(state.latched, s)
    kr = forward_fill_index(seg, rose)
    latched = latching & ((kr >= 0) | prior_latched)
    prev_latched = prev_in_segment(seg, latched, prior_latched)
    alarm = active | latched
    prev_alarm = prev_active | prev_latched

    kind = np.full((m, N_LIMITS), -1, dtype=np.int8)
    kind[alarm & ~prev_alarm] = RAISE
    kind[~alarm & prev_alarm] = CLEAR
    kind[fell & latched] = RTN_LATCHED
    kind[rose & prev_latched] = REALARM

    # Activation time: the latest raise in this batch for the sensor/limit, else the one carried in state.
    kraise = forward_fill_index(seg, kind == RAISE)
    since = np.where(kraise >= 0, t[np.maximum(kraise, 0)], rows(state.since_ms, s))

    er, ek = np.nonzero(kind >= 0)
    ekind = kind[er, ek]
    events = LimitEvents(
        slot=s[er], limit=ek.astype(np.int8), kind=ekind, ts_ms=t[er], value=v[er],
        threshold=np.where((ekind == RAISE) | (ekind == REALARM), sets[er, ek], resets[er, ek]),
        since_ms=since[er, ek],
    )
    ls = s[last]
    new = LimitState(
        cond=put(state.cond, ls, cond[last]), cond_since_ms=put(state.cond_since_ms, ls, cond_since[last]),
        active=put(state.active, ls, active[last]), latched=put(state.latched, ls, latched[last]),
        since_ms=put(state.since_ms, ls, since[last]), last_ts_ms=put(state.last_ts_ms, ls, t[last]),
    )
    return new, events


def reset_latches(state: LimitState, slots: np.ndarray, limits: np.ndarray) -> tuple[LimitState, np.ndarray]:
    """A person resets latched alarms. Only those whose condition has returned to normal can be reset.

    Returns the new state and a bool mask (per requested slot/limit) of the latches actually cleared, for
    which the caller emits a clear.
    """
    slots = np.asarray(slots, dtype=np.int64)
    limits = np.asarray(limits, dtype=np.int64)
    ok = state.latched[slots, limits] & ~state.active[slots, limits]
    latched = state.latched.copy()
    latched[slots[ok], limits[ok]] = False
    return replace(state, latched=latched), ok




def _no_events() -> LimitEvents:
    e = np.empty(0)
    return LimitEvents(e.astype(np.int64), e.astype(np.int8), e.astype(np.int8), e.astype(np.int64), e, e,
                       e.astype(np.int64))
