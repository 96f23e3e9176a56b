"""InfluxDB retention and downsampling on the real InfluxDB: the buckets carry the legal retention, and the
5-minute task's statistics equal those computed from the raw readings it read."""

from __future__ import annotations

import os
import time
import uuid

import numpy as np
import pytest
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from hazardwatch.config import Settings, load_settings
from hazardwatch.storage import DAY_S, downsample_flux, ensure_storage, layout, task_name

pytestmark = pytest.mark.integration
WINDOW_MS = 300_000


@pytest.fixture()
def storage_settings(base_settings: Settings):
    run = "t" + uuid.uuid4().hex[:8]
    os.environ["HW_INFLUX_BUCKET"] = run
    try:
        s = load_settings()
    finally:
        os.environ.pop("HW_INFLUX_BUCKET")
    yield s
    with InfluxDBClient(url=s.influx_url, token=s.influx_token(), org=s.influx_org) as c:
        for t in c.tasks_api().find_tasks(name=task_name(s)):
            c.tasks_api().delete_task(t.id)
        lay = layout(s)
        for name in (lay.raw, lay.stats, lay.alarms):
            b = c.buckets_api().find_bucket_by_name(name)
            if b:
                c.buckets_api().delete_bucket(b)


def test_buckets_get_their_retention_and_a_second_run_changes_nothing(storage_settings: Settings):
    s = storage_settings
    first = ensure_storage(s)
    lay = layout(s)
    assert any(f"created bucket {lay.alarms}" in line for line in first), first
    with InfluxDBClient(url=s.influx_url, token=s.influx_token(), org=s.influx_org) as c:
        keep = {name: c.buckets_api().find_bucket_by_name(name).retention_rules[0].every_seconds
                for name in (lay.raw, lay.stats, lay.alarms)}
        tasks = c.tasks_api().find_tasks(name=task_name(s))
    assert keep[lay.raw] >= 90 * DAY_S
    assert keep[lay.stats] >= 730 * DAY_S and keep[lay.alarms] >= 730 * DAY_S
    assert len(tasks) == 1 and tasks[0].status == "active" and tasks[0].every == "5m"
    assert ensure_storage(s) == [f"task {task_name(s)} up to date"]


def _run_task(c: InfluxDBClient, task_id: str, timeout: float = 60) -> None:
    run = c.tasks_api().run_manually(task_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = c.tasks_api().get_run(task_id, run.id)
        if got.status == "success":
            return
        if got.status == "failed":
            logs = c.tasks_api().get_run_logs(task_id, run.id)
            raise AssertionError(f"downsampling task failed: {[lg.message for lg in logs]}")
        time.sleep(0.5)
    raise AssertionError("downsampling task did not finish in time")


def test_downsampling_task_writes_5_minute_statistics_of_the_raw_readings(storage_settings: Settings):
    s = storage_settings
    ensure_storage(s)
    lay = layout(s)
    rng = np.random.default_rng(7)
    now_ms = int(time.time() * 1000)
    stop = now_ms // WINDOW_MS * WINDOW_MS  # the task only writes whole windows, ending at the last boundary
    start = stop - 3 * WINDOW_MS
    ts = np.arange(start - 60_000, now_ms, 5_000)  # a minute before the first window and into the open one
    series = {"S01-T01-LT": 50 + rng.normal(0, 2, ts.size), "S03-GC01": np.abs(rng.normal(3, 1, ts.size))}
    lines = [f"reading,district=D01,enterprise=E01,source={sensor[:3]},sensor={sensor},kind=x v={v!r},q=0i {t}"
             for sensor, vals in series.items() for t, v in zip(ts.tolist(), vals.tolist(), strict=True)]
    with InfluxDBClient(url=s.influx_url, token=s.influx_token(), org=s.influx_org) as c:
        c.write_api(write_options=SYNCHRONOUS).write(lay.raw, s.influx_org, "\n".join(lines),
                                                     write_precision=WritePrecision.MS)
        task = c.tasks_api().find_tasks(name=task_name(s))[0]
        assert task.flux.strip() == downsample_flux(s).strip()
        _run_task(c, task.id)
        rows = c.query_api().query(
            f'from(bucket: "{lay.stats}") |> range(start: 0) '
            f'|> filter(fn: (r) => r._measurement == "reading_5m") '
            f'|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")', org=s.influx_org)
    got = {(r["sensor"], int(r.get_time().timestamp() * 1000)): r for table in rows for r in table.records}
    # Windows (end time) the task must have written: every whole window inside its 20-minute look-back.
    expected = {}
    for sensor, vals in series.items():
        for end in range(stop - 4 * WINDOW_MS + WINDOW_MS, stop + 1, WINDOW_MS):
            sel = (ts >= end - WINDOW_MS) & (ts < end)
            if sel.any():
                expected[(sensor, end)] = vals[sel]
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for key, vals in expected.items():
        r = got[key]
        assert r["n"] == vals.size
        assert r["mean"] == pytest.approx(float(vals.mean()), rel=1e-12)
        assert r["min"] == pytest.approx(float(vals.min())) and r["max"] == pytest.approx(float(vals.max()))
        assert r["district"] == "D01" and r["enterprise"] == "E01"
