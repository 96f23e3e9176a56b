"""The incidents of domain.md section 8, played through the detector engine with the example city's registry."""

from __future__ import annotations

import numpy as np

from alerts.records import alert_record
from detectors.engine import DetectorEngine
from detectors.tailings import roll_up
from detectors.voting import VotingGroups, VotingState, evaluate_voting

T0 = 1_800_000_000_000
MIN = 60_000


def play(engine: DetectorEngine, rows: list[tuple[int, str, float]], batch: int = 50,
         ticks: list[int] | None = None) -> list[dict]:
    """rows: (ts_ms, sensor, value) in time order; optional clock ticks for offline detection."""
    out: list[dict] = []
    slot = engine._slot
    ticks = sorted(ticks or [])
    for i in range(0, len(rows), batch):
        chunk = rows[i:i + batch]
        while ticks and ticks[0] <= chunk[0][0]:
            out += engine.tick(ticks.pop(0))
        out += engine.process_arrays(np.array([slot[s] for _, s, _ in chunk]), np.array([t for t, _, _ in chunk]),
                                     np.array([v for _, _, v in chunk], dtype=float), np.zeros(len(chunk), np.int8))
    for t in ticks:
        out += engine.tick(t)
    return out


def first(recs: list[dict], **match: object) -> dict | None:
    hits = [r for r in recs if all(r.get(k) == v for k, v in match.items())]
    return min(hits, key=lambda r: r["ts_ms"]) if hits else None


def test_buncefield_stuck_gauge_with_inflow_alarms_long_before_overflow(registry):
    # Tank T03 fills at 0.4 %/min from 60 % with 600 m3/h inflow. At 20 min the gauge sticks at 68 %.
    # The true level overflows (100 %) at 100 min; the independent high-level switch has failed too.
    rows = []
    for k in range(0, 100 * 6):  # a reading every 10 s for 100 min
        t = T0 + k * 10_000
        true_level = 60 + 0.4 * k / 6
        gauge = min(true_level, 68.0)
        rows.append((t, "S01-T03-FT", 600.0 + (k % 3)))
        rows.append((t, "S01-T03-LT", gauge))
    recs = play(DetectorEngine(registry), rows)
    stuck = first(recs, rule="stuck", sensor="S01-T03-LT", state="raise")
    assert stuck is not None
    minutes = (stuck["ts_ms"] - T0) / MIN
    assert 24.9 <= minutes <= 26  # stuck since 20 min, stuck_s = 300 s
    overflow_min = 100
    assert minutes < overflow_min - 60  # an hour of warning before the tank overflows
    assert stuck["level"] == 2 and stuck["category"] == "sensor_health"
    # The frozen gauge itself never reaches H: without the stuck alarm nothing would have sounded.
    assert first(recs, rule="limit", sensor="S01-T03-LT", state="raise") is None


def test_working_gauge_gives_a_time_to_overfill_warning_before_the_high_alarm(registry):
    rows = [(T0 + k * 10_000, "S01-T04-LT", 60 + 0.4 * k / 6) for k in range(0, 80 * 6)]
    recs = play(DetectorEngine(registry), rows)
    trend = first(recs, rule="trend", sensor="S01-T04-LT", state="raise")
    high = first(recs, rule="limit", limit="H", sensor="S01-T04-LT", state="raise")
    assert trend is not None and high is not None
    assert trend["ts_ms"] < high["ts_ms"]
    # Forecast: HH (90 %) reached within the 30 min horizon; at 0.4 %/min from ~78 % that is ~30 min.
    assert abs(trend["slope_per_min"] - 0.4) < 0.02
    assert 25 * 60 <= trend["forecast_s"] <= 30 * 60
    assert abs((high["ts_ms"] - T0) / MIN - 62.5) < 0.2  # 85 % at 62.5 min


def test_methane_climb_with_a_sensor_going_silent(registry):
    # Ventilation fails: face methane climbs 0.1 %/min from 0.3 % to 1.7 %, then falls back after 20 min.
    # The upper-corner sensor T0 goes silent at 5 min.
    rows = []
    for k in range(0, 30 * 6):
        t = T0 + k * 10_000
        m = k / 6
        face = 0.3 + 0.1 * m if m <= 14 else max(0.5, 1.7 - 0.1 * (m - 14) * 2)
        rows.append((t, "S10-F1-CH4-T1", round(face, 4)))
        if m < 5:
            rows.append((t, "S10-F1-CH4-T0", 0.25))
    ticks = [T0 + s * 1000 for s in range(0, 30 * 60, 5)]
    recs = play(DetectorEngine(registry), rows, batch=7, ticks=ticks)
    alarm = first(recs, rule="limit", limit="H", sensor="S10-F1-CH4-T1", state="raise")
    power_off = first(recs, rule="limit", limit="HH", sensor="S10-F1-CH4-T1", state="raise")
    re_energise = first(recs, rule="limit", limit="HH", sensor="S10-F1-CH4-T1", state="clear")
    assert abs((alarm["ts_ms"] - T0) / MIN - 7) < 0.2 and alarm["level"] == 2
    assert abs((power_off["ts_ms"] - T0) / MIN - 12) < 0.2 and power_off["action"] == "power_off"
    assert power_off["level"] == 1
    # Re-energise only once below 1.0 % (the fall passes 1.4 %, 1.2 % ... without restoring power).
    assert re_energise["action"] == "re_energise" and re_energise["value"] < 1.0
    silent = first(recs, rule="offline", sensor="S10-F1-CH4-T0", state="raise")
    assert silent is not None and silent["category"] == "communication"
    # Last value at 4:50; 3 x 10 s later it is overdue, noticed on the next 5 s tick.
    assert 5.3 <= (silent["ts_ms"] - T0) / MIN <= 5.5
    assert silent["ts_ms"] < power_off["ts_ms"]


def test_gas_plume_confirmed_by_two_out_of_three_then_level_two(registry):
    eng = DetectorEngine(registry)
    sensors = ["S03-GC01", "S03-GC02", "S03-GC03"]
    slots = np.array([eng._slot[s] for s in sensors])
    group_of_slot = np.full(len(registry.sensor_ids), -1)
    group_of_slot[slots] = 0
    groups = VotingGroups.build(group_of_slot, ["2oo3"])
    vstate = VotingState.empty(1)
    confirmed_at = None
    level2: list[dict] = []
    votes: list[dict] = []
    arrival = [0, 20, 40]  # the plume reaches each detector 20 s after the previous
    for sec in range(0, 120, 5):
        t = T0 + sec * 1000
        vals = [0.0 if sec < a else min(60.0, 2.0 * (sec - a) + 10.0) for a in arrival]
        recs = eng.process_arrays(slots, np.full(3, t), np.array(vals), np.zeros(3, np.int8))
        level2 += [r for r in recs if r["rule"] == "limit" and r["limit"] == "HH" and r["state"] == "raise"]
        votes += [r for r in recs if r["rule"] == "vote"]
        alarm = eng.state["limits"].alarm[:, 2]  # level 1 (H) alarms, latched
        vstate, _, ev = evaluate_voting(vstate, groups, alarm, np.ones_like(alarm), t)
        if confirmed_at is None and len(ev) and ev.raised[0]:
            confirmed_at = sec
    # GC01 alarms at 10 s (>= 25 %LEL), GC02 at 30 s: confirmation comes with the second detector.
    assert confirmed_at == 30
    # The engine runs the registry's own voting groups (S03-V01 = GC01..GC03, 2oo3) and says so.
    engine_vote = first(votes, limit="confirmed", state="raise")
    assert engine_vote is not None and (engine_vote["ts_ms"] - T0) // 1000 == 30
    assert engine_vote["group"] == "S03-V01" and engine_vote["level"] == 2
    assert [r["sensor"] for r in level2][:1] == ["S03-GC01"]
    assert all(r["level"] == 2 and "GB/T 50493-2019" in r["clause"] for r in level2)


def test_tailings_phreatic_rise_rolls_up_to_the_dam(registry):
    eng = DetectorEngine(registry)
    pz = [f"S08-PZ{i:02d}" for i in range(1, 9)]
    # After a rainstorm the phreatic line rises: depth falls from 12 m; three points go past orange (6.6 m).
    rows = []
    for h in range(0, 48):
        t = T0 + h * 3_600_000
        for i, sid in enumerate(pz):
            depth = 12.0 - ((0.15 - 0.01 * i) * h if i < 3 else 0.02 * h)  # three points cross 6.6 m in turn
            rows.append((t, sid, depth))
    recs = play(eng, rows, batch=16)
    orange = [r for r in recs if r["rule"] == "limit" and r["limit"] == "L" and r["state"] == "raise"]
    assert sorted(r["sensor"] for r in orange) == pz[:3]
    # Roll-up (GB 39496-2020): three orange points in one item make the item red.
    slots = [eng._slot[s] for s in pz]
    alarm = eng.state["limits"].alarm[slots]
    colour = np.where(alarm[:, 0], 4, np.where(alarm[:, 1], 3, 0))  # LL red, L orange
    r = roll_up(colour, np.zeros(8, dtype=np.int64), np.zeros(1, dtype=np.int64))
    assert int(r.item_level[0]) == 4 and int(r.dam_level[0]) == 4
    # The engine does the same roll-up after every batch and tells the duty officer each change of colour.
    dam = [x for x in recs if x["rule"] == "dam_warning"]
    assert [(x["state"], x["limit"]) for x in dam] == [("raise", "orange"), ("clear", "orange"), ("raise", "red")]
    first_orange = min(x["ts_ms"] for x in orange)
    assert dam[0]["ts_ms"] == first_orange and dam[0]["level"] == 2  # one orange point: item and dam orange
    assert dam[2]["ts_ms"] == sorted(x["ts_ms"] for x in orange)[1]  # the second orange point makes it red
    assert dam[2]["level"] == 1 and dam[2]["items"]["phreatic_depth"] == "red" and "5.5.4" in dam[2]["clause"]
    assert dam[1]["alert_id"] == dam[0]["alert_id"]  # the clear closes the orange alert it replaces
    text = alert_record(dam[2], registry)
    assert "尾矿库综合预警为红色" in text["text_zh"] and "dam warning red" in text["text_en"]
    # The dam's colour survives a restart: the next change clears the red alert under its own id.
    saved = eng.export_source("S08")
    eng2 = DetectorEngine(registry)
    eng2.import_source("S08", saved)
    t_end = T0 + 49 * 3_600_000
    back = play(eng2, [(t_end, sid, 12.0) for sid in pz], batch=16)
    cleared = [x for x in back if x["rule"] == "dam_warning"]
    assert [(x["state"], x["limit"], x["alert_id"]) for x in cleared] == [("clear", "red", dam[2]["alert_id"])]


def test_state_stays_small(registry):
    assert DetectorEngine(registry).state_bytes_per_sensor() < 1024


def test_voting_degrades_when_gas_heads_only_send_bad_quality_or_fall_silent(registry):
    eng = DetectorEngine(registry)
    heads = ["S01-GC01", "S01-GC02", "S01-GC03"]
    slots = np.array([eng._slot[s] for s in heads])
    eng.process_arrays(slots, np.full(3, T0), np.zeros(3), np.zeros(3, np.int8))
    recs = eng.process_arrays(slots[:2], np.full(2, T0 + 5000), np.zeros(2), np.full(2, 2, np.int8))
    votes = {(r["limit"], r["state"]) for r in recs if r["rule"] == "vote"}
    assert votes == {("degraded", "raise"), ("unavailable", "raise")}
    # Silence is judged on the clock tick, and voting with it.
    eng2 = DetectorEngine(registry)
    eng2.process_arrays(slots, np.full(3, T0), np.zeros(3), np.zeros(3, np.int8))
    ticked = eng2.tick(T0 + 60_000, ["S01"])
    assert {(r["limit"], r["state"]) for r in ticked if r["rule"] == "vote"} >= {("degraded", "raise")}
