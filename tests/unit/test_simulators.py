"""Physics sanity of the simulators: each model does what its physics says, faults do what they say, and the
whole city's normal day is produced quickly and deterministically."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest

from hazardwatch.registry import Registry
from simulators import coalmine, faults, gas, normal, tailings, tank
from simulators.sampling import red_noise, scan_times
from simulators.scenarios import SCENARIOS
from simulators.score import annunciations, score
from simulators.trace import Q_BAD, Q_GOOD, Expected, Fault, Scenario, Trace

HOUR = 3600.0


# ---- tanks -------------------------------------------------------------------------------------------------

def test_level_slope_matches_inflow_over_the_cross_section():
    rng = np.random.default_rng(3)
    spec = tank.farm_spec("S01")
    fill = [tank.Transfer(0, 600.0, 5 * HOUR, 800.0, "receipt")]
    truth = tank.simulate_farm(rng, spec, 1, 4 * HOUR, 2.0, np.array([40.0]), fill)
    steady = (truth.t_s > HOUR) & (truth.t_s < 3 * HOUR)
    slope_pct_per_h = np.polyfit(truth.t_s[steady] / HOUR, truth.level_pct[0, steady], 1)[0]
    inflow = truth.inflow_m3h[0, steady].mean()
    # Level % per hour x m3 per % = m3/h; thermal expansion of the product adds well under 1 %.
    assert slope_pct_per_h * spec.m3_per_pct() == pytest.approx(inflow, rel=0.01)
    # The same from what the instruments report: the level gauge's slope and the flow meter's mean.
    ids = tank.TankSensors("S01-T01", lt="LT", ft="FT")
    tr = {t.sensor: t for t in tank.farm_traces(rng, truth, [ids], spec, 4 * HOUR, {"LT": 10.0, "FT": 10.0})}
    m = (tr["LT"].t_s > HOUR) & (tr["LT"].t_s < 3 * HOUR)
    gauge_slope = np.polyfit(tr["LT"].t_s[m] / HOUR, tr["LT"].value[m], 1)[0]
    assert gauge_slope * spec.m3_per_pct() == pytest.approx(tr["FT"].value[m].mean(), rel=0.02)
    assert np.array_equal(tr["LT"].t_s, tr["FT"].t_s)  # one gateway scan stamps both


def test_normal_farm_stays_inside_the_operating_window_and_pressure_inside_the_breather_valve():
    rng = np.random.default_rng(11)
    spec = tank.farm_spec("S01")
    truth = tank.simulate_farm(rng, spec, 10, 24 * HOUR, 0.0)
    assert truth.level_pct.min() > 12.0 and truth.level_pct.max() < 83.0  # between L reset and H reset
    assert any(tr.kind == "receipt" for tr in truth.transfers)
    assert any(tr.kind == "delivery" for tr in truth.transfers)
    p = spec.product
    assert truth.pressure_kpa.max() <= p.valve_kpa * 1.16 and truth.pressure_kpa.min() >= -p.vacuum_kpa * 1.16
    # Product temperature: a big tank damps the day's 9 °C air swing to a few tenths (plus its slow approach to
    # the season's mean); only a receipt of warmer product moves it more.
    received = {tr.tank for tr in truth.transfers if tr.kind == "receipt"}
    quiet = [i for i in range(10) if i not in received]
    assert np.ptp(truth.temp_c[quiet], axis=1).max() < 1.5
    # A pipeline feeds one tank at a time.
    receipts = sorted((tr.start_s, tr.end_s) for tr in truth.transfers if tr.kind == "receipt")
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(receipts))


# ---- gas ---------------------------------------------------------------------------------------------------

def test_plume_reaches_detectors_in_order_of_downwind_distance():
    pos = np.array([[5.0, 0.3], [12.0, -0.5], [20.0, 0.8], [30.0, 0.0], [-5.0, 0.0]])
    rel = gas.Release((0.0, 0.0), 10.0, 0.2, 1.0, 1.0, 0.0)
    t = np.arange(0.0, 120.0, 0.1)
    c = gas.LPG.percent_lel(gas.plume_kgm3(None, t, pos, rel))
    arrival = gas.first_crossing(t, c, 0.5)
    assert np.all(np.diff(arrival[:4]) > 0)  # in turn, nearest first
    assert arrival[:4] == pytest.approx(10.0 + pos[:4, 0] / 1.0, abs=1.0)  # the front travels with the wind
    assert np.isinf(arrival[4])  # upwind sees nothing
    assert np.all(np.diff(c[:4, -1]) < 0)  # concentration falls with distance


def test_meandering_plume_still_reaches_the_row_nearest_first_on_average():
    pos = gas.detector_layout(6)[:3]
    rel = gas.Release((pos[0, 0] - 2.0, -1.0), 0.0, 0.25, 600.0, 1.5, 10.0)
    t = np.arange(0.0, 1200.0, 1.0)
    mean = np.mean([gas.LPG.percent_lel(gas.plume_kgm3(np.random.default_rng(s), t, pos, rel))[:, -300:].mean(1)
                    for s in range(8)], axis=0)
    assert mean[0] > mean[1] > mean[2] > 5.0


def test_gas_detectors_read_clean_air_at_zero_and_oxygen_at_20_9():
    rng = np.random.default_rng(1)
    t = scan_times(rng, 5.0, 6 * HOUR)
    lel = gas.readings(rng, gas.COMBUSTIBLE, t, None, 12)
    o2 = gas.readings(rng, gas.OXYGEN, t, None, 2)
    assert lel.min() >= 0.0 and lel.max() < 4.0 and np.median(lel) < 1.5
    assert np.abs(np.median(o2, axis=1) - 20.9).max() < 0.35
    assert np.allclose(lel * 10, np.round(lel * 10))  # 0.1 %LEL resolution


# ---- tailings ----------------------------------------------------------------------------------------------

def test_rain_gauge_reports_the_last_24_hours_in_bucket_tips():
    rng = np.random.default_rng(5)
    t = np.arange(0.0, 72 * HOUR, 600.0)
    rain = tailings.hyetograph(rng, t, tailings.Storm(20 * HOUR, 80.0, 10.0))
    total = tailings.rain_total_24h(t, rain)
    assert total.max() == pytest.approx(80.0, abs=0.4)
    assert total[-1] == pytest.approx(0.0, abs=0.2)  # 24 h after the storm the window is dry again
    assert np.allclose(total / tailings.TIP_MM, np.round(total / tailings.TIP_MM))


def test_phreatic_depth_lags_rainfall_by_about_a_day():
    rng = np.random.default_rng(2)
    spec = tailings.DamSpec()
    storm = tailings.Storm(24 * HOUR, 120.0, 12.0)
    truth = tailings.simulate_dam(rng, 5 * 24 * HOUR, 0.0, spec, storm)
    rain_peak = truth.t_s[np.argmax(truth.rain_mmh)]
    wettest = truth.t_s[np.argmin(truth.depth_m, axis=1)]
    assert np.all(wettest - rain_peak > 12 * HOUR) and np.all(wettest - rain_peak < 48 * HOUR)
    # Before any rain reaches it the line does not move; afterwards it is shallower (wetter) than before.
    before = truth.t_s < storm.start_s
    assert np.ptp(truth.depth_m[:, before], axis=1).max() < 0.05
    assert np.all(truth.depth_m.min(axis=1) < np.array(spec.depth0_m) - 1.0)
    # Pond up, freeboard and dry beach down, consistently.
    assert truth.pond_m.max() > spec.pond0_m + 0.2
    assert np.allclose(truth.freeboard_m + truth.pond_m[None, :], np.array(spec.crest_m)[:, None])


def test_inverse_velocity_falls_linearly_to_zero_at_the_failure_time():
    tf, ta, a = 120 * HOUR, 50 * HOUR, 30.0
    t = np.arange(100 * HOUR, tf - 600.0, 600.0)
    x = tailings.tertiary_creep(t, ta, tf, a)
    v = np.diff(x) / (np.diff(t) / HOUR)  # mm/h from the displacement itself
    tm = (t[1:] + t[:-1]) / 2
    late = tm > tf - 12 * HOUR
    slope, icpt = np.polyfit(tm[late] / HOUR, 1.0 / v[late], 1)
    fit = slope * tm[late] / HOUR + icpt
    r2 = 1 - np.sum((1.0 / v[late] - fit) ** 2) / np.sum((1.0 / v[late] - (1.0 / v[late]).mean()) ** 2)
    assert slope < 0 and r2 > 0.99
    assert -icpt / slope == pytest.approx(tf / HOUR, abs=1.0)  # 1/v reaches 0 within an hour of failure
    assert np.all(np.diff(v) > 0)  # accelerating all the way


# ---- coal mine ---------------------------------------------------------------------------------------------

def test_face_methane_is_emission_over_airflow_with_first_order_mixing():
    spec = coalmine.FaceSpec()
    t = np.arange(0.0, 3 * HOUR, coalmine.DT_S)
    plan = np.zeros((1, len(t)))
    ws = np.full((1, len(t)), 1.8)
    ws[0, t >= HOUR] = 0.9  # the air halves
    intake = np.full(len(t), 0.03)
    t1, _, _, _, _ = coalmine.face_methane(t, plan, ws, spec, intake, np.zeros_like(plan))
    q1, q2 = 1.8 * spec.area_m2 * 60.0, 0.9 * spec.area_m2 * 60.0
    assert t1[0, np.searchsorted(t, HOUR) - 1] == pytest.approx(spec.background_m3min / q1 * 100 + 0.03, rel=1e-3)
    assert t1[0, -1] == pytest.approx(spec.background_m3min / q2 * 100 + 0.03, rel=1e-3)
    # Mixing time constant V/Q: 63 % of the step after V/Q seconds.
    tau = spec.volume_m3 / (q2 / 60.0)
    lo, hi = t1[0, np.searchsorted(t, HOUR) - 1], t1[0, -1]
    at_tau = t1[0, np.searchsorted(t, HOUR + tau)]
    assert (at_tau - lo) / (hi - lo) == pytest.approx(1 - np.exp(-1), abs=0.03)


def test_cutting_raises_methane_and_the_shifts_are_recognisable():
    rng = np.random.default_rng(4)
    truth = coalmine.simulate_mine(rng, 2, 24 * HOUR, 0.0)
    hours = truth.t_s / HOUR
    night = (hours > 1) & (hours < 7.5)
    day = (hours > 9) & (hours < 15.5)
    assert truth.cutting[:, night].max() == 0.0  # maintenance shift: no cutting
    assert 0.4 < truth.cutting[:, day].mean() < 0.9
    assert np.all(truth.t1[:, day].mean(1) > 1.8 * truth.t1[:, night].mean(1))
    assert np.all(truth.t0.mean(1) > truth.t1.mean(1))  # goaf gas gathers in the upper corner
    assert truth.t3.max() < 0.1 and truth.mr.max() < 0.75
    assert truth.t1.max() < 1.0 and truth.sh.max() < 1.0 and truth.t0.max() < 1.0
    assert truth.ws.min() > 0.25


def test_ventilation_failure_drives_methane_through_the_limits_and_cuts_the_shearer():
    rng = np.random.default_rng(7)
    fail = coalmine.VentFailure(0, 2 * HOUR, 0.1, restore_s=2 * HOUR + 40 * 60)
    truth = coalmine.simulate_mine(rng, 2, 4 * HOUR, 8.0, failure=fail)
    after = truth.t_s > fail.start_s
    assert truth.ws[0, after].min() < 0.25
    assert truth.t1[0].max() > 1.5 and truth.t1[1].max() < 1.0  # only the failed face
    off = truth.power_off_s[0]
    assert np.isfinite(off) and truth.cutting[0, truth.t_s > off].max() == 0.0


# ---- faults ------------------------------------------------------------------------------------------------

@pytest.fixture()
def level_trace() -> Trace:
    t = np.arange(0.0, 3600.0, 10.0)
    return Trace("S01-T05-LT", t, 50.0 + t / 600.0, None)


def test_stuck_freezes_at_the_value_at_fault_start(registry: Registry, level_trace: Trace):
    before = level_trace.value.copy()
    out, f = faults.stuck(registry, level_trace, 1000.0, 2000.0)
    w = (out.t_s >= 1000.0) & (out.t_s < 2000.0)
    assert np.all(out.value[w] == level_trace.value[np.searchsorted(level_trace.t_s, 1000.0) - 1])
    assert np.array_equal(out.value[~w], before[~w]) and np.array_equal(level_trace.value, before)
    assert f.kind == "stuck" and f.rules[0] == "stuck" and "rate" in f.rules  # the repaired gauge jumps


def test_drift_adds_a_linear_offset(registry: Registry):
    t = np.arange(0.0, 7200.0, 5.0)
    tr = Trace("S02-GC04", t, np.zeros(len(t)), None)
    out, f = faults.drift(registry, tr, 1800.0, 5400.0, 3.0)
    w = (t >= 1800.0) & (t < 5400.0)
    assert np.allclose(out.value[w], 3.0 * (t[w] - 1800.0) / 3600.0)
    assert np.all(out.value[~w] == 0.0)
    assert f.rules[0] == "drift"


def test_dropout_removes_rows_and_bad_quality_flags_them(registry: Registry):
    t = np.arange(0.0, 3600.0, 5.0)
    tr = Trace("S06-GT06", t, np.full(len(t), 0.1), None)
    out, f = faults.dropout(registry, tr, 600.0, 1200.0)
    assert len(out) == len(tr) - 120 and not np.any((out.t_s >= 600.0) & (out.t_s < 1200.0))
    assert f.rules == ("offline", "vote")  # a silent voter degrades its 2oo3 group
    out, f = faults.bad_quality(registry, tr, 600.0, 1200.0)
    w = (t >= 600.0) & (t < 1200.0)
    assert np.all(out.quality[w] == Q_BAD) and np.all(out.quality[~w] == Q_GOOD)
    assert np.array_equal(out.value, tr.value) and f.rules[0] == "bad_quality"


def test_spikes_are_isolated_large_values(registry: Registry):
    t = np.arange(0.0, 3600.0, 30.0)
    tr = Trace("S05-T02-TT", t, np.full(len(t), 21.0), None)
    out, f = faults.spikes(registry, tr, 0.0, 3600.0, 3, np.random.default_rng(0))
    changed = np.flatnonzero(out.value != tr.value)
    assert len(changed) == 3 and np.all(np.diff(changed) > 1)
    assert np.all(out.value[changed] > 70.0) and "limit" in f.rules


# ---- normal day, determinism -------------------------------------------------------------------------------

def test_normal_day_of_the_whole_city_is_fast_complete_and_plausible(registry: Registry):
    t0 = time.perf_counter()
    traces = normal.normal_traces(registry, None, 24 * HOUR, seed=7)
    elapsed = time.perf_counter() - t0
    n = sum(len(t) for t in traces)
    assert elapsed < 20.0, f"{elapsed:.1f} s"
    assert 2.8e6 < n < 3.2e6
    assert {t.sensor for t in traces} == set(registry.sensors)
    for tr in traces:
        s = registry.sensors[tr.sensor]
        assert np.all(np.diff(tr.t_s) > 0) and tr.t_s[0] >= 0.0 and tr.t_s[-1] < 24 * HOUR
        assert abs(len(tr) - 24 * HOUR / s.period_s) <= 1
        assert s.range[0] <= tr.value.min() and tr.value.max() <= s.range[1], tr.sensor
        assert np.all(tr.quality == Q_GOOD)
    # One gateway per source: same-period sensors of a source share their scan times (multivariate rows).
    by = {t.sensor: t for t in traces}
    assert np.array_equal(by["S01-T03-LT"].t_s, by["S01-T03-PT"].t_s)


def test_same_seed_same_day_other_seed_other_day(registry: Registry):
    a = normal.normal_traces(registry, ["S01", "S10"], 2 * HOUR, seed=3)
    b = normal.normal_traces(registry, ["S01", "S10"], 2 * HOUR, seed=3)
    c = normal.normal_traces(registry, ["S01", "S10"], 2 * HOUR, seed=4)
    assert all(np.array_equal(x.t_s, y.t_s) and np.array_equal(x.value, y.value) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.value, y.value) for x, y in zip(a, c, strict=True))
    # A source's day does not depend on which other sources are simulated with it.
    alone = normal.normal_traces(registry, ["S10"], 2 * HOUR, seed=3)
    assert all(np.array_equal(x.value, y.value) for x, y in zip(alone, a[-len(alone):], strict=True))


@pytest.mark.parametrize("name", ["buncefield", "gas_release", "methane", "tailings"])
def test_scenarios_are_deterministic_by_seed(registry: Registry, name: str):
    a, b = SCENARIOS[name](registry, 5), SCENARIOS[name](registry, 5)
    assert a.hazard_s == b.hazard_s and a.onset_s == b.onset_s and a.readings == b.readings
    assert all(np.array_equal(x.value, y.value) for x, y in zip(a.traces, b.traces, strict=True))
    assert a.onset_s is not None and a.hazard_s is not None and 0 < a.onset_s < a.hazard_s <= a.duration_s
    assert {t.sensor for t in a.traces} >= {s for src in a.sources for s in registry.sources[src].sensors} - \
        {f.sensor for f in a.faults}


def test_red_noise_has_the_asked_spread_and_memory():
    x = red_noise(np.random.default_rng(0), (50, 4000), 1.0, 20.0, 2.0)
    assert x.std() == pytest.approx(2.0, rel=0.05)
    lag1 = np.mean([np.corrcoef(r[:-20], r[20:])[0, 1] for r in x])
    assert lag1 == pytest.approx(np.exp(-1), abs=0.06)


# ---- scoring -----------------------------------------------------------------------------------------------

def _rec(t_s: float, sensor: str, rule: str, limit: str = "", level: int = 3, state: str = "raise",
         **extra: object) -> dict:
    return {"ts_ms": 1_000_000 + int(t_s * 1000), "state": state, "source": sensor[:3], "enterprise": "E01",
            "sensor": sensor, "rule": rule, "limit": limit, "level": level, "category": "process", "value": 1.0,
            **extra}


def test_score_sorts_alerts_into_expected_fault_consequential_and_unexpected():
    sc = Scenario("x", "测试", "test", 3600.0, ("S01",), [],
                  expected=[Expected("S01-T05-LT", "stuck", 2, 100.0, 1000.0),
                            Expected("S01-V01", "vote", 2, 100.0, 1000.0, "confirmed")],
                  faults=[Fault("S01-GC03", "dropout", 2000.0, 2100.0, ("offline", "vote"))],
                  consequential=[("S01-GC0*", "limit")], onset_s=100.0, hazard_s=1000.0)
    recs = [_rec(50, "S01-T05-LT", "stuck", level=2),  # before the onset: a false alarm
            _rec(400, "S01-T05-LT", "stuck", level=2),
            _rec(500, "S01-GC01", "vote", "confirmed", 2, group="S01-V01", voters=["S01-GC01", "S01-GC02"]),
            _rec(510, "S01-GC01", "limit", "H"), _rec(520, "S01-GC01", "limit", "HH", 2),
            _rec(2030, "S01-GC03", "offline"),
            _rec(2040, "S01-GC01", "vote", "degraded", 3, group="S01-V01", voters=["S01-GC01", "S01-GC03"]),
            _rec(2500, "S01-T01-TT", "limit", "H")]
    rep = score(sc, recs, 1_000_000)
    assert [e.passed for e in rep.expected] == [True, True]
    assert rep.expected[0].first_s == 400.0 and rep.expected[0].lead_s == 600.0 and rep.expected[0].delay_s == 300.0
    assert [len(f.alerts) for f in rep.faults] == [2]
    assert len(rep.consequential) == 2
    assert sorted(a.t_s for a in rep.unexpected) == [50.0, 2500.0] and not rep.ok
    text = rep.render()
    assert "应报警项 Expected alerts" in text and "意外报警 UNEXPECTED" in text and "S01-T01-TT" in text
    json.dumps(rep.to_dict(), allow_nan=True)


def test_an_upgrade_is_not_a_new_annunciation_but_a_return_after_clear_is():
    recs = [_rec(0, "S10-F1-CH4-T1", "limit", "H", 2), _rec(10, "S10-F1-CH4-T1", "limit", "HH", 1),
            _rec(20, "S10-F1-CH4-T1", "limit", "HH", 1, "clear"), _rec(30, "S10-F1-CH4-T1", "limit", "H", 2, "clear"),
            _rec(40, "S10-F1-CH4-T1", "limit", "H", 2)]
    assert [r["ts_ms"] for r in annunciations(recs)] == [1_000_000, 1_040_000]
