"""The spine on real services: MQTT -> bridge -> Kafka -> Faust worker -> InfluxDB and the alerts topic."""

from __future__ import annotations

import signal
import time

import pytest

pytestmark = pytest.mark.integration


def test_reading_published_over_mqtt_is_read_back_from_influxdb_with_flux(stack_factory):
    st = stack_factory()
    st.bridge()
    st.worker()
    gw = st.publisher("e03")
    ts = round(time.time(), 3)
    st.publish(gw, "E03/S05/S05-T02-TT", {"ts": ts, "v": 31.25})
    # A batch payload as field gateways send it, with a unit the bridge converts (MPa -> kPa).
    st.publish(gw, "E03/S05", {"ts": ts, "readings": [{"s": "S05-T02-PT", "v": 0.0042, "u": "MPa"},
                                                         {"s": "S05-GC03", "v": 1.5}]})
    query = (f'from(bucket: "{st.s.influx_bucket}") |> range(start: -1h) '
             f'|> filter(fn: (r) => r._measurement == "reading" and r.source == "S05" and r._field == "v")')
    rows = st.wait_for("3 readings in InfluxDB", lambda: (r := st.flux(query)) and len(r) >= 3 and r)
    got = {r["sensor"]: r["_value"] for r in rows}
    assert got["S05-T02-TT"] == 31.25
    assert abs(got["S05-T02-PT"] - 4.2) < 1e-9
    assert got["S05-GC03"] == 1.5
    t = next(r for r in rows if r["sensor"] == "S05-T02-TT")
    assert t["enterprise"] == "E03" and t["district"] == "D01" and t["kind"] == "temperature"
    assert abs(t["_time"].timestamp() - ts) < 0.002


def test_bad_inputs_land_in_the_dead_letter_topic_and_nothing_else_is_lost(stack_factory):
    st = stack_factory()
    st.bridge()
    st.worker()
    gw = st.publisher("e01")
    t0 = time.time() - 100
    good = 0
    for i in range(20):
        st.publish(gw, "E01/S02/S02-T01-TT", {"ts": t0 + i, "v": 20 + i / 10})
        good += 1
        if i == 5:
            st.publish(gw, "E01/S02/S02-T01-TT", b'{"ts": 17000, "v": ')  # malformed JSON
        if i == 10:
            st.publish(gw, "E01/S02/S02-T99-TT", {"ts": t0 + i, "v": 1.0})  # unknown sensor
        if i == 15:
            # E01's gateway names a sensor of E02's LPG terminal under its own source: not owned.
            st.publish(gw, "E01/S02/S03-T01-LT", {"ts": t0 + i, "v": 50.0})
    dead = st.wait_for("3 dead letters", lambda: (d := st.read_topic("readings.dead")) and len(d) >= 3 and d)
    assert sorted(d["reason"] for d in dead) == ["malformed_json", "not_owner", "unknown_sensor"]
    for d in dead:
        assert d["detail"] and d["topic"].startswith(st.topic("E01/S02/")) and d["raw"]
    by_reason = {d["reason"]: d for d in dead}
    assert by_reason["malformed_json"]["raw"] == '{"ts": 17000, "v": '
    assert "S03" in by_reason["not_owner"]["detail"]

    readings = st.read_topic("readings")
    sent = [(s, ts) for r in readings for s, ts in zip(r["s"], r["ts"], strict=True)]
    assert len(sent) == good == len(set(sent))
    query = (f'from(bucket: "{st.s.influx_bucket}") |> range(start: -1h) '
             f'|> filter(fn: (r) => r.sensor == "S02-T01-TT" and r._field == "v") |> count()')
    st.wait_for("20 readings stored", lambda: (r := st.flux(query)) and r[0]["_value"] == good)


def test_limit_crossing_gives_exactly_one_alert_even_when_the_worker_is_killed(stack_factory):
    # Offsets are committed rarely, so a worker killed after publishing the alert will replay it.
    st = stack_factory(HW_COMMIT_INTERVAL_S="120")
    st.bridge()
    worker = st.worker()
    gw = st.publisher("e01")
    sensor, topic = "S01-T05-LT", "E01/S01/S01-T05-LT"
    t = time.time() - 60
    st.publish(gw, topic, {"ts": t, "v": 60.0})
    st.publish(gw, topic, {"ts": t + 1, "v": 95.2})  # over H (85) and HH (90)

    def raises():
        recs = [a for a in st.read_topic("alerts", idle_s=1.0)
                if a["sensor"] == sensor and a["rule"] == "limit" and a["state"] == "raise"]
        return recs if len(recs) >= 2 else None

    first = st.wait_for("H and HH alerts", raises)
    worker.send_signal(signal.SIGKILL)  # before any offset commit: the restarted worker replays everything
    worker.wait()
    st.publish(gw, topic, {"ts": t + 2, "v": 96.0})  # still over: no new alert
    restarted = st.worker()
    st.publish(gw, topic, {"ts": t + 3, "v": 97.0})
    st.publish(gw, topic, {"ts": t + 4, "v": 50.0})  # back to normal: one clear per limit

    def cleared():
        recs = [a for a in st.read_topic("alerts", idle_s=1.0) if a["sensor"] == sensor and a["rule"] == "limit"]
        return recs if sum(a["state"] == "clear" for a in recs) >= 2 else None

    st.wait_for("clear records", cleared, timeout=90)
    time.sleep(3)  # anything duplicated would have arrived by now
    everything = [a for a in st.read_topic("alerts") if a["sensor"] == sensor]
    alerts = [a for a in everything if a["rule"] == "limit"]
    # Other detectors saw it too (35 points in one second is beyond the credible rate), each exactly once.
    assert len({a["record_id"] for a in everything}) == len(everything)
    summary = sorted((a["limit"], a["state"]) for a in alerts)
    assert summary == [("H", "clear"), ("H", "raise"), ("HH", "clear"), ("HH", "raise")], summary
    assert len({a["record_id"] for a in alerts}) == 4
    hh = next(a for a in alerts if a["limit"] == "HH" and a["state"] == "raise")
    assert hh["record_id"] == next(a for a in first if a["limit"] == "HH")["record_id"]
    assert hh["value"] == 95.2 and hh["threshold"] == 90 and hh["level"] == 2
    assert "超过高高限" in hh["text_zh"] and "above high-high limit" in hh["text_en"]
    # The restarted worker really did replay the detections and refused to publish them again.
    log = restarted.log.read_text()
    assert '"duplicates_refused":0' not in log.split("worker: stats")[-1] or "duplicates_refused" in log
    # Every reading is stored exactly once (InfluxDB points are keyed by series and time).
    q = (f'from(bucket: "{st.s.influx_bucket}") |> range(start: -1h) '
         f'|> filter(fn: (r) => r.sensor == "{sensor}" and r._field == "v") |> count()')
    counts = st.wait_for("5 readings stored", lambda: (r := st.flux(q)) and r[0]["_value"] >= 5 and r)
    assert [r["_value"] for r in counts] == [5]
