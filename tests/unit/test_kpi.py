from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.kpi import FloodWatch, flood_episodes, kpi_report, kpis
from alerts.model import event_id

T0 = 1_740_808_800_000  # 2025-03-01 14:00 CST
MIN = 60_000
HOUR = 3600_000


def ann(ts: int, alert_id: str, enterprise: str = "E01", level: int = 3, action: str = "raise",
        key: str | None = None, district: str = "D01", state: str = "UNACK", raised_ms: int | None = None
        ) -> dict[str, Any]:
    snap = {"alert_id": alert_id, "key": key or f"S01|limit|{alert_id}", "level": level, "state": state,
            "raised_ms": ts if raised_ms is None else raised_ms, "text_zh": f"报警 {alert_id}",
            "text_en": f"alert {alert_id}", "shelved": None, "suppressed": None, "out_of_service": None}
    return {"event_id": event_id("t", alert_id, action, ts), "kind": "transition", "action": action, "ts_ms": ts,
            "actor": "system", "reason": "", "rule_version": "limit-1", "source": "S01", "enterprise": enterprise,
            "district": district, "alert_id": alert_id, "alert": snap, "from_state": "NORMAL", "to_state": state}


def close(ts: int, alert_id: str, enterprise: str = "E01") -> dict[str, Any]:
    e = ann(ts, alert_id, enterprise, action="clear", state="NORMAL")
    e["event_id"] = event_id("close", alert_id, ts)
    return e


def burst(t: int, n: int, step_ms: int, prefix: str, enterprise: str = "E01") -> list[dict[str, Any]]:
    return [ann(t + i * step_ms, f"{prefix}{i}", enterprise) for i in range(n)]


# ---- floods ----------------------------------------------------------------------------------------------------
def test_flood_needs_more_than_ten_in_ten_minutes_and_names_the_first_out() -> None:
    assert flood_episodes(burst(T0, 10, 1000, "a")) == []  # exactly 10 is not a flood
    spread = burst(T0, 11, MIN, "s")  # 11 over exactly 10 minutes: the last is outside the first's window
    assert flood_episodes(spread) == []
    eps = flood_episodes(burst(T0, 11, 59_000, "f"))
    assert len(eps) == 1
    ep = eps[0]
    assert ep["start_ms"] == T0 and ep["end_ms"] == T0 + 10 * 59_000 and ep["count"] == 11
    assert ep["first_out"]["alert_id"] == "f0" and ep["first_out"]["text_zh"] == "报警 f0"


def test_overlapping_windows_merge_into_one_episode_and_separate_floods_do_not() -> None:
    # 30 alerts one every 30 s: every 10-minute window holds 20, one long episode.
    long = burst(T0, 30, 30_000, "x")
    eps = flood_episodes(long)
    assert len(eps) == 1 and eps[0]["count"] == 30 and eps[0]["first_out"]["alert_id"] == "x0"
    # Two bursts an hour apart: two episodes, each with its own first-out.
    two = burst(T0, 12, 1000, "a") + burst(T0 + HOUR, 15, 1000, "b")
    eps = flood_episodes(two)
    assert [(e["first_out"]["alert_id"], e["count"]) for e in eps] == [("a0", 12), ("b0", 15)]
    k = kpis(two, now_ms=T0 + 2 * HOUR)["E01"]
    assert len(k["floods"]) == 2 and k["alarms_per_10min"]["peak"] == 15
    # 2 of the 12 ten-minute intervals are flooded.
    assert abs(k["percent_time_in_flood"] - 100 * 2 / 12) < 1e-9
    assert k["verdicts"]["peak_10min"]["status"] == "over" and k["verdicts"]["flood_time"]["status"] == "over"


def test_positions_are_separate_and_aggregate_per_district_and_city() -> None:
    evs = burst(T0, 6, 1000, "a", "E01") + burst(T0, 6, 1000, "b", "E02")
    assert all(not k["floods"] for k in kpis(evs, T0 + HOUR).values())  # 6 + 6 on two consoles
    rep = kpi_report(evs, T0 + HOUR)
    assert set(rep["enterprise"]) == {"E01", "E02"}
    assert len(rep["district"]["D01"]["floods"]) == 1 and rep["city"]["city"]["annunciations"] == 12


def test_rates_per_10_minutes_and_per_day_and_replays_count_once() -> None:
    evs = [ann(T0 + i * 10 * MIN, f"r{i}") for i in range(12)]  # 12 in 2 hours = 1 per 10 min
    k = kpis(evs + evs, now_ms=T0 + 2 * HOUR)["E01"]
    assert k["annunciations"] == 12
    assert abs(k["alarms_per_10min"]["average"] - 1.0) < 1e-9 and k["alarms_per_10min"]["peak"] == 1
    assert abs(k["per_day"]["average"] - 144) < 1e-9 and k["per_day"]["by_day_cst"] == {"2025-03-01": 12}
    assert k["verdicts"]["alarm_rate"]["status"] == "ok"
    busy = [ann(T0 + i * 4 * MIN, f"b{i}") for i in range(30)]  # 2.5 per 10 min = 360/day
    assert kpis(busy, T0 + 2 * HOUR)["E01"]["verdicts"]["alarm_rate"]["status"] == "over"


# ---- chattering, standing, priority ---------------------------------------------------------------------------
def test_chattering_is_three_of_one_key_within_60_s() -> None:
    chat = [ann(T0 + i * 20_000, "c", action="raise" if i == 0 else "realarm", key="S01|limit|T1")
            for i in range(3)]
    slow = [ann(T0 + i * 61_000, f"s{i}", key="S01|limit|T2") for i in range(3)]  # new alerts, same key, slow
    upgrades = [{**ann(T0 + i * 1000, "u", key="S01|limit|T3"), "action": "upgrade",
                 "event_id": f"u{i}"} for i in range(5)]  # upgrades are not annunciations
    k = kpis(chat + slow + upgrades, T0 + HOUR)["E01"]
    assert [(c["key"], c["count"], c["max_in_60s"]) for c in k["chattering"]] == [("S01|limit|T1", 3, 3)]
    assert k["verdicts"]["chattering"]["status"] == "over"


def test_standing_alerts_are_open_longer_than_24_h_at_now() -> None:
    now = T0 + 30 * HOUR
    evs = [ann(T0, "old"), ann(T0 + 10 * HOUR, "young"), ann(T0, "closed"), close(T0 + HOUR, "closed"),
           {**ann(T0 + 2 * HOUR, "old"), "event_id": "ack-old", "kind": "command", "action": "ack"}]
    evs[-1]["alert"] = {**evs[-1]["alert"], "state": "ACKED", "raised_ms": T0}
    k = kpis(evs, now)["E01"]
    assert [(s["alert_id"], s["state"], s["age_h"]) for s in k["standing"]] == [("old", "ACKED", 30.0)]
    assert k["verdicts"]["standing"]["status"] == "ok"
    many = [ann(T0 + i, f"o{i}") for i in range(5)]
    assert kpis(many, now)["E01"]["verdicts"]["standing"]["status"] == "over"


def test_priority_distribution_against_the_eemua_mix() -> None:
    evs = [ann(T0 + i * MIN, f"p{i}", level=1 if i < 1 else 2 if i < 4 else 3 if i < 14 else 4) for i in range(20)]
    pr = kpis(evs, T0 + 2 * HOUR)["E01"]["priority"]
    assert [pr["by_level"][lvl]["count"] for lvl in (1, 2, 3, 4)] == [1, 3, 10, 6]
    assert abs(pr["by_priority"]["high"] - 0.05) < 1e-9 and abs(pr["by_priority"]["low"] - 0.8) < 1e-9
    assert pr["target"] == {"high": 0.05, "medium": 0.15, "low": 0.80}
    assert kpis(evs, T0 + 2 * HOUR)["E01"]["verdicts"]["priority"]["status"] == "ok"
    red = [ann(T0 + i * MIN, f"r{i}", level=1) for i in range(5)]
    assert kpis(red, T0 + 2 * HOUR)["E01"]["verdicts"]["priority"]["status"] == "over"


# ---- streaming flood watch ------------------------------------------------------------------------------------
def stream() -> list[dict[str, Any]]:
    return (burst(T0, 25, 20_000, "a") + burst(T0 + HOUR, 14, 1000, "b") + burst(T0 + 2 * HOUR, 9, 1000, "c")
            + burst(T0 + 3 * HOUR, 11, 1000, "d", "E02"))


def test_floodwatch_emits_one_summary_per_episode_matching_the_batch_rule() -> None:
    evs = stream()
    fw = FloodWatch()
    out = [f for e in evs if (f := fw.observe(e)) is not None]
    assert [(f["enterprise"], f["flood"]["first_out"], f["flood"]["count"]) for f in out] == [
        ("E01", "a0", 11), ("E01", "b0", 11), ("E02", "d0", 11)]
    f = out[0]
    assert f["kind"] == "flood" and f["ts_ms"] == T0 + 10 * 20_000 and f["flood"]["window_s"] == 600
    assert f["flood"]["started_ms"] == T0 and f["flood"]["first_out_text_zh"] == "报警 a0" and f["alert_id"] is None
    batch = kpis(evs, T0 + 4 * HOUR)
    assert [e["first_out"]["alert_id"] for p in ("E01", "E02") for e in batch[p]["floods"]] == ["a0", "b0", "d0"]
    assert all(fw.observe(e) is None for e in evs[-5:])  # a replay pages nobody again


def test_floodwatch_survives_export_and_import_mid_episode() -> None:
    evs = stream()
    whole = FloodWatch()
    expected = [f for e in evs if (f := whole.observe(e)) is not None]
    got = []
    fw = FloodWatch()
    for i, e in enumerate(evs):
        if i % 7 == 3:  # restart often, including inside an episode
            state = orjson.loads(orjson.dumps(fw.export()))
            fw = FloodWatch()
            fw.import_(state)
            if i % 2:
                assert fw.observe(evs[i - 1]) is None  # the event before the restart is replayed
        if (f := fw.observe(e)) is not None:
            got.append(f)
    assert got == expected
    assert len({f["event_id"] for f in got}) == 3


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 90_000), min_size=0, max_size=80))
def test_floodwatch_and_the_batch_rule_find_the_same_episodes(gaps: list[int]) -> None:
    t, evs = T0, []
    for i, g in enumerate(gaps):
        t += g
        evs.append(ann(t, f"g{i}"))
    fw = FloodWatch()
    streamed = [f["flood"]["first_out"] for e in evs if (f := fw.observe(e)) is not None]
    assert streamed == [e["first_out"]["alert_id"] for e in flood_episodes(evs)]
