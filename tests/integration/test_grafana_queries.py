"""Every Flux query of the generated Grafana dashboards, run on the real InfluxDB against data the real pipeline
wrote: none may fail, and the wall screen's key panels must show what happened (Grafana itself cannot run here;
tests/contract checks its HTTP API and the dashboards' JSON)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from hazardwatch.grafana.dashboards import flux_queries
from hazardwatch.registry import load_registry

pytestmark = pytest.mark.integration


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_dashboard_query_runs_on_pipeline_data_and_shows_the_alert(stack_factory):
    st = stack_factory()
    st.bridge()
    st.worker()
    reg = load_registry(st.s.registry_path)
    gw = st.publisher("e01")
    now = time.time()
    fresh = [s for s in reg.sources["S01"].sensors if s != "S01-T01-LT"]
    def quiet(s: str) -> float:  # a normal reading: clean air for gas detectors, mid-range for the rest
        lo, hi = reg.sensors[s].range
        return lo if reg.sensors[s].kind.startswith("gas") else lo + 0.4 * (hi - lo)

    for k in range(3):
        st.publish(gw, "E01/S01", {"ts": now - 20 + k * 5, "readings": [{"s": s, "v": quiet(s)} for s in fresh]})
    st.publish(gw, "E01/S01/S01-T01-LT", {"ts": now, "v": 95.2})
    alert = st.wait_for("alert record", lambda: [a for a in st.read_topic("alerts", 1.0)
                                                 if a["sensor"] == "S01-T01-LT"], timeout=60)[0]
    time.sleep(3)  # let the detectors settle: the expected map colour comes from the alerts topic below
    records = st.read_topic("alerts", 1.0)
    st.wait_for("alerts stored", lambda: st.flux(
        f'from(bucket: "{st.s.influx_bucket}_alarms") |> range(start: -1h) |> filter(fn: (r) => '
        f'r._measurement == "alert" and r._field == "level") |> group() |> count()')[0]["_value"] == len(records),
        timeout=30)
    # The oracle, from Kafka rather than InfluxDB: S01's active alerts (latest record of each still raised).
    latest: dict[str, dict] = {}
    for rec in sorted(records, key=lambda r: r["ts_ms"]):
        latest[rec["alert_id"]] = rec
    active = [r for r in latest.values() if r["source"] == "S01" and r["state"] in ("raise", "realarm", "rtn")]

    # A fresh round just before the queries: stale means older than 3 periods, and a gas detector's is 5 s.
    # Readings are stored to the millisecond, so look for them from a millisecond before t_last.
    t_last = time.time()
    st.publish(gw, "E01/S01", {"ts": t_last, "readings": [{"s": s, "v": quiet(s)} for s in fresh]})
    st.wait_for("fresh round stored", lambda: st.flux(
        f'from(bucket: "{st.s.influx_bucket}") |> range(start: -1m) |> filter(fn: (r) => r._field == "v" and '
        f'r._time >= time(v: {(int(t_last * 1000) - 1) * 1_000_000}))'), timeout=10, every=0.2)
    subs = {"v.timeRangeStart": _iso(now - 3600), "v.timeRangeStop": _iso(time.time() + 60),
            "v.windowPeriod": "10s", "${source}": "S01", "${kind}": "level"}
    results = {}
    failures = []
    with st.influx() as c:
        api = c.query_api()
        for uid, title, flux in flux_queries(st.s, reg, subs):
            try:
                results[(uid, title)] = [r.values for t in api.query(flux) for r in t.records]
            except Exception as exc:  # collect all, so one run shows every broken panel
                failures.append(f"{uid} / {title}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)
    assert len(results) >= 50

    queue = next(rows for (uid, title), rows in results.items()
                 if uid == "hw-city-overview" and "Active alert queue" in title)
    assert any(alert["alert_id"] in map(str, r.values()) or r.get("sensor") == "S01-T01-LT" for r in queue), queue
    geo = next(rows for (uid, title), rows in results.items()
               if uid == "hw-city-overview" and "Hazard sources" in title)
    s01 = [r for r in geo if r.get("source") == "S01"]
    assert len(s01) == 1 and s01[0]["alerts"] == len(active), (s01, active)
    assert s01[0]["level"] == min(r["level"] for r in active)  # 1 = red is the highest
    assert {r.get("source") for r in geo} >= set(reg.sources)  # every source on the map, alerts or not
    stale = next(rows for (uid, title), rows in results.items()
                 if uid == "hw-sensor-health" and title.endswith("Stale sensors") and "测点" in title)
    stale_ids = {r.get("sensor") for r in stale}
    # Sensors polled every 30 s or slower may not be stale 90 s after their last reading, even on a busy machine.
    slow = {s for s in fresh if reg.sensors[s].period_s >= 30}
    assert slow and not stale_ids & slow, stale_ids & slow
    assert "S02-T01-LT" in stale_ids  # never reported in this sandbox
