from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.skab_protocol.scoring import SKAB_ROOT
from detectors import multivariate as mv


def _series(seed: int, n_train: int, n_test: int, n_cols: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Noise plus a drifting column 0, with a level shift and a NaN row somewhere in the test part."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_train + n_test, n_cols))
    x[:, 0] += np.linspace(0, 20, len(x))
    a = n_train + int(rng.integers(0, max(n_test - 1, 1)))
    x[a:a + int(rng.integers(1, 80)), 1:] += rng.normal(0, 6)
    if n_test > 3:
        x[n_train + int(rng.integers(0, n_test)), int(rng.integers(0, n_cols))] = np.nan
    return x[:n_train], x[n_train:]


configs = st.builds(
    mv.Config,
    rate_columns=st.sampled_from([(), (0,), (0, 2)]),
    window=st.integers(1, 9),
    lag=st.integers(1, 12),
    on_factor=st.floats(0.5, 3.0),
    off_ratio=st.floats(0.2, 1.2),
    hold=st.integers(1, 6),
)


def _run_in_batches(model: mv.Model, x: np.ndarray, cuts: list[int]):
    state = mv.initial_state(model)
    scores, alarms = [], []
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(x)), len(x)]
    for lo, hi in itertools.pairwise(bounds):
        state, s, a = mv.step(model, state, x[lo:hi])
        scores.append(s)
        alarms.append(a)
    return state, np.concatenate(scores), np.concatenate(alarms)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_test=st.integers(1, 300), cfg=configs,
       cuts=st.lists(st.integers(0, 300), max_size=12))
def test_any_batch_split_gives_identical_outputs(seed, n_test, cfg, cuts):
    train, test = _series(seed, 120, n_test)
    model = mv.fit(train, cfg)
    whole = _run_in_batches(model, test, [])
    split = _run_in_batches(model, test, cuts)
    one_by_one = _run_in_batches(model, test, list(range(n_test)))
    for other in (split, one_by_one):
        assert np.array_equal(whole[1], other[1], equal_nan=True)  # bit for bit, not approximately
        assert np.array_equal(whole[2], other[2])
        for f in ("rate_tail", "u_tail", "on", "below"):
            assert np.array_equal(getattr(whole[0], f), getattr(other[0], f), equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_test=st.integers(2, 200), cfg=configs, data=st.data())
def test_no_look_ahead(seed, n_test, cfg, data):
    train, test = _series(seed, 120, n_test)
    t = data.draw(st.integers(0, n_test - 2))
    changed = test.copy()
    changed[t + 1:] = np.random.default_rng(seed + 1).normal(50, 30, size=changed[t + 1:].shape)
    model = mv.fit(train, cfg)
    _, s1, a1 = mv.step(model, mv.initial_state(model), test)
    _, s2, a2 = mv.step(model, mv.initial_state(model), changed)
    assert np.array_equal(s1[:t + 1], s2[:t + 1], equal_nan=True)
    assert np.array_equal(a1[:t + 1], a2[:t + 1])


def test_raises_on_a_shift_and_clears_after_it_with_hysteresis_and_hold():
    rng = np.random.default_rng(7)
    train = rng.normal(size=(200, 3))
    test = rng.normal(size=(300, 3)) * 0.2
    test[100:200, 1] += 30
    model = mv.fit(train, mv.Config(window=3, lag=2, on_factor=1.5, off_ratio=0.5, hold=4))
    _, score, alarm = mv.step(model, mv.initial_state(model), test)
    raises = np.flatnonzero(np.diff(alarm.astype(int)) == 1) + 1
    clears = np.flatnonzero(np.diff(alarm.astype(int)) == -1) + 1
    assert raises.tolist() == [100]  # the first row of the shift already lifts the 3-row mean far enough
    assert len(clears) == 1
    # Cleared on the 4th (= hold) consecutive row below the clear level, not earlier.
    c = clears[0]
    assert np.all(score[c - 3:c + 1] < 0.5) and score[c - 4] >= 0.5
    assert score[:100].max() < 1


def test_fit_rejects_too_few_rows_and_step_rejects_wrong_width():
    with pytest.raises(ValueError):
        mv.fit(np.zeros((10, 2)), mv.Config(window=5, lag=5))
    model = mv.fit(np.random.default_rng(0).normal(size=(50, 2)))
    with pytest.raises(ValueError):
        mv.step(model, mv.initial_state(model), np.zeros((3, 3)))
    state, s, a = mv.step(model, mv.initial_state(model), np.zeros((0, 2)))
    assert len(s) == len(a) == 0 and state is mv.initial_state(model)


@pytest.mark.skipif(not SKAB_ROOT.is_dir(), reason=f"SKAB data not found at {SKAB_ROOT}")
def test_skab_result_is_the_reported_one_and_beats_the_published_table():
    from bench.skab_eval import SKAB_CONFIG, run_detector
    from bench.skab_protocol.scoring import load_benchmark, score_predictions

    data = load_benchmark()
    b, _ = score_predictions(data, run_detector(data, SKAB_CONFIG, batch=37))
    assert (b.f1, b.far, b.mar) == (0.81, 5.49, 29.4)
    assert b.nab == {"Standard": 40.96, "LowFP": 37.21, "LowFN": 44.63}
    assert (b.missed, b.false_alarms) == (61, 68)
    # Best published: F1 0.78 (Conv-AE, MSET); NAB Standard 32.42 (MSCRED, which thresholds on test errors).
    assert b.f1 > 0.78 and b.nab["Standard"] > 32.42
