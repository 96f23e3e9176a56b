"""The ops endpoints, JSON logs and storage settings, without services: a real HTTP server on a free port."""

from __future__ import annotations

import io
import logging
import logging.config
import time

import orjson
import pytest

from hazardwatch import logs
from hazardwatch.config import ConfigError, load_settings, ops_port
from hazardwatch.influx import LineProtocol
from hazardwatch.metrics import BridgeMetrics
from hazardwatch.ops import Ops
from hazardwatch.storage import downsample_flux, layout
from tests.probe import get, samples


@pytest.fixture()
def served():
    m = BridgeMetrics()
    ops = Ops("bridge", m.registry, checks=("mqtt", "kafka"), stall_s=0.5)
    port = ops.serve("127.0.0.1", 0)
    yield ops, m, f"http://127.0.0.1:{port}"
    ops.close()


def test_readiness_waits_for_every_check_and_names_the_failing_ones(served):
    ops, _, url = served
    code, body = get(f"{url}/readyz")
    assert code == 503 and set(orjson.loads(body)["failing"]) == {"mqtt", "kafka"}
    ops.ready("kafka")
    ops.ready("mqtt", False, "connect refused: bad password")
    code, body = get(f"{url}/readyz")
    assert code == 503 and orjson.loads(body)["failing"] == {"mqtt": "connect refused: bad password"}
    ops.ready("mqtt")
    code, body = get(f"{url}/readyz")
    assert code == 200 and orjson.loads(body) == {"service": "bridge", "ready": True, "failing": {}}


def test_liveness_fails_when_the_event_loop_stops_beating(served):
    ops, _, url = served
    ops.beat()
    assert get(f"{url}/healthz")[0] == 200
    time.sleep(0.7)  # stall_s is 0.5 here: the HTTP thread still answers, but the loop has gone quiet
    code, body = get(f"{url}/healthz")
    assert code == 503 and orjson.loads(body)["status"] == "stalled"
    ops.ready("mqtt")
    ops.ready("kafka")
    assert orjson.loads(get(f"{url}/readyz")[1])["failing"] == {"event_loop": "stalled"}
    ops.beat()
    assert get(f"{url}/healthz")[0] == 200


def test_metrics_page_is_prometheus_text_with_the_counters_moved(served):
    _, m, url = served
    m.readings_in.labels("E01").inc(7)
    m.dead_letters.labels("malformed_json").inc()
    m.batch_readings.observe(120)
    code, body = get(f"{url}/metrics")
    assert code == 200
    got = samples(body.decode())
    assert got[("hw_readings_in_total", (("enterprise", "E01"),))] == 7
    assert got[("hw_dead_letters_total", (("reason", "malformed_json"),))] == 1
    assert got[("hw_bridge_batch_readings_sum", ())] == 120
    assert get(f"{url}/nothing")[0] == 404


def test_json_log_lines_carry_service_level_and_structured_fields(monkeypatch):
    monkeypatch.setenv("HW_LOG_FORMAT", "json")
    cfg = logs.dict_config("bridge")
    stream = io.StringIO()
    logging.config.dictConfig(cfg)
    try:
        own = logging.getLogger("hazardwatch")
        own.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        logs.get_logger("bridge").info("bridge: stats 临江", extra={"stats": {"accepted": 3}})
        doc = orjson.loads(stream.getvalue().splitlines()[-1])
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "loggers": {"hazardwatch": {"handlers": [], "propagate": True}}})
    assert doc["service"] == "bridge" and doc["level"] == "info" and doc["logger"] == "hazardwatch.bridge"
    assert doc["msg"] == "bridge: stats 临江" and doc["stats"] == {"accepted": 3} and doc["ts"].endswith("Z")


def test_bad_settings_name_the_variable_and_the_fix(monkeypatch):
    monkeypatch.setenv("HW_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigError, match="HW_LOG_FORMAT"):
        logs.log_format()
    monkeypatch.setenv("HW_OPS_PORT", "metrics")
    with pytest.raises(ConfigError, match="HW_OPS_PORT"):
        ops_port(9101)
    monkeypatch.setenv("HW_INFLUX_RAW_DAYS", "30")
    with pytest.raises(ConfigError, match=r"HW_INFLUX_RAW_DAYS=30 .*at least 90"):
        layout(load_settings())
    monkeypatch.setenv("HW_INFLUX_RAW_DAYS", "0")  # 0 = keep forever, always allowed
    monkeypatch.setenv("HW_INFLUX_ALARM_DAYS", "365")
    with pytest.raises(ConfigError, match=r"HW_INFLUX_ALARM_DAYS.*730"):
        layout(load_settings())


def test_storage_layout_defaults_meet_the_retention_floor():
    lay = layout(load_settings())
    assert lay.raw_days >= 90 and lay.stats_days >= 730 and lay.alarm_days >= 730
    flux = downsample_flux(load_settings())
    assert f'from(bucket: "{lay.raw}")' in flux and f'to(bucket: "{lay.stats}"' in flux
    assert "date.truncate(t: now(), unit: 5m)" in flux  # whole windows only


def test_alert_events_in_one_millisecond_get_distinct_stable_timestamps(registry):
    lp = LineProtocol(registry)
    base = {"kind": "transition", "source": "S02", "enterprise": "E01", "district": "D01", "alert_id": "a1",
            "ts_ms": 1_800_000_000_000, "actor": "system", "reason": "r", "to_state": "RTN_UNACK"}
    evs = [{**base, "action": "rtn", "event_id": "3ebfca662c19e93a4eee8b84"},
           {**base, "action": "rtn", "event_id": "69196c280cfd77557ec387aa"}]
    lines = lp.alert_events(evs).splitlines()
    stamps = [int(ln.rsplit(" ", 1)[1]) for ln in lines]
    assert len(set(stamps)) == 2 and all(s // 1_000_000 == base["ts_ms"] for s in stamps)
    assert lp.alert_events(evs).splitlines() == lines  # a replay writes the very same points
