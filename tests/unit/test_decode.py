from __future__ import annotations

import math

import orjson
import pytest

from ingest.decode import REASONS, Decoder

NOW = 1_800_000_000.0


@pytest.fixture()
def dec(registry, settings):
    return Decoder(registry, settings)


def one(sensor_topic: str, body: object) -> tuple[str, bytes]:
    return sensor_topic, body if isinstance(body, bytes) else orjson.dumps(body)


def reasons(d):
    return [r.reason for r in d.rejects]


def test_single_reading_accepted(dec):
    d = dec.decode(*one("hw/E01/S01/S01-T01-LT", {"ts": NOW, "v": 55.5}), now=NOW)
    assert d.rejects == []
    assert d.batch.source == "S01" and d.batch.sensors == ["S01-T01-LT"]
    assert d.batch.ts_ms.tolist() == [1_800_000_000_000] and d.batch.values.tolist() == [55.5]


def test_rfc3339_timestamp_and_unit_conversion(dec):
    d = dec.decode("hw/E01/S01/S01-T01-PT", orjson.dumps({"ts": "2027-01-15T08:00:00+08:00", "v": 0.012, "u": "MPa"}),
                   now=NOW)
    assert d.rejects == []
    assert math.isclose(d.batch.values[0], 12.0)
    # 2027-01-15T08:00:00+08:00 is 2027-01-15T00:00:00Z.
    assert d.batch.ts_ms[0] == 1_799_971_200_000


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("hw/E01/S01/S01-T01-LT", b"{not json", "malformed_json"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1800000000, "v": NaN}', "not_finite"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1800000000, "v": -Infinity}', "not_finite"),
        ("hw/E01/S01/S01-T01-LT", b"[1, 2]", "bad_schema"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1800000000, "v": "55"}', "wrong_type"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1800000000, "v": true}', "wrong_type"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1800000000, "v": 1e999}', "not_finite"),
        ("hw/E01/S01/S01-T01-LT", b'{"v": 5}', "bad_timestamp"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": "2027-01-15T08:00:00", "v": 5}', "bad_timestamp"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1800009999, "v": 5}', "ts_future"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1700000000, "v": 5}', "ts_too_old"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1e300, "v": 5}', "ts_future"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1800000000, "v": 5, "q": 7}', "wrong_type"),
        ("hw/E01/S01/S01-T01-LT", b'{"ts": 1800000000, "v": 5, "u": "ppm"}', "bad_unit"),
        ("hw/E01/S01/NOPE", b'{"ts": 1800000000, "v": 5}', "unknown_sensor"),
        ("hw/E01/S01/S02-T01-LT", b'{"ts": 1800000000, "v": 5}', "not_owner"),
        ("hw/E01/S03/S03-T01-LT", b'{"ts": 1800000000, "v": 5}', "not_owner"),
        ("hw/E77/S01/S01-T01-LT", b'{"ts": 1800000000, "v": 5}', "unknown_enterprise"),
        ("hw/E01/S77/S01-T01-LT", b'{"ts": 1800000000, "v": 5}', "unknown_source"),
        ("hw/E01", b'{"ts": 1800000000, "v": 5}', "bad_topic"),
        ("hw/E01/S01/S01-T01-LT/x", b'{"ts": 1800000000, "v": 5}', "bad_topic"),
        ("hw/E01/S01", b'{"ts": 1800000000, "readings": []}', "bad_schema"),
        ("hw/E01/S01", b'{"ts": 1800000000, "readings": [5]}', "bad_schema"),
        ("hw/E01/S01/S01-T01-LT", b"[" * 5000 + b"]" * 5000, "malformed_json"),
    ],
)
def test_each_bad_input_has_a_reason(dec, topic, payload, reason):
    d = dec.decode(topic, payload, now=NOW)
    assert d.batch is None
    assert reasons(d) == [reason]
    assert reason in REASONS
    assert d.rejects[0].detail
    assert dec.counters[reason] == 1


def test_oversized_payload(dec, settings):
    big = orjson.dumps({"ts": NOW, "v": 1.0, "pad": "x" * settings.max_payload_bytes})
    assert reasons(dec.decode("hw/E01/S01/S01-T01-LT", big, now=NOW)) == ["payload_too_large"]


def test_batch_keeps_good_readings_and_rejects_bad_ones_individually(dec):
    body = {"ts": NOW, "readings": [
        {"s": "S01-T01-LT", "v": 50.0},
        {"s": "S01-T02-LT", "v": "bad"},
        {"s": "S01-GC01", "v": 3.0, "ts": NOW - 1},
        {"s": "S99", "v": 1},
        {"s": "S02-T01-LT", "v": 1},
        {"s": "S01-T01-LT", "v": 50.0},  # same sensor and ts as the first: duplicate inside the message
    ]}
    d = dec.decode("hw/E01/S01", orjson.dumps(body), now=NOW)
    assert d.batch.sensors == ["S01-T01-LT", "S01-GC01"]
    assert sorted(reasons(d)) == ["duplicate", "not_owner", "unknown_sensor", "wrong_type"]
    # Every reject carries the offending piece so the dead-letter record is self-contained.
    assert all(r.raw for r in d.rejects)


def test_duplicates_and_lateness_across_messages(dec, settings):
    t = "hw/E01/S01/S01-T01-LT"
    assert dec.decode(t, orjson.dumps({"ts": NOW, "v": 1.0}), now=NOW).batch is not None
    assert reasons(dec.decode(t, orjson.dumps({"ts": NOW, "v": 1.0}), now=NOW)) == ["duplicate"]
    # Out of order but within the allowed lateness: accepted (it is real data, just late).
    late_ok = dec.decode(t, orjson.dumps({"ts": NOW - settings.max_lateness_s / 2, "v": 2.0}), now=NOW)
    assert late_ok.batch is not None and late_ok.rejects == []
    too_late = dec.decode(t, orjson.dumps({"ts": NOW - settings.max_lateness_s - 5, "v": 2.0}), now=NOW)
    assert reasons(too_late) == ["too_late"]


def test_never_raises_on_garbage(dec):
    for payload in [b"", b"\xff\xfe", b"null", b"{}", b'{"readings": {}}', b'{"ts": [], "v": {}}', b"1" * 100]:
        for topic in ["", "hw", "hw/E01/S01", "hw/E01/S01/S01-T01-LT", "hw//S01/x", "x/y/z"]:
            d = dec.decode(topic, payload, now=NOW)
            assert d.batch is None and d.rejects


def test_sandbox_topic_root_is_separate_from_production(registry, settings, monkeypatch):
    monkeypatch.setenv("HW_MQTT_ROOT", "hwt/run1")
    from hazardwatch.config import load_settings

    dec = Decoder(registry, load_settings())
    ok = dec.decode("hwt/run1/E01/S01/S01-T01-LT", orjson.dumps({"ts": NOW, "v": 1.0}), now=NOW)
    assert ok.batch is not None
    # A production topic reaching a sandbox bridge (or the reverse) is refused, not silently mixed in.
    assert reasons(dec.decode("hw/E01/S01/S01-T01-LT", orjson.dumps({"ts": NOW, "v": 1.0}), now=NOW)) == ["bad_topic"]
