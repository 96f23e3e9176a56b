"""Fixtures for the Grafana contract tests: a stand-in Grafana 11.3 on 127.0.0.1 and settings with the InfluxDB
token Grafana is given taken from the environment (no .hw/secrets needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hazardwatch.config import Settings
from tests.contract.grafana_standin import GrafanaStandIn

TOKEN = "contract-token"
INFLUX_TOKEN = "influx-token-for-grafana"


@pytest.fixture()
def standin() -> Iterator[GrafanaStandIn]:
    with GrafanaStandIn(token=TOKEN) as g:
        yield g


@pytest.fixture()
def grafana_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HW_GRAFANA_INFLUX_TOKEN", INFLUX_TOKEN)
    for name in ("HW_GRAFANA_INFLUX_URL", "HW_INFLUX_URL", "HW_GRAFANA_TOKEN", "HW_GRAFANA_TOKEN_FILE",
                 "HW_GRAFANA_USER", "HW_GRAFANA_PASSWORD", "HW_GRAFANA_PASSWORD_FILE", "HW_GRAFANA_URL"):
        monkeypatch.delenv(name, raising=False)
    return settings
