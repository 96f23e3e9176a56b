from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.limits import EVENT_NAMES, LimitParams, LimitState, evaluate_limits, reset_latches

NAN = np.nan
# Two sensors: a tank level (LL 5/7, L 10/12, H 85/83, HH 90/88) and a methane head with the legal
# hysteresis: alarm 1.0 (clears below 1.0), power-off 1.5, re-energise only below 1.0.
SET = np.array([[5, 10, 85, 90], [NAN, NAN, 1.0, 1.5]], dtype=float)
RESET = np.array([[7, 12, 83, 88], [NAN, NAN, 1.0, 1.0]], dtype=float)


PARAMS = LimitParams.simple(SET, RESET)


def run(state, slots, values, ts=None, q=None, params=PARAMS):
    n = len(values)
    ts = np.arange(1, n + 1) * 1000 if ts is None else np.asarray(ts)
    q = np.zeros(n, dtype=np.int8) if q is None else np.asarray(q, dtype=np.int8)
    return evaluate_limits(state, np.asarray(slots), ts, np.asarray(values, dtype=float), q, params)


def transitions(ev):
    names = ["LL", "L", "H", "HH"]
    return [(int(s), names[k], EVENT_NAMES[int(c)], int(t)) for s, k, c, t in
            zip(ev.slot, ev.limit, ev.kind, ev.ts_ms, strict=True)]


def test_high_and_high_high_with_separate_reset_levels():
    st0 = LimitState.empty(2)
    st1, ev, skipped = run(st0, [0] * 7, [50, 86, 91, 89, 87.9, 84, 82.9])
    assert skipped == 0
    assert transitions(ev) == [(0, "H", "raise", 2000), (0, "HH", "raise", 3000),
                               (0, "HH", "clear", 5000), (0, "H", "clear", 7000)]
    # 89 is below HH (90) but above its reset (88): still active. Deadband, no chatter.
    assert not st1.active[0].any()
    # The threshold reported is the set level for a raise and the reset level for a clear.
    assert ev.threshold.tolist() == [85, 90, 88, 83]


def test_low_limits():
    _, ev, _ = run(LimitState.empty(2), [0] * 5, [20, 9, 4, 8, 13])
    assert transitions(ev) == [(0, "L", "raise", 2000), (0, "LL", "raise", 3000),
                               (0, "LL", "clear", 4000), (0, "L", "clear", 5000)]


def test_methane_power_off_is_not_re_energised_until_below_one_percent():
    _, ev, _ = run(LimitState.empty(2), [1] * 6, [0.4, 1.2, 1.6, 1.3, 1.0, 0.9])
    assert transitions(ev) == [(1, "H", "raise", 2000), (1, "HH", "raise", 3000),
                               (1, "H", "clear", 6000), (1, "HH", "clear", 6000)]


def test_bad_quality_and_stale_readings_are_not_evaluated():
    st1, ev, skipped = run(LimitState.empty(2), [0, 0, 0], [50, 95, 50], ts=[1000, 2000, 3000], q=[0, 2, 0])
    assert len(ev) == 0 and skipped == 1
    # A reading older than what was already evaluated does not move the state.
    st2, ev, skipped = run(st1, [0], [95], ts=[2500])
    assert len(ev) == 0 and skipped == 1 and st2.last_ts_ms[0] == 3000


def test_activation_time_survives_batches_and_identifies_the_alarm():
    st1, ev1, _ = run(LimitState.empty(2), [0, 0], [50, 95], ts=[1000, 2000])
    _, ev2, _ = run(st1, [0, 0], [96, 80], ts=[3000, 4000])
    assert ev1.since_ms.tolist() == [2000, 2000]
    assert ev2.since_ms.tolist() == [2000, 2000]  # the clears belong to the alarm raised at 2000


readings = st.lists(
    st.tuples(st.integers(0, 1), st.floats(-5, 100, allow_nan=False), st.integers(0, 2), st.integers(0, 3)),
    min_size=1, max_size=120,
)


DELAYED = LimitParams(SET, RESET, np.array([[0, 0, 2000, 0], [0, 0, 0, 3000]]),
                      np.array([[0, 0, 1500, 0], [0, 0, 2500, 0]]), np.array([[False, False, False, True],
                                                                                [False, False, True, False]]))


@settings(max_examples=300, deadline=None)
@given(readings, st.lists(st.integers(1, 40), min_size=1, max_size=20), st.booleans())
def test_same_events_however_the_stream_is_cut(rows, cuts, delayed):
    params = DELAYED if delayed else PARAMS
    """Event-identical results for any batch split, including out-of-order and bad-quality readings."""
    slots = np.array([r[0] for r in rows])
    vals = np.array([r[1] if r[0] == 0 else r[1] / 40 for r in rows])
    q = np.array([r[2] if r[2] == 2 else 0 for r in rows], dtype=np.int8)
    # Mostly increasing time with some readings arriving late (jitter).
    ts = np.cumsum(np.full(len(rows), 1000)) - np.array([r[3] for r in rows]) * 1500

    whole_state, whole, _ = evaluate_limits(LimitState.empty(2), slots, ts, vals, q, params)
    state = LimitState.empty(2)
    got = []
    i = 0
    k = 0
    while i < len(rows):
        j = min(len(rows), i + cuts[k % len(cuts)])
        state, ev, _ = evaluate_limits(state, slots[i:j], ts[i:j], vals[i:j], q[i:j], params)
        got += transitions(ev)
        i, k = j, k + 1
    key = lambda e: (e[3], e[0], e[1])  # noqa: E731 - sort key
    assert sorted(got, key=key) == sorted(transitions(whole), key=key)
    assert np.array_equal(state.active, whole_state.active)
    for name in ("cond", "cond_since_ms", "active", "latched", "since_ms", "last_ts_ms"):
        assert np.array_equal(getattr(state, name), getattr(whole_state, name)), name


def test_on_delay_suppresses_a_short_excursion_and_off_delay_holds_the_alarm():
    params = LimitParams(SET, RESET, np.full((2, 4), 3000), np.full((2, 4), 2000), np.zeros((2, 4), dtype=bool))
    # 1 s over H (shorter than the 3 s on-delay): nothing. Then 4 s over: raise at the reading 3 s in.
    _, ev, _ = run(LimitState.empty(2), [0] * 9, [50, 86, 50, 86, 86, 86, 86, 50, 50],
                   ts=[0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 9000], params=params)
    assert transitions(ev) == [(0, "H", "raise", 6000), (0, "H", "clear", 9000)]


def test_gas_alarm_latches_until_a_person_resets_it():
    params = LimitParams(SET, RESET, np.zeros((2, 4), dtype=np.int64), np.zeros((2, 4), dtype=np.int64),
                         np.array([[False] * 4, [False, False, True, True]]))
    st1, ev, _ = run(LimitState.empty(2), [1] * 4, [0.2, 1.2, 0.4, 1.1], params=params)
    # Raised, back to normal (still latched), re-sounds on a new excursion while latched.
    assert transitions(ev) == [(1, "H", "raise", 2000), (1, "H", "rtn", 3000), (1, "H", "realarm", 4000)]
    assert st1.alarm[1, 2]
    st2, _, _ = run(st1, [1], [0.3], ts=[5000], params=params)
    assert st2.alarm[1, 2] and not st2.active[1, 2]
    st3, cleared = reset_latches(st2, [1], [2])
    assert cleared.tolist() == [True] and not st3.alarm[1, 2]
    # A reset is refused while the gas is still there.
    st4, _, _ = run(st3, [1], [1.3], ts=[6000], params=params)
    _, refused = reset_latches(st4, [1], [2])
    assert refused.tolist() == [False]
