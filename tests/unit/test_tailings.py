from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.tailings import (
    BLUE,
    NONE,
    ORANGE,
    RED,
    RULE_MAX,
    YELLOW,
    InverseVelocityParams,
    InverseVelocityState,
    evaluate_inverse_velocity,
    explain_dam,
    explain_item,
    roll_up,
)
from hazardwatch.model import Q_BAD

BL, YE, OR, RD = BLUE, YELLOW, ORANGE, RED


# ---- four-colour roll-up --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("points", "level", "rule", "count"), [
    ([], NONE, RULE_MAX, 0),
    ([BL, BL, BL], BL, RULE_MAX, 0),
    ([BL, BL, BL, BL], YE, BL, 4),  # 4 blue points -> item yellow
    ([BL, BL, BL, BL, BL, YE], YE, RULE_MAX, 0),  # the rule adds nothing a yellow point has not already said
    ([YE, YE], YE, RULE_MAX, 0),
    ([YE, YE, YE], OR, YE, 3),  # 3 yellow -> orange
    ([BL, BL, BL, BL, YE, YE, YE], OR, YE, 3),
    ([BL, BL, BL, BL, YE, YE], YE, RULE_MAX, 0),  # the yellow from 4 blue points is not a third yellow point
    ([YE, YE, OR], OR, RULE_MAX, 0),
    ([OR, OR], RD, OR, 2),  # 2 orange -> red
    ([OR, RD, NONE], RD, RULE_MAX, 0),
])
def test_item_roll_up_table(points, level, rule, count):
    r = roll_up(np.array(points, dtype=np.int8), np.zeros(len(points), dtype=np.int64), np.array([0]))
    assert (int(r.item_level[0]), int(r.item_rule[0]), int(r.item_count[0])) == (level, rule, count)


@pytest.mark.parametrize(("items", "level", "rule", "carried"), [
    ([BL, BL, BL], BL, RULE_MAX, 0),
    ([BL, BL, BL, BL], YE, BL, 0),  # 4 blue items count as one yellow item (GB 39496-2020 5.5.4)
    ([YE, YE, YE], OR, YE, 0),  # assumed same pattern (verify)
    ([OR, OR], RD, OR, 0),
    ([BL, BL, BL, BL, YE, YE], OR, YE, 1),  # "count as": 1 yellow from 4 blue + 2 yellow = 3 yellow -> orange
    ([BL, BL, BL, BL, YE, YE, OR], RD, OR, 1),  # ... and that orange counts toward 2 orange -> red
    ([YE, RD], RD, RULE_MAX, 0),
])
def test_dam_roll_up_table(items, level, rule, carried):
    # One point per item at the item's level: the items then carry exactly these levels.
    n = len(items)
    r = roll_up(np.array(items, dtype=np.int8), np.arange(n), np.zeros(n, dtype=np.int64))
    assert r.item_level.tolist() == items
    assert (int(r.dam_level[0]), int(r.dam_rule[0]), int(r.dam_carried[0])) == (level, rule, carried)


def test_roll_up_is_vectorised_over_items_and_dams_and_explains_itself():
    # Dam 0: 浸润线埋深 with 3 yellow points, 干滩长度 with 4 blue points. Dam 1: 安全超高 quiet.
    # Unassigned points / items (-1) are ignored.
    point_level = np.array([YE, YE, YE, BL, BL, BL, BL, NONE, RD, RD], dtype=np.int8)
    item_of_point = np.array([0, 0, 0, 1, 1, 1, 1, 2, -1, 3])
    dam_of_item = np.array([0, 0, 1, -1])
    r = roll_up(point_level, item_of_point, dam_of_item)
    assert r.item_level.tolist() == [OR, YE, NONE, RD]
    assert r.dam_level.tolist() == [OR, NONE]  # item 3 (red) belongs to no dam
    assert explain_item(r, 0, "浸润线埋深").startswith("3 yellow points in 浸润线埋深 -> item orange")
    assert explain_item(r, 1, "干滩长度").startswith("4 blue points in 干滩长度 -> item yellow")
    assert explain_dam(r, 0, "1# 尾矿库") == "highest item level at 1# 尾矿库 is orange -> dam orange"
    r2 = roll_up(np.array([BL] * 4 + [YE] * 2, dtype=np.int8), np.arange(6), np.zeros(6, dtype=np.int64))
    text = explain_dam(r2, 0, "1# 尾矿库")
    assert text.startswith("3 yellow items (2 yellow + 1 counted up from lower levels) at 1# 尾矿库 -> dam orange")
    assert "(verify)" in text


def test_roll_up_rejects_bad_input():
    with pytest.raises(ValueError):
        roll_up(np.array([5]), np.array([0]), np.array([0]))
    with pytest.raises(ValueError):
        roll_up(np.array([1]), np.array([1]), np.array([0]))


# ---- inverse-velocity failure forecast -------------------------------------------------------------------------

A, TF = 0.01, 200.0  # inverse-velocity law v = 1 / (A (tf - t)): 0.5 mm/h at t = 0, failure at 200 h
HOURS = np.arange(0.0, 199.5, 1.0)
TS = (HOURS * 3_600_000).astype(np.int64)
P = InverseVelocityParams()


def creep_to_failure(seed: int, noise_mm: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = -np.log(TF - HOURS) / A  # integral of v
    return d - d[0] + rng.normal(0.0, noise_mm, len(HOURS))


def run(disp: np.ndarray, slots: np.ndarray | None = None, ts: np.ndarray = TS, n_points: int = 1,
        params: InverseVelocityParams = P):
    slots = np.zeros(len(disp), dtype=np.int64) if slots is None else slots
    return evaluate_inverse_velocity(InverseVelocityState.empty(n_points, params), params, slots, ts, disp,
                                     np.zeros(len(disp), dtype=np.int8))


@pytest.mark.parametrize("seed", range(20))
def test_forecast_within_ten_percent_once_acceleration_is_clear(seed):
    _, fc, ev, skipped = run(creep_to_failure(seed))
    assert skipped == 0
    # From 30 h before failure (velocity now 6.7x its start) every sample carries a forecast whose time of
    # failure is within 10 % of the time actually left.
    clear = (HOURS >= 170) & (HOURS <= 196)
    assert fc.forecast[clear].all()
    left = TF - HOURS[clear]
    assert np.all(np.abs(fc.hours_to_failure[clear] - left) <= 0.1 * left)
    t_fail_h = fc.t_failure_ms[clear] / 3_600_000
    assert np.all(np.abs(t_fail_h - TF) <= 0.1 * left)
    assert ev.raised[0] and ev.ts_ms[0] <= 170 * 3_600_000


def test_steady_creep_and_creep_at_rest_give_no_forecast():
    rng = np.random.default_rng(7)
    for v in (0.5, 2.0, 0.01):  # mm/h; the last is below v_min: creep at rest
        for _ in range(20):
            _, fc, ev, _ = run(v * HOURS + rng.normal(0.0, 0.05, len(HOURS)))
            assert not fc.forecast.any() and len(ev) == 0
            assert np.isnan(fc.hours_to_failure).all() and (fc.t_failure_ms == -1).all()


def test_points_are_independent_in_one_stream():
    # Point 0 creeps steadily, point 1 accelerates to failure; readings interleaved in one batch.
    steady = 0.5 * HOURS + np.random.default_rng(3).normal(0.0, 0.05, len(HOURS))
    slots = np.r_[np.zeros(len(HOURS)), np.ones(len(HOURS))].astype(np.int64)
    order = np.argsort(np.r_[TS, TS], kind="stable")
    state, fc, ev, _ = run(np.r_[steady, creep_to_failure(0)][order], slots[order], np.r_[TS, TS][order], 2)
    assert not fc.forecast[fc.slot == 0].any()
    assert fc.forecast[(fc.slot == 1) & (fc.ts_ms >= 170 * 3_600_000)].all()
    assert state.active.tolist() == [False, True] and set(ev.slot.tolist()) == {1}


def test_bad_quality_stale_and_missing_samples_are_not_evaluated():
    p = InverseVelocityParams()
    state = InverseVelocityState.empty(1, p)
    slots = np.zeros(4, dtype=np.int64)
    state, fc, _, skipped = evaluate_inverse_velocity(state, p, slots, np.array([1, 2, 3, 4]) * 3_600_000,
                                                      np.array([0.0, 1.0, np.nan, 9.0]),
                                                      np.array([0, 0, 0, Q_BAD], dtype=np.int8))
    assert skipped == 2 and fc.ts_ms.tolist() == [3_600_000, 7_200_000]
    state2, fc2, _, skipped = evaluate_inverse_velocity(state, p, slots[:1], np.array([7_200_000]),
                                                        np.array([5.0]), np.zeros(1, dtype=np.int8))
    assert skipped == 1 and len(fc2) == 0
    assert np.array_equal(state2.disp, state.disp, equal_nan=True)


def test_state_is_small():
    # 16 samples x (int64 time + float64 displacement) + active flag + raise time.
    assert InverseVelocityState.empty(1000, P).bytes_per_point() == 16 * 16 + 1 + 8


def as_rows(fc) -> list[tuple]:
    cols = (fc.slot, fc.ts_ms, fc.velocity, fc.inv_slope, fc.r2, fc.n_fit, fc.forecast, fc.hours_to_failure,
            fc.t_failure_ms)
    # NaN != NaN: compare through repr so bit-identical NaNs match.
    return sorted(tuple(repr(c[i].item()) for c in cols) for i in range(len(fc)))


# A short window so forecasts rise and fall often in short random streams.
SMALL = InverseVelocityParams(window=5, smooth=2, min_samples=3, r2_min=0.8, r2_clear=0.6, v_min_per_h=0.05,
                              max_horizon_h=500.0)
samples = st.lists(st.tuples(st.integers(0, 2),  # point
                             st.floats(-0.5, 0.5, allow_nan=False),  # relative noise on the increment
                             st.integers(1, 3),  # hours since the previous sample
                             st.integers(0, 10)),  # 0: bad quality; 1: late by 3 h; else normal
                   min_size=20, max_size=150)


@settings(max_examples=200, deadline=None)
@given(samples, st.floats(1.0, 1.3), st.lists(st.integers(1, 40), min_size=1, max_size=20))
def test_inverse_velocity_identical_however_the_stream_is_cut(rows, growth, cuts):
    n = len(rows)
    slots = np.array([r[0] for r in rows], dtype=np.int64)
    # Per point, increments growing geometrically (acceleration) with noise, so forecasts rise and fall.
    inc = np.array([r[2] * 0.2 * (1 + r[1]) for r in rows])
    disp = np.zeros(n)
    for p in range(3):
        sel = slots == p
        disp[sel] = np.cumsum(inc[sel] * growth ** np.arange(np.count_nonzero(sel)))
    ts = np.cumsum([r[2] * 3_600_000 for r in rows]).astype(np.int64)
    ts = ts - np.array([3 * 3_600_000 if r[3] == 1 else 0 for r in rows])
    q = np.array([Q_BAD if r[3] == 0 else 0 for r in rows], dtype=np.int8)

    whole_state, whole, whole_ev, whole_skipped = evaluate_inverse_velocity(
        InverseVelocityState.empty(3, SMALL), SMALL, slots, ts, disp, q)
    state = InverseVelocityState.empty(3, SMALL)
    parts, events, skipped = [], [], 0
    i = k = 0
    while i < n:
        j = min(n, i + cuts[k % len(cuts)])
        state, fc, ev, sk = evaluate_inverse_velocity(state, SMALL, slots[i:j], ts[i:j], disp[i:j], q[i:j])
        parts.append(fc)
        events += list(zip(ev.slot.tolist(), ev.raised.tolist(), ev.ts_ms.tolist(), ev.since_ms.tolist(),
                           map(repr, ev.hours_to_failure.tolist()), strict=True))
        skipped += sk
        i, k = j, k + 1
    got = sorted(r for fc in parts for r in as_rows(fc))
    assert got == as_rows(whole)
    assert sorted(events) == sorted(zip(whole_ev.slot.tolist(), whole_ev.raised.tolist(), whole_ev.ts_ms.tolist(),
                                        whole_ev.since_ms.tolist(), map(repr, whole_ev.hours_to_failure.tolist()),
                                        strict=True))
    assert skipped == whole_skipped
    assert np.array_equal(state.t_ms, whole_state.t_ms)
    assert np.array_equal(state.disp, whole_state.disp, equal_nan=True)
    assert np.array_equal(state.active, whole_state.active)
    assert np.array_equal(state.since_ms, whole_state.since_ms)
