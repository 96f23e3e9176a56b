"""detectors.mvgroup: row assembly from flat readings, online learning, events, checkpoints; the registry's
`multivariate:` section; and the SKAB stream path against the direct one."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.skab_protocol.scoring import SKAB_ROOT
from detectors import multivariate as mv
from detectors.mvgroup import (
    CLEAR,
    RAISE,
    GroupSpec,
    MVEvents,
    MVGroups,
    MVState,
    evaluate_mv_groups,
    export_group,
    import_group,
)
from hazardwatch.model import Q_BAD, Q_GOOD, Q_UNCERTAIN
from hazardwatch.registry import HazardSource, RegistryError, load_registry
from tests.conftest import EXAMPLE

_MIN_TS = int(np.iinfo(np.int64).min)
Readings = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _run(groups: MVGroups, readings: Readings, cuts: Sequence[int] = (), state: MVState | None = None,
         ) -> tuple[MVState, list[MVEvents]]:
    """Feed readings cut at `cuts` (reading indices); returns the final state and the events of every call."""
    slot, ts, val, q = readings
    state = state or MVState.empty(groups)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(slot)}), len(slot)]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        state, ev = evaluate_mv_groups(state, groups, slot[lo:hi], ts[lo:hi], val[lo:hi], q[lo:hi], rows=True)
        out.append(ev)
    return state, out


def _per_group(evs: list[MVEvents]) -> list[tuple]:
    """Events as comparable tuples, per group in time order (across groups the call order may differ)."""
    rows = [(int(g), int(t), float(v), float(th), int(s), int(k)) for ev in evs for g, t, v, th, s, k in
            zip(ev.group, ev.ts_ms, ev.value, ev.threshold, ev.since_ms, ev.kind, strict=True)]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def _scored(evs: list[MVEvents]) -> list[tuple]:
    rows = [(int(g), int(t), float(s), bool(a)) for ev in evs if ev.rows is not None
            for g, t, s, a in zip(ev.rows.group, ev.rows.ts_ms, ev.rows.score, ev.rows.alarm, strict=True)]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def _exports(groups: MVGroups, state: MVState) -> list[dict[str, Any]]:
    return [export_group(state, gi) for gi in range(groups.n_groups)]


def _rows_to_readings(x: np.ndarray, ts: np.ndarray, slots: list[int], seed: int) -> Readings:
    """One reading per cell, sensors of each row in a random order."""
    n, k = x.shape
    col = np.argsort(np.random.default_rng(seed).random((n, k)), axis=1).ravel()
    row = np.repeat(np.arange(n), k)
    return (np.asarray(slots, dtype=np.int64)[col], np.asarray(ts, dtype=np.int64)[row], x[row, col],
            np.zeros(n * k, dtype=np.int8))


# ---- row assembly against a per-reading reference -----------------------------------------------------------------

def _reference(slot: np.ndarray, ts: np.ndarray, val: np.ndarray, q: np.ndarray, m: int, cap: int) -> dict:
    """The module docstring's rules, one reading at a time, with dicts."""
    pending: dict[int, dict[int, float]] = {}
    last, rows, late, incomplete = _MIN_TS, [], 0, 0
    for c, t, v, qq in zip(slot.tolist(), ts.tolist(), val.tolist(), q.tolist(), strict=True):
        if qq == Q_BAD or not np.isfinite(v) or c >= m:
            continue
        if t <= last:
            late += 1
            continue
        if t not in pending:
            if len(pending) >= cap and t < min(pending):
                late += 1
                continue
            pending[t] = {}
            if len(pending) > cap:
                del pending[min(pending)]
                incomplete += 1
        pending[t].setdefault(c, v)
        if len(pending[t]) == m:
            row = pending.pop(t)
            rows.append([row[j] for j in range(m)])
            last = t
            for old in [p for p in pending if p < t]:
                del pending[old]
                incomplete += 1
    return {"rows": rows, "last": last, "late": late, "incomplete": incomplete,
            "pending": {t: dict(sorted(r.items())) for t, r in sorted(pending.items())}}


@st.composite
def messy_streams(draw: st.DrawFn, n_slots: int) -> Readings:
    """Readings with missing, repeated, bad, non-finite and out-of-order entries over a few timestamps."""
    n = draw(st.integers(0, 80))
    span = draw(st.integers(1, 25))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ts = np.sort(rng.integers(0, span, n)) * 1000
    ts = ts[np.argsort(np.arange(n) + rng.normal(0, draw(st.floats(0, 6)), n))]  # local disorder
    slot = rng.integers(0, n_slots, n)
    val = np.arange(n, dtype=np.float64)  # unique: shows which reading filled a cell
    val[rng.random(n) < 0.05] = np.nan
    q = rng.choice(np.array([Q_GOOD, Q_UNCERTAIN, Q_BAD], dtype=np.int8), n, p=[0.8, 0.1, 0.1])
    return slot.astype(np.int64), ts.astype(np.int64), val, q


@settings(max_examples=300, deadline=None)
@given(data=st.data(), m=st.integers(1, 3), cap=st.integers(1, 5), cuts=st.lists(st.integers(0, 80), max_size=8))
def test_assembly_matches_the_per_reading_rules_for_any_cuts(data, m, cap, cuts):
    readings = data.draw(messy_streams(m + 1))  # slot m belongs to no group
    cfg = mv.Config(window=1, lag=1)
    groups = MVGroups.build(m + 1, [GroupSpec("g", tuple(range(m)), cfg, train_rows=10**6)], max_pending=cap)
    state, evs = _run(groups, readings, cuts)
    ref = _reference(*readings, m, cap)
    got = export_group(state, 0)
    assert got["train"] == ref["rows"]  # no fit yet: every processed row is in the train buffer, in order
    assert got["rows"] == len(ref["rows"]) and got["last_ts"] == ref["last"]
    assert (got["late"], got["incomplete"]) == (ref["late"], ref["incomplete"])
    pending = {t: {j: v for j, v in enumerate(r) if v is not None}
               for t, r in zip(got["pending_ts"], got["pending_val"], strict=True)}
    assert pending == ref["pending"] and len(pending) <= cap
    assert not any(len(ev) for ev in evs)


def test_large_out_of_order_batches_match_the_reference():
    # Many new timestamps per call exercise the blocked order statistic behind the buffer bound.
    rng = np.random.default_rng(7)
    for cap in (4, 64):
        n = 3000
        ts = (np.sort(rng.integers(0, 1500, n)) * 1000)[np.argsort(np.arange(n) + rng.normal(0, 40, n))]
        readings = (rng.integers(0, 3, n).astype(np.int64), ts.astype(np.int64), np.arange(n, dtype=np.float64),
                    np.zeros(n, dtype=np.int8))
        groups = MVGroups.build(3, [GroupSpec("g", (0, 1, 2), mv.Config(window=1, lag=1), 10**6)], max_pending=cap)
        ref = _reference(*readings, 3, cap)
        for cuts in ([], [700, 701, 2500]):
            got = export_group(_run(groups, readings, cuts)[0], 0)
            assert got["train"] == ref["rows"] and (got["late"], got["incomplete"]) == (ref["late"], ref["incomplete"])
            assert len(got["pending_ts"]) == len(ref["pending"]) <= cap


# ---- whole detector: batch invariance ---------------------------------------------------------------------------

TWO = MVGroups.build(6, [
    GroupSpec("pump", (0, 1, 2), mv.Config(rate_columns=(1,), window=3, lag=2, on_factor=1.1, off_ratio=0.7, hold=2),
              train_rows=20, level=2, source="S1"),
    GroupSpec("fan", (4, 3), mv.Config(window=2, lag=1, on_factor=1.3), train_rows=15, source="S2"),
], max_pending=3)  # slot 5 is in no group


def _process_stream(seed: int, n_rows: int, p_drop: float, p_dup: float, p_bad: float, disorder: float) -> Readings:
    """Rows of 6 sensors at 1 s with faults (level shifts) after the train rows, then transport damage."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, 6))
    x[:, 1] += np.linspace(0, 5, n_rows)
    for _ in range(3):
        a = int(rng.integers(20, max(n_rows, 21)))
        x[a:a + int(rng.integers(2, 15)), int(rng.integers(0, 6))] += rng.choice([-8.0, 8.0])
    slot, ts, val, q = _rows_to_readings(x, 1_000 * (1 + np.arange(n_rows)), list(range(6)), seed)
    keep = rng.random(len(slot)) >= p_drop
    dup = rng.random(len(slot)) < p_dup
    idx = np.sort(np.r_[np.flatnonzero(keep), np.flatnonzero(keep & dup)])
    slot, ts, val, q = slot[idx], ts[idx], val[idx] + np.where(np.r_[False, idx[1:] == idx[:-1]], 0.5, 0), q[idx]
    q = np.where(rng.random(len(q)) < p_bad, Q_BAD, q).astype(np.int8)
    order = np.argsort(np.arange(len(slot)) + rng.normal(0, disorder, len(slot)), kind="stable")
    return slot[order], ts[order], val[order], q[order]


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_rows=st.integers(10, 90), p_drop=st.sampled_from([0.0, 0.02, 0.2]),
       p_dup=st.sampled_from([0.0, 0.05]), p_bad=st.sampled_from([0.0, 0.03]),
       disorder=st.sampled_from([0.0, 2.0, 12.0]), cuts=st.lists(st.integers(0, 600), max_size=12))
def test_any_batch_cuts_give_identical_events_rows_and_state(seed, n_rows, p_drop, p_dup, p_bad, disorder, cuts):
    readings = _process_stream(seed, n_rows, p_drop, p_dup, p_bad, disorder)
    whole_state, whole = _run(TWO, readings)
    cut_state, cut = _run(TWO, readings, cuts)
    assert _per_group(whole) == _per_group(cut)
    assert _scored(whole) == _scored(cut)
    assert _exports(TWO, whole_state) == _exports(TWO, cut_state)


def test_reading_by_reading_equals_one_batch_and_events_are_well_formed():
    readings = _process_stream(3, 90, 0.02, 0.05, 0.03, 2.0)
    whole_state, whole = _run(TWO, readings)
    single_state, single = _run(TWO, readings, list(range(len(readings[0]))))
    assert _per_group(whole) == _per_group(single) and _exports(TWO, whole_state) == _exports(TWO, single_state)
    ev = _per_group(whole)
    assert ev, "the stream has faults: expect alarms"
    for g in (0, 1):
        mine = [e for e in ev if e[0] == g]
        assert [e[5] for e in mine] == [RAISE, CLEAR] * (len(mine) // 2) + [RAISE] * (len(mine) % 2)
        for up, down in itertools.pairwise(mine):
            if up[5] == RAISE:  # a clear carries the since of the raise it closes: the same alert id
                assert down[4] == up[4] == up[1] and down[1] > up[1]
        assert all(e[3] == 1.0 for e in mine) and all(e[2] > 1.0 for e in mine if e[5] == RAISE)


# ---- learning and scoring ------------------------------------------------------------------------------------------

def test_learns_from_the_first_train_rows_then_scores_exactly_like_fit_and_step():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 3))
    x[200:230, 2] += 9.0
    cfg = mv.Config(rate_columns=(0,), window=4, lag=3, hold=3)
    groups = MVGroups.build(4, [GroupSpec("g", (3, 0, 1), cfg, train_rows=120)])  # columns are slots 3, 0, 1
    ts = 5_000 + 1_000 * np.arange(300)
    readings = _rows_to_readings(x, ts, [3, 0, 1], seed=1)
    state, evs = _run(groups, readings, cuts=list(range(7, len(readings[0]), 50)))

    model = mv.fit(x[:120], cfg)
    _, score, alarm = mv.step(model, mv.initial_state(model), x[120:])
    scored = _scored(evs)
    assert [r[1] for r in scored] == ts[120:].tolist()  # nothing scored before the fit; row 120 is the first
    assert [r[2] for r in scored] == score.tolist() and [r[3] for r in scored] == alarm.tolist()
    gs = state.groups[0]
    assert gs.model is not None and np.array_equal(gs.model.center, model.center) and len(gs.train) == 0
    raise_ts = [e[1] for e in _per_group(evs) if e[5] == RAISE]
    assert raise_ts and 200_000 <= raise_ts[0] - 5_000 <= 206_000  # the shift at row 200 raises within a few rows


def test_bad_quality_and_missing_members_never_complete_a_row_and_the_buffer_stays_bounded():
    groups = MVGroups.build(3, [GroupSpec("g", (0, 1), mv.Config(window=1, lag=1), train_rows=50)])
    n = 200
    ts = np.repeat(1_000 * np.arange(n), 2)
    slot = np.tile([0, 1], n)
    q = np.where(slot == 1, Q_BAD, Q_GOOD).astype(np.int8)  # member 1 reports, but its gateway flags it bad
    state, _ = _run(groups, (slot, ts, np.ones(2 * n), q), cuts=[37, 100, 101])
    g = export_group(state, 0)
    assert g["rows"] == 0 and len(g["pending_ts"]) == 64 and g["incomplete"] == n - 64
    assert g["pending_ts"] == (1_000 * np.arange(n - 64, n)).tolist()  # the newest are kept
    # The member recovers: rows complete again, and the old half rows are overtaken, not scored out of order.
    state, _ = _run(groups, (np.array([1, 0, 1]), np.array([(n - 1) * 1_000, n * 1_000, n * 1_000]),
                             np.ones(3), np.zeros(3, dtype=np.int8)), state=state)
    g = export_group(state, 0)
    assert g["rows"] == 2 and g["last_ts"] == n * 1_000 and g["pending_ts"] == []
    assert g["incomplete"] == n - 1  # every half row older than the first completed one
    # A reading for an already processed ts, and NaN values, are dropped.
    state, _ = _run(groups, (np.array([0, 1, 0, 1]), np.array([5_000, 5_000, 999_000, 999_000]),
                             np.array([1.0, 1.0, np.nan, 2.0]), np.zeros(4, dtype=np.int8)), state=state)
    g = export_group(state, 0)
    assert g["late"] == 2 and g["rows"] == 2 and g["pending_ts"] == [999_000]


def test_readings_of_no_group_take_the_fast_exit():
    state = MVState.empty(TWO)
    new, ev = evaluate_mv_groups(state, TWO, np.array([5, 5]), np.array([1, 2]), np.ones(2), np.zeros(2, np.int8))
    assert new is state and len(ev) == 0 and ev.rows is None
    new, ev = evaluate_mv_groups(state, TWO, np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0),
                                 np.empty(0, np.int8), rows=True)
    assert new is state and ev.rows is not None and len(ev.rows) == 0


# ---- checkpoints ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("at", [5, 61, 125, 433])  # while learning (a half row pending), around the fit, scoring
def test_checkpoint_round_trips_through_json_and_resumes_exactly(at):
    readings = _process_stream(21, 90, 0.0, 0.05, 0.03, 2.0)
    full_state, full = _run(TWO, readings, cuts=[at])
    first_state, first = _run(TWO, tuple(a[:at] for a in readings))
    saved = json.loads(json.dumps(_exports(TWO, first_state), allow_nan=False))
    restored = MVState.empty(TWO)
    for gi in TWO.of_source("S2") + TWO.of_source("S1"):
        restored = import_group(restored, gi, saved[gi])
    assert _exports(TWO, restored) == _exports(TWO, first_state)
    rest_state, rest = _run(TWO, tuple(a[at:] for a in readings), state=restored)
    assert _per_group(first + rest) == _per_group(full) and _scored(first + rest) == _scored(full)
    assert _exports(TWO, rest_state) == _exports(TWO, full_state)


def test_checkpoint_of_another_layout_is_ignored():
    readings = _process_stream(2, 60, 0.0, 0.0, 0.0, 0.0)
    state, _ = _run(TWO, readings)
    saved = export_group(state, 0)
    other = MVGroups.build(6, [GroupSpec("pump", (0, 1, 2), mv.Config(window=4), train_rows=20)])
    fresh = MVState.empty(other)
    assert import_group(fresh, 0, saved) is fresh
    assert import_group(fresh, 0, None) is fresh


def test_build_rejects_inconsistent_groups():
    cases = [
        ([GroupSpec("a", (0, 1)), GroupSpec("a", (2, 3))], "duplicate"),
        ([GroupSpec("a", (0, 1)), GroupSpec("b", (1, 2))], "already belongs"),
        ([GroupSpec("a", (0, 9))], "out of range"),
        ([GroupSpec("a", (0, 0))], "without repeats"),
        ([GroupSpec("a", (0, 1), mv.Config(rate_columns=(2,)))], "rate_columns"),
        ([GroupSpec("a", (0, 1), mv.Config(window=5, lag=20), train_rows=30)], "train_rows 30 < 34"),
        ([GroupSpec("a", (0, 1), level=0)], "level"),
    ]
    for specs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            MVGroups.build(4, specs)


# ---- registry ------------------------------------------------------------------------------------------------------

def _write(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    mutate({s["id"]: s for s in doc["hazard_sources"]})
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return p


def _problems(tmp_path: Path, mutate) -> list[str]:
    with pytest.raises(RegistryError) as exc:
        load_registry(_write(tmp_path, mutate))
    return exc.value.problems


def test_registry_multivariate_groups_load_with_defaults_and_build(tmp_path):
    def mutate(src):
        src["S01"]["multivariate"] = [
            {"id": "S01-T01-MV", "sensors": ["S01-T01-LT", "S01-T01-TT", "S01-T01-PT", "S01-T01-FT"],
             "rate_sensors": ["S01-T01-TT"], "lag": 20, "level": 2},
            {"id": "S01-T02-MV", "sensors": ["S01-T02-PT", "S01-T02-FT"]},
        ]
        src["S02"]["multivariate"] = [{"id": "S02-T01-MV", "sensors": ["S02-T01-LT", "S02-T01-PT"],
                                       "train_rows": 50, "on_factor": 3, "hold": 4}]

    reg = load_registry(_write(tmp_path, mutate))
    a, b = reg.sources["S01"].multivariate
    assert (a.source, a.rate_sensors, a.lag, a.level, a.train_rows, a.window) == ("S01", ("S01-T01-TT",), 20, 2, 400, 5)
    assert (b.on_factor, b.off_ratio, b.hold, b.feature_quantile, b.level) == (2.0, 0.8, 1, 0.99, 3)
    (c,) = reg.sources["S02"].multivariate
    assert (c.train_rows, c.on_factor, c.hold) == (50, 3.0, 4)
    assert reg.sources["S03"].multivariate == ()

    groups = MVGroups.from_registry(reg)
    assert groups.ids == ("S01-T01-MV", "S01-T02-MV", "S02-T01-MV") and groups.of_source("S01") == [0, 1]
    assert groups.members[0].tolist() == [reg.slot(s) for s in a.sensors]
    assert groups.configs[0].rate_columns == (1,) and groups.configs[0].lag == 20 and groups.levels[0] == 2
    slot = reg.slot("S01-T02-FT")
    assert groups.group_of_slot[slot] == 1 and groups.column_of_slot[slot] == 1
    assert (groups.group_of_slot >= 0).sum() == 8


def test_registry_multivariate_errors_name_the_line_key_and_fix(tmp_path):
    def mutate(src):
        src["S01"]["multivariate"] = [
            {"id": "MV-A", "sensors": ["S01-T01-LT", "S02-T01-LT"]},  # another source's sensor
            {"id": "MV-B", "sensors": ["S01-T01-TT"]},  # one sensor
            {"id": "MV-C", "sensors": ["S01-T01-PT", "S01-T01-PT"]},  # listed twice
            {"id": "MV-D", "sensors": ["S01-T02-LT", "S01-T02-TT"], "rate_sensors": ["S01-T02-PT"]},
            {"id": "MV-E", "sensors": ["S01-T03-LT", "S01-T03-TT"], "train_rows": 10},
            {"id": "MV-F", "sensors": ["S01-T03-PT", "S01-T03-FT"], "train_rows": 60, "lag": 50, "window": 5},
            {"id": "MV-G", "sensors": ["S01-T04-LT", "S01-T04-TT"], "level": 5, "trian_rows": 400},
            {"sensors": ["S01-T04-PT", "S01-T04-FT"]},  # no id
            {"id": "MV-H", "sensors": ["S01-T02-LT", "S01-T02-FT"]},  # valid: MV-D was refused, so its sensors are free
            {"id": "MV-I", "sensors": ["S01-T01-FT", "S01-T02-FT"], "feature_quantile": 1.5, "window": 0},
        ]
        src["S02"]["multivariate"] = [{"id": "MV-D", "sensors": ["S02-T01-LT", "S02-T01-PT"]}]

    problems = _problems(tmp_path, mutate)
    text = "\n".join(problems)
    assert all(p.startswith("reg.yaml:") and int(p.split(":")[1].split(" ")[0]) > 1 for p in problems), problems
    w = "hazard_sources[S01].multivariate"
    assert f"{w}[MV-A].sensors: ['S02-T01-LT'] are not sensors of source S01; use its own sensor ids" in text
    assert f"{w}[MV-B].sensors: has 1 sensor(s); a multivariate group needs at least 2" in text
    assert f"{w}[MV-C].sensors: ['S01-T01-PT'] listed more than once; list each sensor once" in text
    assert f"{w}[MV-D].rate_sensors: ['S01-T02-PT'] are not in this group's sensors" in text
    assert f"{w}[MV-E].train_rows: is 10; learn from at least 50 rows of normal operation" in text
    assert f"{w}[MV-F].train_rows: 60 rows are too few for window 5 and lag 50; use at least lag + window + 9 = 64" \
        in text
    assert f"{w}[MV-G].trian_rows: unknown key; use ['id', 'sensors'" in text
    assert f"{w}[MV-G].level: 5 is not a warning level" in text
    assert f"{w}[7].id: missing; add `id:`" in text
    assert f"{w}[MV-I].sensors: ['S01-T02-FT'] already in group MV-H; a sensor feeds one multivariate group" in text
    assert f"{w}[MV-I].feature_quantile: is 1.5; use a quantile in (0, 1]" in text
    assert f"{w}[MV-I].window: is 0; it counts rows and must be >= 1" in text
    assert "hazard_sources[S02].multivariate[MV-D].id: duplicate multivariate group id 'MV-D'" in text
    assert len(problems) == 13, problems


def test_registry_multivariate_ids_are_unique_city_wide_and_the_section_must_be_a_list(tmp_path):
    def mutate(src):
        src["S01"]["multivariate"] = [{"id": "MV", "sensors": ["S01-T01-LT", "S01-T01-TT"]}]
        src["S02"]["multivariate"] = [{"id": "MV", "sensors": ["S02-T01-LT", "S02-T01-PT"], "on_factor": "high"}]
        src["S03"]["multivariate"] = {"id": "x"}

    text = "\n".join(_problems(tmp_path, mutate))
    assert "hazard_sources[S02].multivariate[MV].id: duplicate multivariate group id 'MV'; ids must be unique" in text
    assert "hazard_sources[S02].multivariate[MV].on_factor: is 'high'; it must be a float" in text
    assert "hazard_sources[S03].multivariate: must be a list of groups" in text


def test_hazard_source_still_constructs_positionally_without_groups():
    src = HazardSource("S", "E", "tank_farm", "z", "e", 0.0, 0.0, 2, "declared", (), ("a",), ())
    assert src.multivariate == () and src.voting == ()


# ---- SKAB: the engine path gives the direct path's predictions -------------------------------------------------------

@pytest.mark.skipif(not SKAB_ROOT.is_dir(), reason=f"SKAB data not found at {SKAB_ROOT}")
def test_skab_stream_path_predicts_exactly_like_the_direct_path():
    from bench.skab_eval import SKAB_CONFIG, run_detector, run_stream
    from bench.skab_protocol.scoring import file_names, load_file

    data = [load_file(n) for n in file_names()]
    assert len(data) == 34
    direct = run_detector(data, SKAB_CONFIG, batch=60)
    # All 34 files as bench/skab_eval.py runs them; small batches (most rows split over two calls) on four.
    for files, batch in ((data, 60), (data[::9], 7)):
        stream = run_stream(files, SKAB_CONFIG, batch=batch)
        assert list(stream) == [f.name for f in files]
        for name, pred in stream.items():
            assert np.array_equal(pred, direct[name]), name  # no NaN: every test row was scored


@pytest.mark.skipif(not SKAB_ROOT.is_dir(), reason=f"SKAB data not found at {SKAB_ROOT}")
def test_skab_through_the_whole_engine_predicts_exactly_like_the_direct_path():
    """The benchmark's headline row comes from DetectorEngine records: raise and clear of the `multivariate` rule."""
    from bench.skab_eval import SKAB_CONFIG, run_detector, run_engine
    from bench.skab_protocol.scoring import file_names, load_file

    data = [load_file(n) for n in file_names()]
    direct = run_detector(data, SKAB_CONFIG, batch=60)
    engine = run_engine(data, SKAB_CONFIG, batch=60)
    assert list(engine) == [f.name for f in data]
    for name, pred in engine.items():
        assert np.array_equal(pred, direct[name]), name


def test_engine_raises_a_bilingual_multivariate_alert_and_resumes_from_a_checkpoint():
    from alerts.records import alert_record
    from detectors.engine import DetectorEngine
    from hazardwatch.registry import District, Enterprise, MultivariateGroup, Person, Registry, Sensor

    ids = ("P1-FLOW", "P1-PRESS", "P1-VIB")
    sensors = {sid: Sensor(sid, "P1", "process", "", 1.0, (-1e9, 1e9), (), sid, sid, i) for i, sid in enumerate(ids)}
    group = MultivariateGroup("P1-MV", "P1", ids, train_rows=200)
    src = HazardSource("P1", "E1", "tank_farm", "泵组", "pump set", 0.0, 0.0, 3, "declared",
                       (Person("p", "p", "+86-0"),), ids, (), (group,))
    reg = Registry(Path("t"), "市", "city", {"D1": District("D1", "区", "district")},
                   {"E1": Enterprise("E1", "D1", "企业", "enterprise", "e1")}, {"P1": src}, sensors)
    t0 = 1_800_000_000_000
    rng = np.random.default_rng(11)
    t0 = 1_800_000_000_000
    x = rng.normal(0.0, 1.0, (600, 3))
    x[400:450, 1] += 12.0  # the pressure steps away from normal for 50 s
    slot = np.tile(np.arange(3), 600)
    ts = np.repeat(t0 + np.arange(600) * 1000, 3)
    val, q = x.ravel(), np.zeros(1800, dtype=np.int8)
    whole = DetectorEngine(reg).process_arrays(slot, ts, val, q)
    mv_recs = [r for r in whole if r["rule"] == "multivariate"]
    assert [r["state"] for r in mv_recs][:2] == ["raise", "clear"]
    assert (mv_recs[0]["ts_ms"] - t0) // 1000 >= 400 and mv_recs[1]["alert_id"] == mv_recs[0]["alert_id"]
    text = alert_record(mv_recs[0], reg)
    assert "多参数综合异常" in text["text_zh"] and "multivariate deviation" in text["text_en"]
    # A worker restarted after row 300 (model learned, state checkpointed) gives the same records.
    first = DetectorEngine(reg)
    first.process_arrays(slot[:900], ts[:900], val[:900], q[:900])
    saved = json.loads(json.dumps(first.export_source("P1")))
    second = DetectorEngine(reg)
    second.import_source("P1", saved)
    rest = [r["id"] for r in second.process_arrays(slot[900:], ts[900:], val[900:], q[900:])]
    assert rest == [r["id"] for r in whole if r["ts_ms"] >= t0 + 300_000]
