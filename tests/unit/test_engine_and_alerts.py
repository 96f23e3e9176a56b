from __future__ import annotations

import numpy as np

from alerts.records import alert_record
from detectors.engine import DetectorEngine
from hazardwatch.model import ReadingBatch


def batch(sensor: str, source: str, values: list[float], t0: int = 1_800_000_000_000) -> ReadingBatch:
    n = len(values)
    return ReadingBatch(source, "E01", [sensor] * n, np.arange(n, dtype=np.int64) * 10_000 + t0,
                        np.asarray(values, dtype=float), np.zeros(n, dtype=np.int8))


def limit_only(recs: list[dict]) -> list[dict]:
    return [r for r in recs if r["rule"] == "limit"]


def test_engine_emits_detections_with_rule_clause_and_versions(registry):
    eng = DetectorEngine(registry)
    recs = limit_only(eng.process([batch("S01-T03-LT", "S01", [60, 95.2])]))
    assert [(r["limit"], r["state"]) for r in recs] == [("H", "raise"), ("HH", "raise")]
    hh = recs[1]
    assert hh["value"] == 95.2 and hh["threshold"] == 90 and hh["level"] == 2
    assert hh["clause"] and hh["detector"] == "limit" and hh["detector_version"]
    assert hh["ts_ms"] == 1_800_000_010_000
    assert hh["profile"] == "tank_level" and hh["profile_version"] == "site design (AQ 3036-2010)"


def test_replayed_detection_has_the_same_id_and_checkpoint_round_trips(registry):
    b = batch("S01-T03-LT", "S01", [60, 95.2, 96])
    first = DetectorEngine(registry).process([b])
    again = DetectorEngine(registry).process([b])
    assert [r["id"] for r in first] == [r["id"] for r in again]

    eng = DetectorEngine(registry)
    eng.process([batch("S01-T03-LT", "S01", [60, 95.2])])
    saved = eng.export_source("S01")
    restored = DetectorEngine(registry)
    restored.import_source("S01", saved)
    # Still active after a restart: a higher reading raises nothing new, a low one clears the same alarm.
    later = batch("S01-T03-LT", "S01", [97, 50], t0=1_800_000_100_000)
    recs = limit_only(restored.process([later]))
    assert sorted((r["limit"], r["state"]) for r in recs) == [("H", "clear"), ("HH", "clear")]
    original = limit_only(eng.process([later]))
    assert [r["id"] for r in recs] == [r["id"] for r in original]


def test_alert_text_in_chinese_and_english(registry):
    det = limit_only(DetectorEngine(registry).process([batch("S01-T03-LT", "S01", [60, 95.2])]))[1]
    rec = alert_record(det, registry)
    expected = "【橙色预警】临江石化储运有限公司 一号汽油罐区 T03储罐汽油液位 95.2% 超过高高限 90%"
    assert rec["text_zh"].startswith(expected)
    assert "No.1 gasoline tank farm" in rec["text_en"] and "above high-high limit 90%" in rec["text_en"]
    assert rec["record_id"] == det["alert_id"]


def test_clear_text_says_which_way_the_value_went(registry):
    eng = DetectorEngine(registry)
    recs = eng.process([batch("S01-T03-LT", "S01", [60, 95.2, 50])])
    clear_hh = next(alert_record(r, registry) for r in recs if r["state"] == "clear" and r["limit"] == "HH")
    assert "已回落至复位值 88%以下" in clear_hh["text_zh"]
    assert "back below reset level 88%" in clear_hh["text_en"]
    assert clear_hh["record_id"] != clear_hh["alert_id"]
