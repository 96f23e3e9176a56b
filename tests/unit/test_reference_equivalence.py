"""The vectorised detector engine and the per-reading reference (bench/reference_detectors.py) agree.

Random streams over a handful of example-registry sensors (tank level with 4 limits, rate, trend and a related
flow; latching gas heads; methane; oxygen with a low limit; a tailings piezometer), with bad-quality, late and
stale readings, clock ticks, and day-long gaps (trend re-basing), cut into random batches. Both sides must
emit the same events (sensor, rule, limit, state, ts_ms, since_ms) with the same values, and end in the same
state. Voting and the inverse-velocity failure forecast are judged per batch, not per reading, and are not part
of the reference.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.reference_detectors import ReferenceDetectors, RelatedAsof
from detectors.engine import DetectorEngine
from hazardwatch.model import Q_BAD, Q_GOOD, Q_UNCERTAIN
from hazardwatch.registry import LIMIT_NAMES, Registry

T0 = 1_800_000_000_000
DAY_PLUS_MS = 90_000_000  # a gap longer than the trend's one-day re-base interval
SENSORS = ["S01-T03-LT", "S01-T03-FT", "S01-GC01", "S10-F1-CH4-T1", "S04-OX01", "S06-GT01", "S08-PZ01"]
PER_READING_RULES = {"limit", "rate", "trend", "drift", "out_of_range", "bad_quality", "stuck", "offline"}
RESEND = -1
LATENESS = [0] * 12 + [3_000, 20_000, 400_000, RESEND]
ACTIONS = ["same"] * 10 + ["walk"] * 3 + ["ramp_up", "ramp_down", "freeze", "freeze", "jump"]

Reading = tuple[str, int, float, int]

step = st.tuples(
    st.integers(0, len(SENSORS) - 1),
    # ms since the previous reading; round values make exact boundaries (delays, stuck_s) happen
    st.one_of(st.sampled_from([1_000, 5_000, 10_000, 20_000]), st.integers(1, 40_000)),
    st.sampled_from(ACTIONS),  # change of the sensor's regime (or one jump)
    st.floats(-1.0, 1.0, allow_nan=False),  # noise / jump target
    st.sampled_from([Q_GOOD] * 12 + [Q_UNCERTAIN, Q_BAD, Q_BAD]),
    st.sampled_from(LATENESS),  # this reading arrives late by (RESEND: the sensor's previous timestamp again)
    st.sampled_from([False] * 60 + [True]),  # a day-long silence before it
)
streams = st.lists(step, min_size=1, max_size=250)
cut_lists = st.lists(st.integers(1, 120), min_size=1, max_size=8)
# Clock tick after a batch, this long after its newest reading (30 s = 3 x the 10 s period: the offline boundary).
tick_lists = st.lists(st.sampled_from([None, None, 15_000, 30_000, 120_000]), min_size=1, max_size=8)


def make_stream(reg: Registry, steps: list[tuple[int, int, str, float, int, int, bool]],
                cadence_ms: int | None = None) -> list[Reading]:
    """Readings in arrival order. Each sensor follows a regime (walk, ramp, frozen) so that limits, trends,
    drifts and stuck gauges actually happen; values may leave the instrument range. cadence_ms: every sensor
    reports at that fixed interval (round-robin), so delays and stuck_s are reached exactly."""
    u = dict.fromkeys(SENSORS, 0.5)
    regime = dict.fromkeys(SENSORS, "walk")
    clock = T0
    previous: dict[str, int] = {}
    out: list[Reading] = []
    for k, dt, action, x, quality, late, gap in steps:
        sid = SENSORS[k]
        if cadence_ms is not None:
            # Round-robin, one round per cadence: each sensor reports exactly every cadence_ms.
            sid, dt = SENSORS[len(out) % len(SENSORS)], 0 if len(out) % len(SENSORS) else cadence_ms
        clock += dt + (DAY_PLUS_MS if gap else 0)
        ts = previous.get(sid, clock) if late == RESEND else clock - late
        previous[sid] = ts
        if action == "jump":
            u[sid] = -0.15 + 1.3 * (x + 1) / 2
        elif action != "same":
            regime[sid] = action
        if action != "jump":
            if regime[sid] == "walk":
                u[sid] += 0.03 * x
            elif regime[sid] == "ramp_up":
                u[sid] += 0.002 * dt / 10_000 + 0.0005 * x
            elif regime[sid] == "ramp_down":
                u[sid] -= 0.002 * dt / 10_000 + 0.0005 * x
        u[sid] = min(max(u[sid], -0.15), 1.15)
        lo, hi = reg.sensors[sid].range
        out.append((sid, ts, lo + u[sid] * (hi - lo), quality))
    return out


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["sensor"], r["rule"], r["limit"], r["state"], r["ts_ms"], r["since_ms"])


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9)


def assert_same_events(engine_events: list[dict[str, Any]], ref_events: list[dict[str, Any]]) -> None:
    eng = {_key(r): r for r in engine_events if r["rule"] in PER_READING_RULES}
    ref = {_key(r): r for r in ref_events}
    assert len(eng) == len([r for r in engine_events if r["rule"] in PER_READING_RULES]), "duplicate engine events"
    assert len(ref) == len(ref_events), "duplicate reference events"
    assert sorted(eng) == sorted(ref), (f"engine only: {sorted(set(eng) - set(ref))[:5]}, "
                                        f"reference only: {sorted(set(ref) - set(eng))[:5]}")
    for key, e in eng.items():
        r = ref[key]
        for f in ("value", "threshold", "forecast_s", "slope_per_min"):
            if f in r:
                assert _close(e[f], r[f]), (key, f, e[f], r[f])


def assert_same_state(engine: DetectorEngine, ref: ReferenceDetectors, sensors: list[str]) -> None:
    for sid in sensors:
        s = engine._slot[sid]
        mine = ref.export(s)
        for group in ("limits", "rate", "trend", "drift", "health", "last"):
            obj = engine.state[group]
            for f in fields(obj):
                name = f"{group}.{f.name}"
                theirs = getattr(obj, f.name)[s]
                if np.asarray(theirs).dtype.kind == "f":
                    np.testing.assert_allclose(theirs, mine[name], rtol=1e-7, atol=1e-6, err_msg=f"{sid} {name}")
                else:
                    np.testing.assert_array_equal(theirs, mine[name], err_msg=f"{sid} {name}")


def play(reg: Registry, rows: list[Reading], cuts: list[int], ticks: list[int | None],
         related_asof: RelatedAsof = "history") -> tuple[DetectorEngine, list[dict[str, Any]]]:
    """Feed both in the same batches with the same ticks; check events and final state; return the engine and
    the reference's events."""
    engine, ref = DetectorEngine(reg), ReferenceDetectors(reg, related_asof=related_asof)
    sources = sorted({reg.sensors[s].source for s in SENSORS})
    ev_e: list[dict[str, Any]] = []
    ev_r: list[dict[str, Any]] = []
    i = k = 0
    while i < len(rows):
        j = min(len(rows), i + cuts[k % len(cuts)])
        chunk = rows[i:j]
        slot = np.array([engine._slot[r[0]] for r in chunk], dtype=np.int64)
        ts = np.array([r[1] for r in chunk], dtype=np.int64)
        val = np.array([r[2] for r in chunk], dtype=np.float64)
        q = np.array([r[3] for r in chunk], dtype=np.int8)
        ev_e += engine.process_arrays(slot, ts, val, q)
        ev_r += ref.process_arrays(slot, ts, val, q)
        if ticks[k % len(ticks)] is not None:
            # Sensors silent for 3 x their period go offline; their next reading of any quality clears it.
            now = int(ts.max()) + int(ticks[k % len(ticks)] or 0)
            ev_e += engine.tick(now, sources)
            ev_r += ref.tick(now, sources)
        i, k = j, k + 1
    assert_same_events(ev_e, ev_r)
    assert_same_state(engine, ref, SENSORS)
    return engine, ev_r


@pytest.fixture(scope="session")
def delayed_registry(registry: Registry) -> Registry:
    """The example registry with on/off delays on some limits (the example file has none), one of them on a
    latching gas alarm."""
    delays = {("S01-T03-LT", "H"): (30.0, 20.0), ("S01-T03-LT", "HH"): (10.0, 0.0),
              ("S01-T03-LT", "L"): (0.0, 60.0), ("S01-GC01", "H"): (15.0, 0.0), ("S01-GC01", "HH"): (0.0, 10.0),
              ("S10-F1-CH4-T1", "HH"): (5.0, 5.0), ("S04-OX01", "L"): (20.0, 40.0)}
    sensors = dict(registry.sensors)
    for sid in {s for s, _ in delays}:
        sensors[sid] = replace(sensors[sid], limits=tuple(
            replace(lim, on_delay_s=delays[sid, lim.name][0], off_delay_s=delays[sid, lim.name][1])
            if (sid, lim.name) in delays else lim for lim in sensors[sid].limits))
    reg = Registry(registry.path, registry.city_zh, registry.city_en, registry.districts, registry.enterprises,
                   registry.sources, sensors)
    assert reg.limit_on_delay_ms[reg.sensors["S01-T03-LT"].slot, LIMIT_NAMES.index("H")] == 30_000
    return reg


# The engine looks up the related sensor's value at or before each reading's time among the batch's evaluated
# readings and a ring of its last evaluated ones, i.e. the reference's "history" lookup.
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, cut_lists, tick_lists)
def test_engine_matches_the_per_reading_reference(registry: Registry, steps: list[Any], cuts: list[int],
                                                  ticks: list[int | None]) -> None:
    play(registry, make_stream(registry, steps), cuts, ticks)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, cut_lists, tick_lists)
def test_engine_matches_the_reference_with_limit_delays(delayed_registry: Registry, steps: list[Any],
                                                        cuts: list[int], ticks: list[int | None]) -> None:
    play(delayed_registry, make_stream(delayed_registry, steps), cuts, ticks)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, cut_lists, tick_lists, st.sampled_from([5_000, 10_000]))
def test_engine_matches_the_reference_on_regular_reporting(delayed_registry: Registry, steps: list[Any],
                                                           cuts: list[int], ticks: list[int | None],
                                                           cadence_ms: int) -> None:
    play(delayed_registry, make_stream(delayed_registry, steps, cadence_ms), cuts, ticks)


@pytest.mark.parametrize("reg_name", ["registry", "delayed_registry"])
def test_long_seeded_stream_exercises_every_rule(reg_name: str, request: pytest.FixtureRequest) -> None:
    """Guards against a vacuous comparison: a long random stream must raise (and mostly clear) every rule."""
    reg: Registry = request.getfixturevalue(reg_name)
    rng = np.random.default_rng(7)
    n = 6000
    steps = [(int(rng.integers(len(SENSORS))), int(rng.choice([1_000, 5_000, 10_000, rng.integers(1, 40_000)])),
              str(rng.choice(ACTIONS)), float(rng.uniform(-1, 1)),
              int(rng.choice([Q_GOOD] * 12 + [Q_UNCERTAIN, Q_BAD, Q_BAD])), int(rng.choice(LATENESS)),
              bool(rng.random() < 1 / 500)) for _ in range(n)]
    rows = make_stream(reg, steps)
    cuts = [int(c) for c in rng.integers(1, 400, 20)]
    engine, events = play(reg, rows, cuts, [120_000, None, 30_000])
    seen = {(r["rule"], r["state"]) for r in events}
    for rule in ("limit", "rate", "trend", "drift", "out_of_range", "bad_quality", "stuck", "offline"):
        assert (rule, "raise") in seen, rule
    assert {("limit", "rtn"), ("limit", "realarm"), ("limit", "clear")} <= seen
    assert engine.state["trend"].ref_ms[engine._slot["S01-T03-LT"]] > T0 + DAY_PLUS_MS  # re-based at least once


def _stuck(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return sorted((r["sensor"], r["state"], r["ts_ms"]) for r in events if r["rule"] == "stuck")


def _run(obj: DetectorEngine | ReferenceDetectors, batches: list[list[Reading]]) -> list[tuple[str, str, int]]:
    out: list[dict[str, Any]] = []
    reg = obj.reg
    for b in batches:
        out += obj.process_arrays(np.array([reg.sensors[s].slot for s, *_ in b], dtype=np.int64),
                                  np.array([r[1] for r in b], dtype=np.int64), np.array([r[2] for r in b]),
                                  np.array([r[3] for r in b], dtype=np.int8))
    return _stuck(out)


S = 1000
# Level gauge flat at 50 % from t=0; its inflow meter reads 0 (stopped) at 300 s and 600 m3/h from 500 s on. At
# 400 s the flow at or before that time is 0: nothing is moving, the gauge is not stuck.
FUTURE_FLOW = [("S01-T03-LT", T0, 50.0, Q_GOOD), ("S01-T03-FT", T0 + 300 * S, 0.0, Q_GOOD),
               ("S01-T03-FT", T0 + 500 * S, 600.0, Q_GOOD), ("S01-T03-LT", T0 + 400 * S, 50.0, Q_GOOD)]
# The flow meter's reading for 150 s (600 m3/h) arrives after a bad-quality one stamped 200 s. It is a good,
# evaluated value at or before 400 s: product is moving and the gauge has been flat for 400 s -> stuck.
LATE_GOOD_FLOW = [("S01-T03-LT", T0, 50.0, Q_GOOD), ("S01-T03-FT", T0 + 200 * S, 0.0, Q_BAD),
                  ("S01-T03-FT", T0 + 150 * S, 600.0, Q_GOOD), ("S01-T03-LT", T0 + 400 * S, 50.0, Q_GOOD)]


STUCK_CASES = [(FUTURE_FLOW, []), (LATE_GOOD_FLOW, [("S01-T03-LT", "raise", T0 + 400 * S)])]


@pytest.mark.parametrize(("rows", "expected"), STUCK_CASES)
def test_reference_stuck_uses_the_related_value_at_or_before_the_reading(
        registry: Registry, rows: list[Reading], expected: list[tuple[str, str, int]]) -> None:
    for batches in ([rows], [rows[:3], rows[3:]]):
        assert _run(ReferenceDetectors(registry), batches) == expected


@pytest.mark.parametrize(("rows", "expected"), STUCK_CASES)
def test_engine_stuck_uses_the_related_value_at_or_before_the_reading(
        registry: Registry, rows: list[Reading], expected: list[tuple[str, str, int]]) -> None:
    for batches in ([rows], [rows[:3], rows[3:]]):
        assert _run(DetectorEngine(registry), batches) == expected, [len(b) for b in batches]


def test_exact_boundaries_agree(delayed_registry: Registry) -> None:
    """Regular 10 s reporting lands exactly on stuck_s, the on/off delays and 3 x period: both sides must treat
    "held for exactly the delay" the same way (>=), and offline only strictly after 3 x period."""
    rows: list[Reading] = []
    for k in range(0, 80):
        t = T0 + k * 10 * S
        # Gauge flat at 50 % for 400 s (stuck at exactly 300 s while 600 m3/h flows in), then steps to 86 % (above
        # H 85, delay 30 s) for 60 s, then 82 % (below the reset 83, off delay 20 s).
        level = 50.0 if k <= 40 else (86.0 if k <= 46 else 82.0)
        rows += [("S01-T03-FT", t, 600.0 + k % 3, Q_GOOD), ("S01-T03-LT", t, level, Q_GOOD)]
    # Batches end on a complete round, so a tick 30 s after the batch is exactly 3 x period for both sensors.
    _, events = play(delayed_registry, rows, [18, 40, 102], [None, 30 * S, 31 * S])
    at: dict[tuple[str, str, str], int] = {}
    for r in events:
        if r["sensor"] == "S01-T03-LT":
            at.setdefault((r["rule"], r["limit"], r["state"]), (r["ts_ms"] - T0) // S)  # first occurrence
    assert at[("stuck", "", "raise")] == 300
    assert at[("limit", "H", "raise")] == 410 + 30 and at[("limit", "H", "clear")] == 470 + 20
    offline = [(r["sensor"], (r["ts_ms"] - T0) // S) for r in events if r["rule"] == "offline"]
    assert sorted(offline) == [("S01-T03-FT", 790 + 31), ("S01-T03-LT", 790 + 31)]  # not at 280 + 30
