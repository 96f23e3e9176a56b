from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.audit import (
    GENESIS,
    AuditError,
    AuditLog,
    TornTailError,
    canonical,
    head_path,
    reanchor,
    record_hash,
    repair_torn_tail,
    verify,
)
from alerts.model import event_id, page_id
from alerts.timeline import readings_flux, render_report, timeline

T0 = 1_740_808_800_000  # 2025-03-01 06:00:00 UTC = 14:00:00 CST


def snap(alert_id: str, state: str, ts: int, **kw: Any) -> dict[str, Any]:
    s = {"alert_id": alert_id, "key": f"S01|limit|{alert_id}", "source": "S01", "enterprise": "E01",
         "district": "D01", "sensor": "S01-T03-LT", "rule": "limit", "category": "process", "level": 2,
         "max_level": 2, "state": state, "raised_ms": T0, "updated_ms": ts, "acked_ms": None, "acked_by": None,
         "closed_ms": None, "value": 95.2, "threshold": 90.0, "unit": "%", "clause": "AQ 3036-2010 6.2",
         "text_zh": "【橙色预警】T03储罐液位 95.2% 超过高高限 90%", "text_en": "[ORANGE Level 2] T03 level 95.2%",
         "rule_version": "limit-1"}
    s.update(kw)
    return s


def ev(kind: str, action: str, ts: int, alert_id: str | None = "A1", actor: str = "system", reason: str = "",
       **kw: Any) -> dict[str, Any]:
    e = {"event_id": event_id(kind, action, alert_id, ts, actor), "kind": kind, "action": action, "ts_ms": ts,
         "actor": actor, "reason": reason, "rule_version": "limit-1", "source": "S01", "enterprise": "E01",
         "district": "D01", "alert_id": alert_id, "alert": None, "from_state": None, "to_state": None,
         "page": None, "notify": None}
    e.update(kw)
    return e


def simple_events(n: int) -> list[dict[str, Any]]:
    return [ev("transition", "raise", T0 + i * 1000, alert_id=f"A{i}", reason=f"r{i}",
               alert=snap(f"A{i}", "UNACK", T0 + i * 1000)) for i in range(n)]


def write_log(path: Path, events: list[dict[str, Any]]) -> None:
    with AuditLog(path) as log:
        log.append(events)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def put(path: Path, ls: list[bytes]) -> None:
    path.write_bytes(b"".join(ls))


# ---- append, reopen, dedupe ------------------------------------------------------------------------------
def test_append_reopen_and_replay_is_dropped(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    evs = simple_events(4)
    with AuditLog(p) as log:
        assert [r["seq"] for r in log.append(evs[:3])] == [0, 1, 2]
    with AuditLog(p) as log:
        new = log.append(evs)  # a replay after a restart plus one new event
        assert [r["event_id"] for r in new] == [evs[3]["event_id"]]
        assert log.append(evs) == []
    recs = [orjson.loads(x) for x in lines(p)]
    assert [r["seq"] for r in recs] == [0, 1, 2, 3]
    assert recs[0]["prev"] == GENESIS and all(recs[i]["prev"] == recs[i - 1]["hash"] for i in range(1, 4))
    assert all(r["hash"] == record_hash(r) for r in recs)
    assert recs[1]["reason"] == "r1" and recs[1]["event"]["alert"]["state"] == "UNACK"
    assert orjson.loads(head_path(p).read_bytes()) == {"seq": 3, "hash": recs[3]["hash"]}
    v = verify(p)
    assert v.ok and v.records == 4 and v.first_bad is None


def test_single_writer(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    with AuditLog(p), pytest.raises(AuditError, match="another process"):
        AuditLog(p)
    AuditLog(p).close()  # released on close


def test_event_without_id_is_refused(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl") as log, pytest.raises(ValueError, match="event_id"):
        log.append([{"kind": "transition"}])


# ---- tampering --------------------------------------------------------------------------------------------
@pytest.fixture()
def log5(tmp_path: Path) -> Path:
    p = tmp_path / "audit.jsonl"
    write_log(p, simple_events(5))
    return p


def test_edited_record_is_found(log5: Path) -> None:
    ls = lines(log5)
    rec = orjson.loads(ls[2])
    rec["reason"] = "nothing happened"
    ls[2] = canonical(rec) + b"\n"
    put(log5, ls)
    v = verify(log5)
    assert not v.ok and v.first_bad == 2 and v.line == 3
    assert "edited" in v.problem and "cannot be trusted" in v.problem and "alert-events" in v.problem


def test_deleted_record_is_found(log5: Path) -> None:
    ls = lines(log5)
    put(log5, ls[:2] + ls[3:])
    v = verify(log5)
    assert not v.ok and v.first_bad == 2 and "deleted" in v.problem


def test_reordered_records_are_found(log5: Path) -> None:
    ls = lines(log5)
    ls[1], ls[2] = ls[2], ls[1]
    put(log5, ls)
    v = verify(log5)
    assert not v.ok and v.first_bad == 1 and v.line == 2


def test_truncated_tail_is_found_by_the_head_anchor(log5: Path) -> None:
    put(log5, lines(log5)[:3])
    v = verify(log5)
    assert not v.ok and v.first_bad == 3 and "2 record(s) missing from the end" in v.problem
    with pytest.raises(AuditError, match="missing from the end"):
        AuditLog(log5)  # appending would move the anchor and hide the cut


def test_forged_rehashed_edit_is_found_at_its_successor(log5: Path) -> None:
    ls = lines(log5)
    rec = orjson.loads(ls[2])
    rec["actor"] = "someone else"
    rec["hash"] = record_hash(rec)
    ls[2] = canonical(rec) + b"\n"
    put(log5, ls)
    v = verify(log5)
    assert not v.ok and v.first_bad == 2 and "chain broken between lines 3 and 4" in v.problem


def test_cosmetic_edit_is_found(log5: Path) -> None:
    ls = lines(log5)
    ls[1] = ls[1].replace(b'{"', b'{ "', 1)  # same JSON value, different bytes
    put(log5, ls)
    assert verify(log5).first_bad == 1


def test_missing_anchor_and_deleted_log(log5: Path) -> None:
    head_path(log5).unlink()
    v = verify(log5)
    assert not v.ok and "anchor file is missing" in v.problem
    assert reanchor(log5).ok  # an operator's explicit decision after comparing with the backup
    log5.unlink()
    assert not verify(log5).ok


def test_anchor_behind_after_a_crash_is_accepted_and_refreshed(log5: Path) -> None:
    recs = [orjson.loads(x) for x in lines(log5)]
    head_path(log5).write_bytes(orjson.dumps({"seq": 3, "hash": recs[3]["hash"]}))
    v = verify(log5)
    assert v.ok and v.notes and "behind" in v.notes[0]
    AuditLog(log5).close()
    assert orjson.loads(head_path(log5).read_bytes())["seq"] == 4


def test_torn_last_line_is_reported_not_fixed(log5: Path) -> None:
    good = log5.read_bytes()
    extra = canonical(orjson.loads(lines(log5)[0]))[:40]
    log5.write_bytes(good + extra)
    v = verify(log5)
    assert not v.ok and v.first_bad == 5 and "torn last line" in v.problem
    with pytest.raises(TornTailError, match="torn"):
        AuditLog(log5)
    assert log5.read_bytes() == good + extra  # opening did not touch it
    aside = repair_torn_tail(log5)
    assert aside is not None and aside.read_bytes() == extra and log5.read_bytes() == good
    assert verify(log5).ok
    with AuditLog(log5) as log:
        assert log.append(simple_events(6))[0]["seq"] == 5
    assert verify(log5).ok and repair_torn_tail(log5) is None


def test_open_refuses_a_tampered_log(log5: Path) -> None:
    ls = lines(log5)
    put(log5, ls[:1] + ls[2:])
    with pytest.raises(AuditError, match="line 2"):
        AuditLog(log5)


# ---- property: every single-line edit, delete or swap is found, never later than where it happened ----------
@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 10), data=st.data())
def test_any_single_line_tamper_is_detected(n: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "audit.jsonl"
        write_log(p, simple_events(n))
        ls = lines(p)
        op = data.draw(st.sampled_from(["edit", "delete", "swap"]))
        if op == "edit":
            i = data.draw(st.integers(0, n - 1))
            j = data.draw(st.integers(0, len(ls[i]) - 2))  # any byte but the newline
            b = data.draw(st.integers(32, 126).filter(lambda c: c != ls[i][j]))
            ls[i] = ls[i][:j] + bytes([b]) + ls[i][j + 1:]
        elif op == "delete":
            i = data.draw(st.integers(0, n - 1))
            del ls[i]
        else:
            i = data.draw(st.integers(0, n - 2))
            ls[i], ls[i + 1] = ls[i + 1], ls[i]
        put(p, ls)
        v = verify(p)
        assert not v.ok, (op, i)
        assert v.first_bad is not None and v.first_bad <= i, (op, i, v)


# ---- timeline and the inspector's report ----------------------------------------------------------------------
def alert_story() -> list[dict[str, Any]]:
    pid = page_id("A1", 0, 0, "alert")
    page = {"page_id": pid, "tier": 0, "tier_name": "control_room", "repeat": 0, "purpose": "alert", "level": 2,
            "colour": "orange",
            "recipients": [{"name": "中控室", "role": "control room", "channels": {"sms": "+86-1"}}]}

    def notify(ts: int, attempt: int, ok: bool, receipt: str | None) -> dict[str, Any]:
        n = {"delivery_id": f"d{attempt}", "page_id": pid, "alert_id": "A1", "channel": "sms", "recipient": "中控室",
             "address": "+86-1", "attempt": attempt, "ok": ok, "status": "200" if ok else "503",
             "error": None if ok else "gateway busy", "fallback_of": None, "receipt": receipt, "ts_ms": ts}
        return ev("notify", "notify", ts, alert_id=None, notify=n)

    return [
        ev("transition", "raise", T0, reason="95.2% above HH 90%", from_state="NORMAL", to_state="UNACK",
           alert=snap("A1", "UNACK", T0)),
        ev("transition", "raise", T0 + 500, alert_id="A2", alert=snap("A2", "UNACK", T0 + 500)),
        ev("page", "page", T0 + 1000, page=page, alert=snap("A1", "UNACK", T0 + 1000)),
        notify(T0 + 2000, 1, False, None),
        notify(T0 + 12_000, 2, True, "SMS-778899"),
        ev("command", "comment", T0 + 60_000, actor="王磊", reason="现场已派人核实液位"),
        ev("command", "ack", T0 + 95_000, actor="张伟", reason="收到，已启动倒罐", from_state="UNACK",
           to_state="ACKED", alert=snap("A1", "ACKED", T0 + 95_000, acked_ms=T0 + 95_000, acked_by="张伟")),
        ev("command", "suppress", T0 + 100_000, alert_id=None, actor="李工", reason="检修"),
        ev("transition", "clear", T0 + 600_000, from_state="ACKED", to_state="NORMAL",
           alert=snap("A1", "NORMAL", T0 + 600_000, acked_ms=T0 + 95_000, acked_by="张伟",
                      closed_ms=T0 + 600_000)),
    ]


def test_timeline_holds_the_alert_its_notifications_and_source_commands(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, alert_story())
    recs = timeline(p, "A1")
    assert [r["action"] for r in recs] == ["raise", "page", "notify", "notify", "comment", "ack", "suppress",
                                           "clear"]
    assert timeline(p, "nope") == []


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_report_names_the_acknowledger_the_attempts_and_cst_times(tmp_path: Path, registry: Any, fmt: str) -> None:
    p = tmp_path / "audit.jsonl"
    write_log(p, alert_story())
    readings = [(T0 - 60_000 + i * 10_000, 80.0 + i) for i in range(20)]
    out = render_report("A1", timeline(p, "A1"), readings, registry, fmt, verify(p), generated_ms=T0 + 3600_000)
    for text in ("张伟", "1 min 35 s", "2025-03-01 14:00:00 CST", "2025-03-01 14:01:35 CST", "SMS-778899",
                 "gateway busy", "现场已派人核实液位", "临江石化储运有限公司", "二级", "orange", "AQ 3036-2010 6.2",
                 "收到，已启动倒罐", "UNACK", "ACKED", "审计链完整", "Acknowledged by", "2025-03-01 14:10:00 CST"):
        assert text in out, text
    if fmt == "html":
        assert "<svg" in out and "<polyline" in out and out.startswith("<!doctype html>")
    else:
        assert "| 2025-03-01 13:59:00 CST | 80 |" in out  # few readings are listed one by one


def test_report_summarises_many_readings_per_minute(registry: Any) -> None:
    readings = [(T0 + i * 1000, float(i % 7)) for i in range(180)]
    out = render_report("A1", [{"seq": 0, "at_ms": T0, "action": "raise", "kind": "transition",
                                "event": {"alert": snap("A1", "UNACK", T0)}}], readings, registry)
    assert "| 2025-03-01 14:00 CST | 0 | 6 | 3 | 60 |" in out and "未校验" in out


def test_readings_query_filters_one_sensor() -> None:
    flux = readings_flux("hw", 'S01"x', T0, T0 + 1000)
    assert 'r._measurement == "reading"' in flux and 'r._field == "v"' in flux and 'r.sensor == "S01\\"x"' in flux
    assert f"time(v: {T0 * 1_000_000})" in flux
