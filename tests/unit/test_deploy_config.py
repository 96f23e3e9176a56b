"""The shipped configs agree with the code: ACL with the registry, compose with the local service versions."""

from __future__ import annotations

import json
import re
import subprocess
from importlib.metadata import version

import pytest
import yaml

from hazardwatch import services
from hazardwatch.config import PROJECT_ROOT, ConfigError, load_settings
from hazardwatch.grafana import GRAFANA_VERSION
from hazardwatch.influx import LineProtocol
from hazardwatch.model import ReadingBatch

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
APP_SERVICES = ("init", "bridge", "worker", "console")
OPS = {"bridge": "http://127.0.0.1:9101/readyz", "worker": "http://127.0.0.1:9102/readyz",
       "console": "http://127.0.0.1:8480/healthz"}


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
    assert images["grafana"] == f"grafana/grafana-oss:{GRAFANA_VERSION}"
    assert {images[s] for s in (*APP_SERVICES, "simulator")} == {f"hazardwatch:{version('hazardwatch')}"}
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


# ---- docker-compose: loaded as `docker compose config` loads it, and checked against the contract ----------------
def compose_validate(*args: str) -> subprocess.CompletedProcess[str]:
    """deploy/local/compose-validate.sh: compose-go, the loader of the docker compose CLI (built once, cached)."""
    proc = subprocess.run(["bash", str(DEPLOY / "local" / "compose-validate.sh"), "-f", str(COMPOSE), *args],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode == 3:  # the script's "Go is missing" exit
        pytest.skip(proc.stderr.strip())
    return proc


@pytest.mark.parametrize("profile", [[], ["--profile", "demo"]], ids=["default", "demo"])
def test_compose_file_is_valid_for_docker_compose(profile):
    proc = compose_validate("--env-file", str(DEPLOY / "compose" / "env.example"), "--json", *profile)
    assert proc.returncode == 0, proc.stderr
    project = json.loads(proc.stdout)
    assert ("simulator" in project["services"]) == bool(profile)
    for name in APP_SERVICES:  # anchors and merges resolved as compose resolves them
        env = project["services"][name]["environment"]
        assert env["HW_HOST"] == "0.0.0.0" and env["HW_LOG_FORMAT"] == "json", name


def test_compose_refuses_to_start_without_the_secrets():
    proc = compose_validate()  # no env file: every ${VAR:?} must stop it, naming the variable
    assert proc.returncode == 1
    for var in ("HW_INFLUX_TOKEN", "HW_INFLUX_ADMIN_PASSWORD", "HW_GRAFANA_ADMIN_PASSWORD", "HW_MQTT_PASSWORD_E01"):
        assert f"required variable {var} is missing" in proc.stderr


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_health_checks_every_long_running_service():
    for name, svc in _compose().items():
        if name in ("init", "simulator"):  # one-shot, and the demo load generator
            continue
        test = svc["healthcheck"]["test"]
        assert "curl" not in " ".join(test), f"{name}: the images have no curl"
        if name in OPS:
            assert test[:3] == ["CMD", "python", "-c"] and OPS[name] in test[3], name


def test_compose_init_runs_topics_then_storage_before_the_app():
    svc = _compose()
    assert svc["init"]["command"] == ["hazardwatch topics && hazardwatch storage"]
    for name in ("bridge", "worker", "console"):
        assert svc[name]["depends_on"]["init"] == {"condition": "service_completed_successfully"}
    assert svc["console"]["command"] == ["console", "serve", "--port", "8480"]


def test_compose_grafana_gets_the_rendered_provisioning_and_the_token():
    grafana = _compose()["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert grafana["environment"]["HW_INFLUX_TOKEN"].startswith("${HW_INFLUX_TOKEN:?")


def test_compose_secrets_come_only_from_the_env_file_and_cover_every_mqtt_user(settings):
    for name, svc in _compose().items():
        for var, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN", var):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}.{var} must come from the env file"
        assert "env_file" not in svc, f"{name}: pass only the variables it needs"
    users = [u.split()[0] for u in services.render_acl(settings).split("user ")[1:]]
    wanted = {f"HW_MQTT_PASSWORD_{u.upper().replace('-', '_')}" for u in users}
    assert set(_compose()["mosquitto"]["environment"]) == wanted
    example = (DEPLOY / "compose" / "env.example").read_text()
    assert all(f"\n{var}=" in example for var in wanted)
