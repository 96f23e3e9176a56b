"""Tailings-dam detectors: the GB 39496-2020 four-colour roll-up and the inverse-velocity failure forecast.

Roll-up (GB 39496-2020 clause 5.5.4, read from a third-party copy of the text). Levels 0 none, 1 blue,
2 yellow, 3 orange, 4 red.
- Points -> monitoring item: 4 blue points -> item yellow; 3 yellow points -> item orange; 2 orange points ->
  item red; otherwise the item takes its highest point level. Counts are of points at exactly that level, as
  the clause words it; counting "at or above" gives the same item level, because any higher point already
  lifts the item at least as far. A yellow reached from 4 blue points does not count again toward the
  "3 yellow" rule: within an item the clause counts points, not derived levels.
- Items -> dam: "4 blue items count as 1 yellow item" is the clause; the rest is assumed by the same pattern
  (verify): 3 yellow items count as 1 orange, 2 orange as 1 red. "Count as" is applied literally, so derived
  items cascade: 4 blue + 2 yellow items = 3 yellow = dam orange. That is the conservative reading.

Inverse velocity (Fukuzono 1985). Before slope failure, displacement accelerates so that 1/velocity falls
about linearly in time; extrapolating the line to 1/v = 0 forecasts the time of failure. Per point a ring
buffer of the last window + smooth samples (t, displacement) is kept in state. At each new sample:
velocity is the secant over `smooth` samples (a few samples, to damp reading noise), placed at the secant's
mid-time; velocities below v_min are dropped from the fit (creep at rest: 1/v of noise is meaningless); a
least-squares line of 1/v against t over the window gives slope, intercept and R². A forecast needs enough
velocities, a negative slope, R² >= r2_min, the latest velocity >= v_min and a horizon within max_horizon_h; it
is withdrawn when one of these fails, with an R² deadband (r2_clear < r2_min) against chatter. All thresholds
are site-configurable (verify with the dam's design unit); they are data carried by InverseVelocityParams.

Both functions are pure and vectorised: no Python loop per reading, point or item. The inverse-velocity state
carries the raw samples and every sum is taken in the same order whatever the batch, so outputs are
bit-identical however the stream is cut into batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hazardwatch.model import Q_BAD

NONE, BLUE, YELLOW, ORANGE, RED = 0, 1, 2, 3, 4
LEVEL_NAMES = ("none", "blue", "yellow", "orange", "red")
LEVEL_NAMES_ZH = ("无", "蓝色", "黄色", "橙色", "红色")
N_LEVELS = 5
# ESCALATE[L]: how many at level L lift the item (or count as one at the dam) to level L + 1; 0 = no rule.
ESCALATE = np.array([0, 4, 3, 2, 0], dtype=np.int64)
CLAUSE_ITEM = "GB 39496-2020 5.5.4 (points within one monitoring item)"
CLAUSE_DAM = ("GB 39496-2020 5.5.4 (across items: 4 blue items count as 1 yellow; 3 yellow -> orange and "
              "2 orange -> red assumed by the same pattern (verify))")
# Rule codes: 0 = highest level as it stands, r in 1..3 = the escalation from level r to r + 1 decided it.
RULE_MAX = 0


@dataclass(frozen=True)
class RollUp:
    item_level: np.ndarray  # int8 [items]
    item_rule: np.ndarray  # int8 [items]: RULE_MAX or the level whose count lifted the item
    item_count: np.ndarray  # int64 [items]: points at that level (0 for RULE_MAX)
    item_counts: np.ndarray  # int64 [items, 5]: points per level
    dam_level: np.ndarray  # int8 [dams]
    dam_rule: np.ndarray  # int8 [dams]
    dam_count: np.ndarray  # int64 [dams]: items at the rule's level, counting those carried up from below
    dam_carried: np.ndarray  # int64 [dams]: of dam_count, how many were counted up from lower levels
    dam_counts: np.ndarray  # int64 [dams, 5]: items per level


def roll_up(point_level: np.ndarray, item_of_point: np.ndarray, dam_of_item: np.ndarray,
            n_dams: int | None = None) -> RollUp:
    """Points -> items -> dams. item_of_point / dam_of_item: -1 for a point or item that belongs nowhere."""
    lvl = np.asarray(point_level, dtype=np.int64)
    iop = np.asarray(item_of_point, dtype=np.int64)
    doi = np.asarray(dam_of_item, dtype=np.int64)
    if lvl.shape != iop.shape:
        raise ValueError("point_level and item_of_point must have the same length")
    if lvl.size and (lvl.min() < NONE or lvl.max() > RED):
        raise ValueError("warning levels are 0 (none) .. 4 (red)")
    n_items = len(doi)
    if iop.size and (iop.min() < -1 or iop.max() >= n_items):
        raise ValueError("item_of_point refers to an item outside dam_of_item")
    if n_dams is None:
        n_dams = int(doi.max()) + 1 if doi.size else 0
    if doi.size and (doi.min() < -1 or doi.max() >= n_dams):
        raise ValueError("dam_of_item refers to a dam outside n_dams")

    inp = iop >= 0
    item_counts = np.bincount(iop[inp] * N_LEVELS + lvl[inp], minlength=n_items * N_LEVELS)
    item_counts = item_counts.reshape(n_items, N_LEVELS)
    native = _highest(item_counts)
    fired = (item_counts >= ESCALATE) & (ESCALATE > 0)  # [items, 5]: escalation from level L fires
    esc_from = _highest(fired)  # 0 when nothing fired (level 0 has no rule)
    esc_level = np.where(fired.any(axis=1), esc_from + 1, 0)
    item_level = np.maximum(native, esc_level)
    by_rule = esc_level > native
    item_rule = np.where(by_rule, esc_from, RULE_MAX)
    item_count = np.where(by_rule, item_counts[np.arange(n_items), esc_from], 0)

    ind = doi >= 0
    dam_counts = np.bincount(doi[ind] * N_LEVELS + item_level[ind], minlength=n_dams * N_LEVELS)
    dam_counts = dam_counts.reshape(n_dams, N_LEVELS)
    # "Count as": each level's tally includes whole groups carried up from the level below (four steps over
    # the colours, vectorised over dams).
    equiv = dam_counts.copy()
    equiv[:, NONE] = 0
    for lv in (YELLOW, ORANGE, RED):
        equiv[:, lv] += equiv[:, lv - 1] // ESCALATE[lv - 1]
    dam_native = _highest(dam_counts)
    dam_level = _highest(equiv)
    dam_by_rule = dam_level > dam_native
    dam_rule = np.where(dam_by_rule, dam_level - 1, RULE_MAX)
    rows = np.arange(n_dams)
    from_lv = np.maximum(dam_level - 1, 0)
    dam_count = np.where(dam_by_rule, equiv[rows, from_lv], 0)
    dam_carried = np.where(dam_by_rule, equiv[rows, from_lv] - dam_counts[rows, from_lv], 0)
    return RollUp(item_level.astype(np.int8), item_rule.astype(np.int8), item_count, item_counts,
                  dam_level.astype(np.int8), dam_rule.astype(np.int8), dam_count, dam_carried, dam_counts)


def _highest(mask_or_counts: np.ndarray) -> np.ndarray:
    """Highest column index with a non-zero entry per row; 0 when the row is empty."""
    nz = np.asarray(mask_or_counts) > 0
    nz[:, NONE] = True  # level 0 is the floor
    return (nz.shape[1] - 1 - np.argmax(nz[:, ::-1], axis=1)).astype(np.int64)


def explain_item(r: RollUp, i: int, item_name: str) -> str:
    """Why item i has its level, e.g. '3 yellow points in 浸润线埋深 -> item orange [GB 39496-2020 5.5.4 ...]'."""
    lv, rule = int(r.item_level[i]), int(r.item_rule[i])
    if rule == RULE_MAX:
        return f"highest point level in {item_name} is {LEVEL_NAMES[lv]} -> item {LEVEL_NAMES[lv]}"
    return (f"{int(r.item_count[i])} {LEVEL_NAMES[rule]} points in {item_name} -> item {LEVEL_NAMES[lv]} "
            f"[{CLAUSE_ITEM}]")


def explain_dam(r: RollUp, d: int, dam_name: str) -> str:
    lv, rule = int(r.dam_level[d]), int(r.dam_rule[d])
    if rule == RULE_MAX:
        return f"highest item level at {dam_name} is {LEVEL_NAMES[lv]} -> dam {LEVEL_NAMES[lv]}"
    count, carried = int(r.dam_count[d]), int(r.dam_carried[d])
    how = f" ({count - carried} {LEVEL_NAMES[rule]} + {carried} counted up from lower levels)" if carried else ""
    return f"{count} {LEVEL_NAMES[rule]} items{how} at {dam_name} -> dam {LEVEL_NAMES[lv]} [{CLAUSE_DAM}]"


@dataclass(frozen=True)
class DamState:
    """What the duty officer was last told per dam: its warning colour, since when, and the point shown."""

    level: np.ndarray  # int8 [dams]: 0 none .. 4 red
    since_ms: np.ndarray  # int64 [dams]: when the current colour was raised (part of its alert id)
    point: np.ndarray  # int64 [dams]: the point (sensor slot) named in the current alert, -1 for none

    @classmethod
    def empty(cls, n_dams: int) -> DamState:
        return cls(np.zeros(n_dams, dtype=np.int8), np.zeros(n_dams, dtype=np.int64),
                   np.full(n_dams, -1, dtype=np.int64))


@dataclass(frozen=True)
class DamEvents:
    """One row per dam whose colour changed: the old colour's alert clears, the new one raises."""

    dam: np.ndarray
    old: np.ndarray  # colour cleared (0: nothing to clear)
    new: np.ndarray  # colour raised (0: nothing raised, the dam is back to normal)
    old_since_ms: np.ndarray
    old_point: np.ndarray
    new_point: np.ndarray  # the highest point of the dam (first in point order among equals)

    def __len__(self) -> int:
        return len(self.dam)


def evaluate_dams(state: DamState, point_level: np.ndarray, point_slot: np.ndarray, item_of_point: np.ndarray,
                  dam_of_item: np.ndarray, ts_ms: int) -> tuple[DamState, RollUp, DamEvents]:
    """Roll the points' current colours up to each dam and report the dams whose colour changed.

    A snapshot, judged after each batch: the dam colour is a function of its points' alarm states now, so the
    result does not depend on how readings were cut into batches, only on the state they leave.
    """
    n_dams = len(state.level)
    r = roll_up(point_level, item_of_point, dam_of_item, n_dams)
    changed = np.flatnonzero(r.dam_level != state.level)
    # The point to name: the highest of the dam (ties: first in registry order).
    dam_of_point = np.where(item_of_point >= 0, dam_of_item[np.maximum(item_of_point, 0)], -1)
    key = np.where(dam_of_point >= 0, dam_of_point * 8 + (N_LEVELS - 1 - np.asarray(point_level, dtype=np.int64)),
                   np.iinfo(np.int64).max)
    order = np.argsort(key, kind="stable")
    first = np.full(n_dams, -1, dtype=np.int64)
    dop = dam_of_point[order]
    ok = dop >= 0
    head = np.r_[True, dop[1:] != dop[:-1]] & ok if len(dop) else ok
    first[dop[head]] = point_slot[order[head]]
    ev = DamEvents(changed, state.level[changed].astype(np.int64), r.dam_level[changed].astype(np.int64),
                   state.since_ms[changed], state.point[changed], first[changed])
    level, since, point = state.level.copy(), state.since_ms.copy(), state.point.copy()
    level[changed] = r.dam_level[changed]
    since[changed] = ts_ms
    point[changed] = np.where(r.dam_level[changed] > 0, first[changed], -1)
    return DamState(level, since, point), r, ev


# ---- inverse-velocity failure forecast ---------------------------------------------------------------------

_MIN_TS = np.iinfo(np.int64).min
_GROUP_SPAN = np.int64(1) << 43  # > any epoch-ms timestamp until year 2248
_MS_PER_H = 3_600_000.0


@dataclass(frozen=True)
class InverseVelocityParams:
    window: int = 12  # velocities in the fit
    smooth: int = 4  # samples spanned by each velocity (secant); damps reading noise
    min_samples: int = 8  # velocities (>= v_min) needed before a line is trusted
    # Overlapping secants are correlated, so noise alone can draw a convincing line: at 0.8, steady creep with
    # 5 % velocity noise raised a forecast now and then in simulation; at 0.9 it did not (1000 runs).
    r2_min: float = 0.9  # goodness of fit to raise a forecast
    r2_clear: float = 0.8  # below this a standing forecast is withdrawn (deadband against chatter)
    v_min_per_h: float = 0.05  # displacement units per hour; slower is creep at rest or noise
    max_horizon_h: float = 720.0  # a forecast further out than this is not a forecast
    clause: str = ("Fukuzono (1985) inverse-velocity method, domain.md §5 / GB 51108-2015 §8.3 trend analysis; "
                   "parameters site-configurable (verify with the dam's design unit)")

    @property
    def buffer_len(self) -> int:
        return self.window + self.smooth

    def __post_init__(self) -> None:
        if self.window < 2 or self.smooth < 1 or not 2 <= self.min_samples <= self.window:
            raise ValueError("need window >= 2, smooth >= 1 and 2 <= min_samples <= window")
        if not self.r2_clear <= self.r2_min:
            raise ValueError("r2_clear must not exceed r2_min")


@dataclass(frozen=True)
class InverseVelocityState:
    t_ms: np.ndarray  # int64 [points, buffer_len]: oldest .. newest sample times; _MIN_TS where empty
    disp: np.ndarray  # float64 [points, buffer_len]: displacement; NaN where empty
    active: np.ndarray  # bool [points]: a failure forecast is standing
    since_ms: np.ndarray  # int64 [points]: when the standing forecast was raised (part of its id)

    @classmethod
    def empty(cls, n_points: int, params: InverseVelocityParams) -> InverseVelocityState:
        b = params.buffer_len
        return cls(np.full((n_points, b), _MIN_TS, dtype=np.int64), np.full((n_points, b), np.nan),
                   np.zeros(n_points, dtype=bool), np.zeros(n_points, dtype=np.int64))

    def bytes_per_point(self) -> int:
        n = max(len(self.active), 1)
        return (self.t_ms.nbytes + self.disp.nbytes + self.active.nbytes + self.since_ms.nbytes) // n


@dataclass(frozen=True)
class Forecasts:
    """One row per evaluated sample (grouped by point, in time order within a point)."""

    slot: np.ndarray
    ts_ms: np.ndarray
    velocity: np.ndarray  # smoothed, displacement units per hour; NaN until `smooth` samples exist
    inv_slope: np.ndarray  # d(1/v)/dt of the fit (dimensionless); NaN without a fit
    r2: np.ndarray
    n_fit: np.ndarray  # velocities used in the fit
    forecast: np.ndarray  # bool: a failure forecast stands after this sample
    hours_to_failure: np.ndarray  # from ts_ms; NaN where no forecast; 0 = the fit says failure is due now
    t_failure_ms: np.ndarray  # int64; -1 where no forecast

    def __len__(self) -> int:
        return len(self.slot)


@dataclass(frozen=True)
class ForecastEvents:
    """raised=True: a failure forecast started; False: it was withdrawn."""

    slot: np.ndarray
    raised: np.ndarray
    ts_ms: np.ndarray
    hours_to_failure: np.ndarray  # at the raise; NaN for a clear
    velocity: np.ndarray
    since_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.slot)


def evaluate_inverse_velocity(state: InverseVelocityState, params: InverseVelocityParams, slot: np.ndarray,
                              ts_ms: np.ndarray, displacement: np.ndarray, quality: np.ndarray,
                              ) -> tuple[InverseVelocityState, Forecasts, ForecastEvents, int]:
    """Return (new state, one forecast row per evaluated sample, transition events, samples not evaluated).

    Inputs are in arrival order. Bad-quality samples and samples not newer than the point's last evaluated one
    are not evaluated (and do not enter the buffer), exactly as for limit alarms.
    """
    slot = np.asarray(slot, dtype=np.int64)
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    displacement = np.asarray(displacement, dtype=np.float64)
    n = len(slot)
    b = params.buffer_len
    if n == 0:
        return state, _no_forecasts(), _no_events(), 0

    good = (np.asarray(quality) != Q_BAD) & np.isfinite(displacement)
    order = np.flatnonzero(good)[np.argsort(slot[good], kind="stable")]
    s, t, d = slot[order], ts_ms[order], displacement[order]
    if len(s) == 0:
        return state, _no_forecasts(), _no_events(), n
    starts = np.r_[True, s[1:] != s[:-1]]
    gid = np.cumsum(starts) - 1
    shifted = t + gid * _GROUP_SPAN
    prev_max = np.maximum.accumulate(np.r_[_MIN_TS, shifted[:-1]])
    keep = (t > state.t_ms[s, -1]) & ((shifted > prev_max) | starts)
    skipped = int(n - np.count_nonzero(keep))
    s, t, d = s[keep], t[keep], d[keep]
    m = len(s)
    if m == 0:
        return state, _no_forecasts(), _no_events(), skipped

    # Lay each touched point out as [its buffer, its new samples] in one flat array; the window ending at any
    # new sample then lies inside its own point's segment, so one sliding view serves every point.
    starts = np.r_[True, s[1:] != s[:-1]]
    last = np.r_[s[1:] != s[:-1], True]
    idx = np.arange(m)
    first_of = np.flatnonzero(starts)
    pts = s[starts]
    counts = np.diff(np.r_[first_of, m])
    seg = np.arange(len(pts)) * b + np.r_[0, np.cumsum(counts)[:-1]]
    flat_t = np.empty(len(pts) * b + m, dtype=np.int64)
    flat_d = np.empty(len(pts) * b + m)
    buf_pos = (seg[:, None] + np.arange(b)).ravel()
    flat_t[buf_pos] = state.t_ms[pts].ravel()
    flat_d[buf_pos] = state.disp[pts].ravel()
    grp = np.cumsum(starts) - 1
    pos = seg[grp] + b + (idx - first_of[grp])
    flat_t[pos] = t
    flat_d[pos] = d
    win_t = sliding_window_view(flat_t, b)[pos - b + 1]  # [m, b], oldest .. newest
    win_d = sliding_window_view(flat_d, b)[pos - b + 1]

    vel, slope, r2, n_fit, a_now = _fit(win_t, win_d, params)
    hours = np.where(slope < 0, np.maximum(-a_now / np.where(slope < 0, slope, -1.0), 0.0), np.inf)
    with np.errstate(invalid="ignore"):
        fit_ok = (n_fit >= params.min_samples) & (slope < 0) & (vel >= params.v_min_per_h) & \
                 (hours <= params.max_horizon_h)
        on = fit_ok & (r2 >= params.r2_min)
        off = ~fit_ok | ~(r2 >= params.r2_clear)

    # Hysteresis resolved as in limits: the last decisive sample per point decides, else the state carries.
    decisive = on | off
    group_start = first_of[grp]
    last_dec = np.maximum.accumulate(np.where(decisive, idx, -1))
    from_batch = last_dec >= group_start
    prior = state.active[s]
    active = np.where(from_batch, on[np.maximum(last_dec, 0)], prior)
    prev = np.r_[False, active[:-1]]
    prev[starts] = prior[starts]
    raised = active & ~prev
    cleared = prev & ~active
    last_raise = np.maximum.accumulate(np.where(raised, idx, -1))
    since = np.where(last_raise >= group_start, t[np.maximum(last_raise, 0)], state.since_ms[s])

    h_out = np.where(active, hours, np.nan)
    tf = np.where(active, t + np.round(np.where(active, hours, 0.0) * _MS_PER_H).astype(np.int64), -1)
    forecasts = Forecasts(s, t, vel, slope, r2, n_fit, active, h_out, tf)
    ev = np.flatnonzero(raised | cleared)
    events = ForecastEvents(s[ev], raised[ev], t[ev], np.where(raised[ev], hours[ev], np.nan), vel[ev], since[ev])

    new_t, new_d = state.t_ms.copy(), state.disp.copy()
    new_active, new_since = state.active.copy(), state.since_ms.copy()
    ls = s[last]
    new_t[ls] = win_t[last]
    new_d[ls] = win_d[last]
    new_active[ls] = active[last]
    new_since[ls] = since[last]
    return InverseVelocityState(new_t, new_d, new_active, new_since), forecasts, events, skipped


def _fit(win_t: np.ndarray, win_d: np.ndarray, p: InverseVelocityParams,
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares line of 1/v against t (hours before the newest sample) for each window row.

    Returns (latest velocity, slope, R², velocities used, fitted 1/v at the newest sample). Sums run column by
    column in a fixed order, so a row's result does not depend on how many rows share the call (numpy's
    reductions may pick a different summation order for different array shapes).
    """
    k = p.smooth
    new_t, old_t = win_t[:, k:], win_t[:, :-k]
    valid = ~np.isnan(win_d[:, k:]) & ~np.isnan(win_d[:, :-k])
    t_now = win_t[:, -1:]
    old_t = np.where(valid, old_t, new_t)  # empty slots hold _MIN_TS: keep the subtraction from overflowing
    dt_h = (new_t - old_t) / _MS_PER_H
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(valid, (win_d[:, k:] - win_d[:, :-k]) / np.where(valid, dt_h, 1.0), np.nan)
        use = valid & (v >= p.v_min_per_h)
        x = np.where(use, ((new_t - t_now) + (old_t - t_now)) / (2 * _MS_PER_H), 0.0)  # secant mid-time
        y = np.where(use, 1.0 / np.where(use, v, 1.0), 0.0)
    w = use.astype(np.float64)
    cols = range(x.shape[1])
    n = _colsum(w, cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = _colsum(x, cols) / n
        ym = _colsum(y, cols) / n
        dx = (x - xm[:, None]) * w
        dy = (y - ym[:, None]) * w
        sxx = _colsum(dx * dx, cols)
        sxy = _colsum(dx * dy, cols)
        syy = _colsum(dy * dy, cols)
        slope = sxy / sxx
        r2 = sxy * sxy / (sxx * syy)
        a_now = ym - slope * xm
    return v[:, -1], slope, r2, n.astype(np.int64), a_now


def _colsum(a: np.ndarray, cols: range) -> np.ndarray:
    out = np.zeros(a.shape[0])
    for j in cols:  # a dozen columns, vectorised over rows: fixed order for bit-identical batches
        out = out + a[:, j]
    return out


def _no_forecasts() -> Forecasts:
    e = np.empty(0)
    i = e.astype(np.int64)
    return Forecasts(i, i, e, e, e, i, e.astype(bool), e, i)


def _no_events() -> ForecastEvents:
    e = np.empty(0)
    return ForecastEvents(e.astype(np.int64), e.astype(bool), e.astype(np.int64), e, e, e.astype(np.int64))
