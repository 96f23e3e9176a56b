"""The shipped configs agree with the code: ACL with the registry, compose with the local service versions."""

from __future__ import annotations

import re

import yaml

from hazardwatch import services
from hazardwatch.config import PROJECT_ROOT, ConfigError, load_settings
from hazardwatch.influx import LineProtocol
from hazardwatch.model import ReadingBatch

DEPLOY = PROJECT_ROOT / "deploy"


def test_shipped_acl_matches_the_example_registry(settings):
    assert (DEPLOY / "mosquitto" / "acl").read_text().strip() == services.render_acl(settings).strip()


def test_every_enterprise_may_publish_only_under_its_own_prefix(settings, registry):
    acl = services.render_acl(settings)
    for e in registry.enterprises.values():
        block = acl.split(f"user {e.mqtt_user}\n")[1].split("\n\n")[0]
        assert block.strip() == f"topic write hw/{e.id}/#"
    bridge = acl.split("user hw-bridge\n")[1].split("\n\n")[0]
    assert "write" not in bridge


def test_compose_pins_the_versions_the_local_scripts_run():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    images = {name: svc.get("image", "") for name, svc in compose["services"].items()}
    assert images["kafka"] == f"apache/kafka:{services.KAFKA_VERSION}"
    assert images["influxdb"] == f"influxdb:{services.INFLUXDB_VERSION.lstrip('v')}"
    assert re.fullmatch(r"eclipse-mosquitto:\d+\.\d+\.\d+", images["mosquitto"])
    assert re.fullmatch(r"grafana/grafana-oss:\d+\.\d+\.\d+", images["grafana"])
    assert compose["services"]["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_no_secret_values_in_the_compose_example():
    text = (DEPLOY / "compose" / "env.example").read_text()
    values = [line.split("=", 1)[1] for line in text.splitlines() if "=" in line and not line.startswith("#")]
    assert values and all(v.startswith("change-me") for v in values)


def test_bad_port_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("HW_KAFKA_PORT", "ninety")
    try:
        load_settings()
    except ConfigError as exc:
        assert "HW_KAFKA_PORT" in str(exc) and "integer" in str(exc)
    else:
        raise AssertionError("expected ConfigError")


def test_line_protocol_is_keyed_by_series_and_time(registry):
    import numpy as np

    lp = LineProtocol(registry)
    b = ReadingBatch("S01", "E01", ["S01-T01-LT", "S01-T01-TT"], np.array([1_800_000_000_000, 1_800_000_000_500]),
                     np.array([55.5, 21.0]), np.array([0, 1], dtype=np.int8))
    lines = lp.readings([b]).splitlines()
    assert lines[0] == ("reading,district=D01,enterprise=E01,source=S01,sensor=S01-T01-LT,kind=level "
                        "v=55.5,q=0i 1800000000000")
    assert lines[1].endswith("v=21.0,q=1i 1800000000500")


def test_local_dev_acl_keeps_enterprises_inside_their_own_prefix(settings, registry):
    dev = services.dev_acl(settings)
    for e in registry.enterprises.values():
        assert f"user {e.mqtt_user}\ntopic write hwt/+/{e.id}/#" in dev
    assert "topic write hw/" not in dev
