"""The load generator's pure parts: payloads, pacing arithmetic, probe choice, MQTT framing, percentile maths."""

from __future__ import annotations

import math
import struct

import numpy as np
import orjson
import pytest

from bench.e2e import match_probes
from hazardwatch.config import Settings
from hazardwatch.registry import Registry
from ingest.decode import Decoder
from simulators.load import (
    ProbePlan,
    SourceStream,
    batch_payload,
    build_streams,
    connect_packet,
    fmt_ts,
    mqtt_varint,
    next_ts,
    percentile,
    probe_candidates,
    publish_packet,
    rounds_due,
    seconds_until_due,
    split_packets,
)

T0 = 1_795_000_000_000  # epoch ms


def stream(batch: int) -> SourceStream:
    return SourceStream("hw", "S07", "E04", ["A", "B", "C"], [1.0, 2.5, -3.0], batch)


# ---- timestamps and payloads ------------------------------------------------------------------------------------
def test_fmt_ts_is_exact_epoch_seconds():
    for ms in (T0, T0 + 1, T0 + 999, T0 + 1000, 5):
        text = fmt_ts(ms)
        assert round(float(text) * 1000) == ms
        assert text.count(b".") == 1 and len(text.split(b".")[1]) == 3


def test_next_ts_never_repeats_even_when_the_clock_does_not_move():
    last = 0
    seen = []
    for now in (T0, T0, T0, T0 + 1, T0 - 5, T0 + 10):
        last = next_ts(now, last)
        seen.append(last)
    assert seen == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + 10]


def test_batched_messages_hold_exactly_batch_readings_and_keep_the_tail():
    st = stream(batch=4)
    st.add_round(T0)
    assert st.take() == []  # 3 readings pending, fewer than a batch
    st.add_round(T0)  # same clock: the round still gets its own timestamp
    msgs = st.take()
    assert [m.readings for m in msgs] == [4]
    doc = orjson.loads(msgs[0].payload)
    assert msgs[0].topic == "hw/E04/S07" and msgs[0].enterprise == "E04"
    assert [(r["s"], r["v"], round(r["ts"] * 1000)) for r in doc["readings"]] == [
        ("A", 1.0, T0), ("B", 2.5, T0), ("C", -3.0, T0), ("A", 1.0, T0 + 1)]
    tail = st.take(flush=True)
    assert [m.readings for m in tail] == [2]
    assert [r["s"] for r in orjson.loads(tail[0].payload)["readings"]] == ["B", "C"]
    assert st.take(flush=True) == []


def test_single_reading_messages_go_to_the_sensor_topic():
    st = stream(batch=0)
    st.add_round(T0)
    msgs = st.take()
    assert [m.topic for m in msgs] == ["hw/E04/S07/A", "hw/E04/S07/B", "hw/E04/S07/C"]
    assert [orjson.loads(m.payload) for m in msgs] == [{"v": 1.0, "ts": T0 / 1000}, {"v": 2.5, "ts": T0 / 1000},
                                                       {"v": -3.0, "ts": T0 / 1000}]
    assert all(m.readings == 1 for m in msgs)


@pytest.mark.parametrize("batch", [4, 0])
def test_a_probe_travels_in_the_message_that_carries_its_sensor(batch: int):
    st = stream(batch)
    st.add_round(T0)
    ts = st.add_round(T0 + 40, probe=("C", 99.0, 7))
    st.add_round(T0 + 80)
    msgs = st.take(flush=True)
    carriers = [m for m in msgs if m.probes]
    assert len(carriers) == 1 and carriers[0].probes == (7,)
    body = orjson.loads(carriers[0].payload)
    rows = body["readings"] if batch else [dict(body, s=carriers[0].topic.rsplit("/", 1)[1])]
    hit = [r for r in rows if r["v"] == 99.0]
    assert len(hit) == 1 and hit[0]["s"] == "C" and round(hit[0]["ts"] * 1000) == ts
    # Only that one reading changed: the rounds around it are normal again.
    assert sum(1 for m in msgs for r in (orjson.loads(m.payload).get("readings") or [orjson.loads(m.payload)])
               if r["v"] == 99.0) == 1


def test_payload_wrapping():
    assert orjson.loads(batch_payload([b'{"s":"A","v":1,"ts":2}'])) == {"readings": [{"s": "A", "v": 1, "ts": 2}]}


@pytest.mark.parametrize("batch", [100, 37, 0])
def test_every_reading_of_the_registry_is_accepted_by_the_real_decoder(registry: Registry, settings: Settings,
                                                                         batch: int):
    dec = Decoder(registry, settings)
    streams = build_streams(registry, settings.mqtt_root, batch)
    now_s = T0 / 1000
    for r in range(6):
        for st in streams:
            st.add_round(T0 + r // 2)  # two rounds per millisecond: next_ts must keep them apart
    total = 0
    for st in streams:
        for m in st.take(flush=True):
            out = dec.decode(m.topic, m.payload, now_s)
            assert out.rejects == [], out.rejects[:3]
            total += len(out.batch) if out.batch else 0
    assert total == 6 * len(registry.sensors)


# ---- pacing -----------------------------------------------------------------------------------------------------
def test_rounds_due_keeps_the_average_rate():
    per_round, rate = 307, 3070.0  # 10 rounds per second
    assert rounds_due(rate, 0.0, per_round, 0) == 0
    assert rounds_due(rate, 0.1, per_round, 0) == 1
    assert rounds_due(rate, 0.95, per_round, 9) == 0
    assert rounds_due(rate, 1.0, per_round, 9) == 1
    assert rounds_due(rate, 2.0, per_round, 9) == 11  # behind: catch up in one burst
    assert rounds_due(rate, 1.0, per_round, 15) == 0  # ahead: never negative
    assert rounds_due(None, 123.0, per_round, 10**9) == 1  # flat out
    assert seconds_until_due(rate, 0.95, per_round, 9) == pytest.approx(0.05)
    assert seconds_until_due(rate, 1.2, per_round, 9) == 0.0


def test_pacing_simulated_over_a_minute_hits_the_rate():
    per_round, rate = 307, 10_000.0
    done, t = 0, 0.0
    while t < 60.0:
        done += rounds_due(rate, t, per_round, done)
        t += max(seconds_until_due(rate, t, per_round, done), 0.005)
    assert done * per_round / 60.0 == pytest.approx(rate, rel=0.01)


# ---- probes -----------------------------------------------------------------------------------------------------
def test_probe_candidates_cross_one_plain_high_limit(registry: Registry):
    cands = probe_candidates(registry)
    assert len(cands) >= 50
    assert len({c.sensor for c in cands}) == len(cands)
    for c in cands[:40]:
        s = registry.sensors[c.sensor]
        highs = sorted((lim for lim in s.limits if lim.name in ("H", "HH")), key=lambda lim: lim.value)
        assert highs[0].value < c.value and highs[0].name == c.limit
        assert all(c.value < lim.value for lim in highs[1:])
        assert s.range[0] <= c.value <= s.range[1]
        assert not any(lim.latching for lim in s.limits) and s.rate is None and s.trend is None
        assert registry.sources[c.source].kind != "tailings_dam"
    # Interleaved across sources: consecutive probes land on different hazard sources.
    assert cands[0].source != cands[1].source


def test_probe_plan_keeps_its_schedule_and_never_reuses_a_sensor_too_soon(registry: Registry):
    plan = ProbePlan(probe_candidates(registry)[:10], every_s=0.2, start_s=5.0)
    fired: list[tuple[float, str]] = []
    t = 0.0
    while t < 25.0:
        spec = plan.due(t)
        if spec is not None:
            fired.append((t, spec.sensor))
        t = round(t + 0.01, 2)
    assert fired[0][0] == 5.0
    last: dict[str, float] = {}
    for when, sensor in fired:
        assert sensor not in last or when - last[sensor] >= 5.0
        last[sensor] = when
    # 10 sensors, 5 s before reuse: at most 2 probes per second after the first round of 10.
    assert 35 <= len(fired) <= 50
    assert ProbePlan([], every_s=0.2, start_s=0).due(10.0) is None


# ---- MQTT framing -------------------------------------------------------------------------------------------------
def test_mqtt_remaining_length_encoding():
    assert mqtt_varint(0) == b"\x00"
    assert mqtt_varint(127) == b"\x7f"
    assert mqtt_varint(128) == b"\x80\x01"
    assert mqtt_varint(16_383) == b"\xff\x7f"
    assert mqtt_varint(16_384) == b"\x80\x80\x01"
    assert mqtt_varint(268_435_455) == b"\xff\xff\xff\x7f"


def test_publish_packets_split_back_including_a_partial_tail():
    topic = struct.pack("!H", 9) + b"hw/E01/S1"
    a = publish_packet(topic, 1, b"x" * 300)
    b = publish_packet(topic, 2, b"{}")
    buf = bytearray(a + b + b"\x40\x02\x00\x01" + b[:3])
    packets = split_packets(buf)
    assert [p[0] for p in packets] == [0x32, 0x32, 0x40]
    assert packets[0][1][:11] == topic and struct.unpack("!H", packets[0][1][11:13])[0] == 1
    assert packets[0][1][13:] == b"x" * 300
    assert packets[2][1] == b"\x00\x01"
    assert bytes(buf) == b[:3]  # the incomplete packet waits for more bytes


def test_connect_packet_is_mqtt_311_with_credentials():
    p = connect_packet("cid", "e01", "pw", 60)
    [(first, body)] = split_packets(bytearray(p))
    assert first == 0x10
    assert body[:6] == b"\x00\x04MQTT" and body[6] == 4 and body[7] == 0xC2
    assert body.endswith(b"\x00\x03cid\x00\x03e01\x00\x02pw")


# ---- percentiles and probe matching -------------------------------------------------------------------------------
def test_percentile_matches_numpy_linear_interpolation():
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 10, 101, 1000):
        xs = rng.exponential(0.3, n).tolist()
        for q in (0, 1, 50, 90, 99, 100):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


def test_percentile_counts_missing_samples_as_infinitely_late():
    xs = [0.1] * 99 + [0.2]
    assert percentile(xs, 99) == pytest.approx(0.101)  # n=100: rank 98.01, between two arrived samples
    assert percentile(xs, 99, missing=1) == pytest.approx(0.2)  # n=101: rank 99.0 is exactly the last arrival
    assert math.isinf(percentile(xs, 99, missing=2))  # n=102: rank 99.99 reaches into the missing ones
    assert percentile(xs, 50, missing=2) == pytest.approx(0.1)
    assert math.isnan(percentile([], 50))
    assert math.isinf(percentile([], 50, missing=3))
    with pytest.raises(ValueError):
        percentile(xs, 101)


def test_probes_are_matched_to_their_alert_record_and_delivery():
    probes = [{"sensor": "S01-T01-TT", "ts_ms": T0, "publish_wall": 100.0, "fresh": True},
              {"sensor": "S02-T01-TT", "ts_ms": T0 + 5, "publish_wall": 100.2, "fresh": True},
              {"sensor": "S03-T01-TT", "ts_ms": T0 + 9, "publish_wall": None, "fresh": True}]  # never published
    alerts = [(100.3, {"rule": "limit", "state": "raise", "sensor": "S01-T01-TT", "ts_ms": T0, "text_en": "[X] one"}),
              (100.4, {"rule": "limit", "state": "clear", "sensor": "S02-T01-TT", "ts_ms": T0 + 5, "text_en": "c"}),
              (100.5, {"rule": "offline", "state": "raise", "sensor": "S09-X", "ts_ms": T0, "text_en": "[Y] off"})]
    deliveries = [(100.6, "/wecom", {"msgtype": "text", "text": {"content": "【】 中文\n[X] one (to: control room)"}})]
    res = match_probes(probes, alerts, deliveries)
    assert (res["probes_sent"], res["alerts_seen"], res["deliveries_seen"]) == (2, 1, 1)
    assert res["rows"][0]["alert_s"] == pytest.approx(0.3) and res["rows"][0]["delivery_s"] == pytest.approx(0.6)
    assert res["rows"][1]["alert_s"] is None  # a clear is not the probe's alert
    assert math.isinf(res["alert_p99_s"]) and math.isinf(res["alert_max_s"])  # one of two missing: cannot hide
    assert math.isinf(res["alert_p50_s"])  # half the probes missing: even the median is unknown
    assert res["other_raise_records"] == 1
