"""ISA-18.2 lifecycle and the escalation chain, with the clock injected so every deadline is exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts.manager import AlertManager
from alerts.model import ACKED, LATCHED, NORMAL, RTN_UNACK, UNACK
from hazardwatch.model import stable_id
from hazardwatch.registry import Registry, load_registry

REG = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "city-registry.yaml"
T0 = 1_800_000_000_000  # a fixed instant; nothing here reads the wall clock
S = 1000
LEVEL = "S01-T01-LT"  # tank level, grade-3 source S01 of enterprise E01 (district D01)
GAS = "S01-GC01"  # latching combustible gas detector (GB 16808)


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry(REG)


def det(reg: Registry, sensor: str, state: str, limit: str, ts: int, since: int, value: float, level: int,
        rule: str = "limit") -> dict[str, Any]:
    s = reg.sensors[sensor]
    src = reg.sources[s.source]
    aid = stable_id(src.id, sensor, rule, limit, since)
    return {"id": stable_id(aid, state, ts), "alert_id": aid, "state": state, "source": s.source,
            "enterprise": src.enterprise, "sensor": sensor, "rule": rule, "limit": limit, "level": level,
            "category": "process", "value": value, "threshold": 90.0, "unit": s.unit, "clause": "test clause",
            "ts_ms": ts, "since_ms": since, "detector": rule, "detector_version": "detectors-3", "profile": None,
            "profile_version": None}


def cmd(action: str, alert: dict[str, Any] | None, user: str = "e01-operator", n: int = 0,
        **kw: Any) -> dict[str, Any]:
    src = alert["source"] if alert else kw.pop("source")
    return {"command_id": f"c-{action}-{n}", "action": action, "alert_id": alert["alert_id"] if alert else None,
            "source": src, "user": user, "role": "enterprise", "ts_ms": 0, **kw}


def pages(events: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    return [(e["page"]["tier"], e["page"]["repeat"], e["action"]) for e in events if e["kind"] == "page"]


def raise_hh(m: AlertManager, reg: Registry, level: int = 2, sensor: str = LEVEL) -> dict[str, Any]:
    evs = m.on_detection(det(reg, sensor, "raise", "HH", T0, T0, 95.2, level), T0)
    return evs[0]["alert"]


def run_clock(m: AlertManager, until_s: int, step_s: int = 1) -> list[tuple[int, int, int, str]]:
    """Tick every second, as the worker does; return (second, tier, repeat, action) of every page."""
    out = []
    for t in range(step_s, until_s + 1, step_s):
        for e in m.tick(T0 + t * S):
            if e["kind"] == "page":
                out.append((t, e["page"]["tier"], e["page"]["repeat"], e["action"]))
    return out


def test_raise_opens_unacknowledged_alert_and_pages_control_room(reg: Registry) -> None:
    m = AlertManager(reg)
    evs = m.on_detection(det(reg, LEVEL, "raise", "HH", T0, T0, 95.2, 2), T0)
    assert [e["kind"] for e in evs] == ["transition", "page"]
    alert = evs[0]["alert"]
    assert alert["state"] == UNACK and alert["active"] and alert["level"] == 2
    assert alert["category"] == "process" and alert["enterprise"] == "E01" and alert["district"] == "D01"
    page = evs[1]["page"]
    assert page["tier_name"] == "control_room"
    assert [r["name"] for r in page["recipients"]] == ["临江石化储运有限公司中控室"]
    assert page["title_zh"] == "【橙色预警】" and "95.2% 超过高高限 90%" in page["text_zh"]
    assert "above high-high limit" in page["text_en"]
    assert alert["escalation"]["next_ms"] == T0 + 120 * S  # first repeat of the control room


def test_unacknowledged_orange_alert_climbs_the_chain_on_time(reg: Registry) -> None:
    m = AlertManager(reg)
    raise_hh(m, reg)
    got = run_clock(m, 2200)
    # Orange defaults: control room 300 s, responsible 600 s, district 1200 s; repeat every 120 s.
    assert got == [(120, 0, 1, "repeat"), (240, 0, 2, "repeat"), (300, 1, 0, "escalate"),
                   (420, 1, 1, "repeat"), (540, 1, 2, "repeat"), (660, 1, 3, "repeat"), (780, 1, 4, "repeat"),
                   (900, 2, 0, "escalate"), (1020, 2, 1, "repeat"), (1140, 2, 2, "repeat"),
                   (1260, 2, 3, "repeat"), (1380, 2, 4, "repeat"), (1500, 2, 5, "repeat"), (1620, 2, 6, "repeat"),
                   (1740, 2, 7, "repeat"), (1860, 2, 8, "repeat"), (1980, 2, 9, "repeat"), (2100, 3, 0, "escalate")]


def test_red_alert_reaches_the_city_within_15_minutes(reg: Registry) -> None:
    m = AlertManager(reg)
    raise_hh(m, reg, level=1)
    escalations = [(t, tier) for t, tier, _, action in run_clock(m, 1000) if action == "escalate"]
    assert escalations == [(60, 1), (300, 2), (780, 3)]  # 1 + 4 + 8 minutes


def test_grade_one_source_uses_its_shorter_deadlines(reg: Registry) -> None:
    m = AlertManager(reg)
    sensor = next(s for s in reg.sources["S03"].sensors if reg.sensors[s].limits)
    raise_hh(m, reg, level=2, sensor=sensor)
    escalations = [(t, tier) for t, tier, _, action in run_clock(m, 1600) if action == "escalate"]
    assert escalations == [(180, 1), (600, 2), (1500, 3)]


def test_blue_alert_stays_inside_the_enterprise(reg: Registry) -> None:
    m = AlertManager(reg)
    raise_hh(m, reg, level=4)
    got = run_clock(m, 6 * 3600, step_s=30)
    assert max(tier for _, tier, _, _ in got) == 1
    assert [(t, tier) for t, tier, _, a in got if a == "escalate"] == [(1800, 1)]


def test_acknowledgement_stops_paging_until_reescalation(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg)
    run_clock(m, 310)  # responsible persons paged at 300 s
    evs = m.on_command(cmd("ack", alert), T0 + 310 * S)
    assert evs[0]["kind"] == "command" and evs[0]["action"] == "ack"
    acked = evs[0]["alert"]
    assert acked["state"] == ACKED and acked["acked_by"] == "e01-operator"
    assert acked["escalation"]["stopped"] == "acknowledged by e01-operator"
    assert acked["escalation"]["next_ms"] == T0 + (310 + 3600) * S
    quiet = [e for t in range(311, 310 + 3600) for e in m.tick(T0 + t * S)]
    assert quiet == []
    evs = m.tick(T0 + (310 + 3600) * S)
    assert [(e["kind"], e["action"]) for e in evs] == [("transition", "reescalate"), ("page", "reescalate")]
    assert evs[0]["alert"]["state"] == UNACK and evs[1]["page"]["tier_name"] == "district"


def test_acknowledging_twice_is_refused_and_recorded(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg)
    m.on_command(cmd("ack", alert), T0 + 5 * S)
    evs = m.on_command(cmd("ack", alert, user="d01-duty", n=1), T0 + 6 * S)
    assert evs[0]["kind"] == "rejected" and "ACKED" in evs[0]["reason"] and evs[0]["actor"] == "d01-duty"


def test_restart_mid_escalation_pages_next_tier_on_time_and_nobody_twice(reg: Registry) -> None:
    m1 = AlertManager(reg)
    alert = raise_hh(m1, reg)
    before = run_clock(m1, 400)  # tier 1 paged at 300 s, repeat at ...
    saved = m1.export_source("S01")  # the checkpoint in the Faust table
    # The old worker goes on a little (pages tier 1 repeat at 420 s), then dies before checkpointing again.
    lost = [e for t in range(401, 430) for e in m1.tick(T0 + t * S)]
    assert pages(lost) == [(1, 1, "repeat")]
    # A new worker restores the checkpoint and is first scheduled 5 s late.
    m2 = AlertManager(reg)
    m2.import_source("S01", saved)
    first = m2.tick(T0 + 425 * S)
    # The repeat the dead worker sent is produced again with the same page id, which the notifier's log drops.
    assert [e["page"]["page_id"] for e in first if e["kind"] == "page"] == \
        [e["page"]["page_id"] for e in lost if e["kind"] == "page"]
    after = [(t, tier, rep, a) for t in range(426, 1000) for e in m2.tick(T0 + t * S) if e["kind"] == "page"
             for tier, rep, a in [(e["page"]["tier"], e["page"]["repeat"], e["action"])]]
    # District paged exactly at 900 s: the deadline counts from the tier's scheduled start, not the restart.
    assert (900, 2, 0, "escalate") in after
    assert sum(1 for x in after if x[3] == "escalate") == 1
    all_ids = [p for p in before] + after
    assert len(all_ids) == len(set(all_ids))
    assert alert["alert_id"] == m2.open_alerts("S01")[0]["alert_id"]


def test_worker_down_past_a_deadline_pages_the_next_tier_at_once(reg: Registry) -> None:
    m1 = AlertManager(reg)
    raise_hh(m1, reg)
    saved = m1.export_source("S01")
    m2 = AlertManager(reg)
    m2.import_source("S01", saved)
    evs = m2.tick(T0 + 1000 * S)  # down for 1000 s: control room (300 s) and responsible (600 s) both missed
    assert [(p[0], p[2]) for p in pages(evs)] == [(1, "escalate"), (2, "escalate")]
    assert m2.open_alerts("S01")[0]["escalation"]["next_ms"] == T0 + (1000 + 120) * S


def test_h_then_hh_is_one_alert_that_upgrades_and_downgrades(reg: Registry) -> None:
    m = AlertManager(reg)
    h = det(reg, LEVEL, "raise", "H", T0, T0, 86.0, 3)
    evs = m.on_detection(h, T0)
    aid = evs[0]["alert_id"]
    m.on_command(cmd("ack", evs[0]["alert"]), T0 + 10 * S)
    evs = m.on_detection(det(reg, LEVEL, "raise", "HH", T0 + 60 * S, T0 + 60 * S, 91.0, 2), T0 + 60 * S)
    assert [(e["kind"], e["action"]) for e in evs] == [("transition", "upgrade"), ("page", "upgrade")]
    up = evs[0]["alert"]
    assert up["alert_id"] == aid and up["level"] == 2 and up["state"] == UNACK and len(m.open_alerts()) == 1
    evs = m.on_detection(det(reg, LEVEL, "clear", "HH", T0 + 90 * S, T0 + 60 * S, 87.0, 2), T0 + 90 * S)
    assert evs[0]["action"] == "downgrade" and evs[0]["alert"]["level"] == 3 and evs[0]["alert"]["active"]
    evs = m.on_detection(det(reg, LEVEL, "clear", "H", T0 + 120 * S, T0, 80.0, 3), T0 + 120 * S)
    assert evs[0]["action"] == "rtn" and evs[0]["alert"]["state"] == RTN_UNACK
    assert evs[0]["alert"]["max_level"] == 2


def test_clear_while_unacknowledged_waits_for_ack_then_closes(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg)
    evs = m.on_detection(det(reg, LEVEL, "clear", "HH", T0 + 30 * S, T0, 85.0, 2), T0 + 30 * S)
    assert evs[0]["alert"]["state"] == RTN_UNACK and evs[0]["alert"]["escalation"]["next_ms"] is None
    assert run_clock(m, 1000) == []  # returned to normal: nobody is chased any more
    evs = m.on_command(cmd("ack", alert), T0 + 1001 * S)
    assert [e["action"] for e in evs] == ["ack", "close"] and evs[-1]["alert"]["state"] == NORMAL
    assert m.open_alerts() == []


def test_cleared_notice_goes_to_every_tier_whose_phone_rang(reg: Registry) -> None:
    m = AlertManager(reg)
    raise_hh(m, reg)
    run_clock(m, 950)  # tiers 0, 1, 2 paged
    evs = m.on_detection(det(reg, LEVEL, "clear", "HH", T0 + 951 * S, T0, 85.0, 2), T0 + 951 * S)
    notices = [e["page"] for e in evs if e["kind"] == "page"]
    assert [(p["tier"], p["purpose"]) for p in notices] == [(1, "cleared"), (2, "cleared")]
    assert notices[0]["title_zh"] == "【预警解除】"


def test_latched_gas_alarm_needs_a_reset(reg: Registry) -> None:
    m = AlertManager(reg)
    evs = m.on_detection(det(reg, GAS, "raise", "H", T0, T0, 30.0, 3), T0)
    alert = evs[0]["alert"]
    assert alert["latching"]
    refused = m.on_command(cmd("reset", alert), T0 + 5 * S)
    assert refused[0]["kind"] == "rejected" and "still present" in refused[0]["reason"]
    evs = m.on_detection(det(reg, GAS, "rtn", "H", T0 + 60 * S, T0, 10.0, 3), T0 + 60 * S)
    assert evs[0]["alert"]["state"] == RTN_UNACK
    evs = m.on_command(cmd("ack", alert, n=1), T0 + 70 * S)
    assert evs[0]["alert"]["state"] == LATCHED and m.open_alerts()
    evs = m.on_command(cmd("reset", alert, n=2), T0 + 80 * S)
    assert [e["action"] for e in evs] == ["reset", "close"] and m.open_alerts() == []


def test_realarm_after_return_needs_acknowledging_again(reg: Registry) -> None:
    m = AlertManager(reg)
    evs = m.on_detection(det(reg, GAS, "raise", "H", T0, T0, 30.0, 3), T0)
    alert = evs[0]["alert"]
    m.on_command(cmd("ack", alert), T0 + 5 * S)
    m.on_detection(det(reg, GAS, "rtn", "H", T0 + 60 * S, T0, 10.0, 3), T0 + 60 * S)
    evs = m.on_detection(det(reg, GAS, "realarm", "H", T0 + 90 * S, T0, 31.0, 3), T0 + 90 * S)
    assert evs[0]["action"] == "realarm" and evs[0]["alert"]["state"] == UNACK
    assert pages(evs) == [(0, 1, "realarm")]


def test_shelving_is_bounded_and_unshelves_itself(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg, level=3)
    assert m.on_command(cmd("shelve", alert, duration_s=600), T0)[0]["kind"] == "rejected"  # no reason
    assert m.on_command(cmd("shelve", alert, n=1, duration_s=9 * 3600, reason="x"), T0)[0]["kind"] == "rejected"
    evs = m.on_command(cmd("shelve", alert, n=2, duration_s=600, reason="仪表检修 gauge being recalibrated"),
                       T0 + 10 * S)
    assert evs[0]["action"] == "shelve" and evs[0]["alert"]["shelved"]["until_ms"] == T0 + 610 * S
    assert [e for t in range(11, 610) for e in m.tick(T0 + t * S)] == []
    evs = m.tick(T0 + 610 * S)
    assert [(e["kind"], e["action"]) for e in evs] == [("command", "auto_unshelve"), ("page", "auto_unshelve")]
    assert evs[0]["alert"]["shelved"] is None


def test_a_red_alert_cannot_be_shelved(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg, level=1)
    evs = m.on_command(cmd("shelve", alert, duration_s=600, reason="nuisance"), T0 + S)
    assert evs[0]["kind"] == "rejected" and "red" in evs[0]["reason"]


def test_maintenance_suppression_records_but_does_not_page(reg: Registry) -> None:
    m = AlertManager(reg)
    assert m.on_command(cmd("suppress", None, source="S01"), T0)[0]["kind"] == "rejected"  # reason needed
    m.on_command(cmd("suppress", None, n=1, source="S01", reason="WO-2026-118 tank T01 cleaning"), T0)
    evs = m.on_detection(det(reg, LEVEL, "raise", "HH", T0 + S, T0 + S, 95.0, 2), T0 + S)
    assert [e["kind"] for e in evs] == ["transition"] and evs[0]["alert"]["suppressed"]
    assert run_clock(m, 900) == []
    evs = m.on_command(cmd("unsuppress", None, n=2, source="S01", reason="cleaning done"), T0 + 1000 * S)
    assert pages(evs) == [(0, 0, "notify")]


def test_out_of_service_needs_a_second_person(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg, level=3)
    refused = m.on_command(cmd("oos", alert, reason="WO-1", authorised_by="e01-operator"), T0)
    assert refused[0]["kind"] == "rejected" and "second person" in refused[0]["reason"]
    evs = m.on_command(cmd("oos", alert, n=1, reason="WO-1", authorised_by="e01-manager"), T0)
    assert evs[0]["alert"]["out_of_service"]["authorised_by"] == "e01-manager"
    assert run_clock(m, 2000, step_s=10) == []
    evs = m.on_command(cmd("return_to_service", alert, n=2), T0 + 2001 * S)
    assert pages(evs)[0][2] == "return_to_service"


def test_manual_escalation_pages_the_next_tier_now(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg, level=3)
    evs = m.on_command(cmd("escalate", alert, reason="火势扩大 fire spreading"), T0 + 20 * S)
    assert pages(evs) == [(1, 0, "manual_escalate")]
    assert "fire spreading" in evs[1]["page"]["text_en"]


def test_comments_are_events_and_need_text(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg)
    assert m.on_command(cmd("comment", alert, reason=" "), T0)[0]["kind"] == "rejected"
    evs = m.on_command(cmd("comment", alert, n=1, reason="已派人现场确认 operator sent to check"), T0)
    assert evs[0]["action"] == "comment" and evs[0]["alert"]["comments"] == 1


def test_replayed_detection_and_command_are_ignored(reg: Registry) -> None:
    m = AlertManager(reg)
    d = det(reg, LEVEL, "raise", "HH", T0, T0, 95.2, 2)
    assert m.on_detection(d, T0)
    assert m.on_detection(d, T0 + S) == []
    c = cmd("ack", m.open_alerts()[0])
    assert m.on_command(c, T0 + 2 * S)
    assert m.on_command(c, T0 + 3 * S) == []


def test_events_are_deterministic(reg: Registry) -> None:
    def run() -> list[str]:
        m = AlertManager(reg)
        ids = [e["event_id"] for e in m.on_detection(det(reg, LEVEL, "raise", "HH", T0, T0, 95.2, 2), T0)]
        return ids + [e["event_id"] for t in range(1, 1000) for e in m.tick(T0 + t * S)]

    a, b = run(), run()
    assert a == b and len(a) == len(set(a))


def test_unknown_command_and_unknown_alert_are_refused(reg: Registry) -> None:
    m = AlertManager(reg)
    alert = raise_hh(m, reg)
    assert "unknown command" in m.on_command(cmd("delete", alert), T0)[0]["reason"]
    other = {**alert, "alert_id": "nope"}
    assert m.on_command(cmd("ack", other, n=1), T0)[0]["kind"] == "rejected"
