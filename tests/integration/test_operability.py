"""Operability on the real stack: every service's /metrics scraped while readings flow, its counters checked
against what the pipeline itself produced (Kafka topics, InfluxDB, the notification receivers); health and
readiness endpoints; JSON logs; alarm records and transitions in the long-retention alarm bucket."""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from alerts.console.users import init_users
from hazardwatch.registry import load_registry
from hazardwatch.storage import alarm_bucket
from tests.probe import get, scrape
from tests.receivers import SECRETS, Receivers

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def total(m: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lb), v in m.items() if n == name and want <= set(lb))


def test_metrics_move_with_the_readings_and_match_what_the_pipeline_produced(stack_factory, tmp_path: Path):
    rx = Receivers()
    (tmp_path / "notify.yaml").write_text(rx.notify_yaml(), encoding="utf-8")
    users_file = tmp_path / "console-users.yaml"
    st = stack_factory(HW_NOTIFY_CONFIG=str(tmp_path / "notify.yaml"), HW_AUDIT_PATH=str(tmp_path / "audit.jsonl"),
                       HW_CONSOLE_USERS=str(users_file), HW_LOG_FORMAT="json", **SECRETS)
    init_users(users_file, load_registry(st.s.registry_path))
    console_port = free_port()
    console = st.start("console", "serve", "--port", str(console_port), ready="console: listening")
    bridge, worker = st.bridge(), st.worker()
    b_url, w_url, c_url = st.ops_url(bridge), st.ops_url(worker), f"http://127.0.0.1:{console_port}"
    try:
        for url in (b_url, w_url, c_url):
            assert get(f"{url}/healthz")[0] == 200
            st.wait_for(f"{url}/readyz", lambda url=url: get(f"{url}/readyz")[0] == 200, timeout=60, every=0.5)
        assert orjson.loads(get(f"{w_url}/readyz")[1])["ready"] is True

        # Readings flow in rounds; the bridge's counters are scraped between rounds and must climb with them.
        gateways = {"E01": st.publisher("e01"), "E03": st.publisher("e03")}
        plan = {"E01": ("E01/S02", ["S02-T01-TT", "S02-T01-LT"]), "E03": ("E03/S05", ["S05-T02-TT", "S05-GC03"])}
        values = {"S02-T01-TT": 21.0, "S02-T01-LT": 40.0, "S05-T02-TT": 25.0, "S05-GC03": 0.5}
        t0 = time.time() - 120
        sent: Counter[str] = Counter()
        seen_in: list[float] = []
        for rnd in range(8):
            for ent, (topic, sensors) in plan.items():
                for k in range(5):  # one reading per sensor and time stamp: a repeat would be a duplicate
                    ts = t0 + rnd * 5 + k
                    st.publish(gateways[ent], topic, {"ts": ts, "readings": [
                        {"s": s, "v": values[s] + (rnd * 5 + k) * 0.001} for s in sensors]})
                    sent[ent] += len(sensors)
            n = sum(sent.values())
            m = st.wait_for(f"bridge counted {n}", lambda n=n: (m := scrape(b_url)) and
                            total(m, "hw_readings_in_total") >= n and m, timeout=30, every=0.2)
            seen_in.append(total(m, "hw_readings_in_total"))
        assert seen_in == sorted(seen_in) and len(set(seen_in)) == len(seen_in)  # moved every round
        m = scrape(b_url)
        for ent, n in sent.items():
            assert total(m, "hw_readings_in_total", enterprise=ent) == n

        # Bad input: each rejection counted under its reason, exactly as the dead-letter topic records it.
        st.publish(gateways["E01"], "E01/S02/S02-T01-TT", b'{"ts": 1, "v": ')
        st.publish(gateways["E01"], "E01/S02/S02-T01-TT", b"not json")
        st.publish(gateways["E01"], "E01/S02/S02-T99-TT", {"ts": time.time(), "v": 1.0})
        dead = st.wait_for("3 dead letters", lambda: (d := st.read_topic("readings.dead", 1.0)) and len(d) >= 3 and d)
        m = st.wait_for("dead letters counted", lambda: (m := scrape(b_url)) and
                        total(m, "hw_dead_letters_total") >= 3 and m, timeout=20, every=0.5)
        for reason, n in Counter(d["reason"] for d in dead).items():
            assert total(m, "hw_dead_letters_total", reason=reason) == n

        # A tank over its limit: an alert, pages, notifications.
        st.publish(gateways["E01"], "E01/S01/S01-T01-LT", {"ts": time.time(), "v": 95.2})
        good = sum(sent.values()) + 1
        wm = st.wait_for("worker evaluated every reading", lambda: (m := scrape(w_url)) and
                         total(m, "hw_worker_readings_total") >= good and
                         total(m, "hw_influx_points_total", measurement="reading") >= good and m, timeout=60)
        assert total(wm, "hw_worker_readings_total") == good
        assert total(wm, "hw_influx_points_total", measurement="reading") == good
        assert total(wm, "hw_detector_seconds_count") >= 1 and total(wm, "hw_worker_batch_readings_sum") == good

        def delivered() -> list[dict]:
            evs = st.read_topic("alert-events", 1.0)
            return [e for e in evs if e["kind"] == "notify"]

        notes = st.wait_for("notifications delivered", delivered, timeout=60)
        alerts = st.read_topic("alerts", 1.0)
        assert alerts
        time.sleep(1.5)  # the last attempt's counter and its alert-event are written by the same step
        wm = scrape(w_url)
        events = st.read_topic("alert-events", 1.0)
        notes = [e for e in events if e["kind"] == "notify"]
        for (level, rule), n in Counter((str(a["level"]), a["rule"]) for a in alerts).items():
            assert total(wm, "hw_alerts_total", level=level, rule=rule) == n
        outcomes = Counter((e["notify"]["channel"], "delivered" if e["notify"]["ok"] else "failed") for e in notes)
        for (channel, outcome), n in outcomes.items():
            assert total(wm, "hw_notifications_total", channel=channel, outcome=outcome) == n
        # Each delivery the metric claims reached one of the receivers (HTTP channels or the SMTP server).
        assert total(wm, "hw_notifications_total", outcome="delivered") == len(rx.requests) + len(rx.smtp.envelopes)
        for (kind, action), n in Counter((e["kind"], e.get("action") or "") for e in events).items():
            assert total(wm, "hw_alert_events_total", kind=kind, action=action) >= n

        # Lag: every partition of `readings` this worker owns is reported, and drains to zero once committed.
        st.wait_for("lag drained", lambda: (m := scrape(w_url)) and
                    [v for (n, lb), v in m.items() if n == "hw_consumer_lag"
                     and dict(lb)["topic"] == st.s.topic("readings")] and
                    total(m, "hw_consumer_lag", topic=st.s.topic("readings")) == 0, timeout=30)

        # Alarm records and every transition are in the alarm bucket (2-year retention), not the raw one.
        bucket = alarm_bucket(st.s)
        stored = st.wait_for("alarm history stored", lambda: (
            r := st.flux(f'from(bucket: "{bucket}") |> range(start: -1d) |> filter(fn: (r) => r._field == "level") '
                         f'|> group(columns: ["_measurement"]) |> count()')) and len(r) == 2 and r, timeout=30)
        counts = {r["_measurement"]: r["_value"] for r in stored}
        assert counts["alert"] == len(alerts)
        def missing_events() -> set[str]:
            rows = st.flux(f'from(bucket: "{bucket}") |> range(start: -1d) '
                           f'|> filter(fn: (r) => r._measurement == "alert_event" and r._field == "event_id")')
            return {e["event_id"] for e in st.read_topic("alert-events", 1.0)} - {r["_value"] for r in rows}

        try:
            st.wait_for("every alert event stored", lambda: not missing_events(), timeout=30)
        except AssertionError:
            gone = missing_events()
            lost = [e for e in st.read_topic("alert-events", 1.0) if e["event_id"] in gone]
            raise AssertionError(f"{len(lost)} alert events not stored, e.g. {lost[:3]}") from None

        # The console counts its own requests (the probes above among them).
        cm = scrape(c_url)
        assert total(cm, "hw_console_requests_total", method="GET", status="200") >= 2
    finally:
        rx.close()

    # JSON logs: every line every service wrote is one JSON object with the fields a log pipeline filters on.
    for p in (bridge, worker, console):
        lines = [ln for ln in p.log.read_text(errors="replace").splitlines() if ln.strip()]
        assert lines
        for ln in lines:
            doc = orjson.loads(ln)
            assert {"ts", "level", "service", "logger", "msg"} <= set(doc), ln
