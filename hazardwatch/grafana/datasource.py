"""The InfluxDB data source Grafana queries, one definition for the HTTP API and for file provisioning.

Flux mode (jsonData.version "Flux") with organization and default bucket from the settings; the token goes
in secureJsonData (Grafana encrypts it, and never returns it). The uid is fixed (``hw-influxdb``): every
panel names it, so re-provisioning updates the same data source and dashboards keep working.
"""

from __future__ import annotations

import os
from typing import Any

from hazardwatch.config import ConfigError, Settings
from hazardwatch.grafana import DATASOURCE_TYPE, DATASOURCE_UID
from hazardwatch.registry import Registry

NAME = "hazardwatch InfluxDB"
# In docker-compose / Kubernetes Grafana reaches InfluxDB by its service name.
FILE_DEFAULT_URL = "http://influxdb:8086"
FILE_TOKEN = "$HW_INFLUX_TOKEN"  # expanded by Grafana from its environment when it reads the file


def min_interval(registry: Registry) -> str:
    """The fastest sensor period: Grafana never aggregates finer than this ($__interval / v.windowPeriod)."""
    fastest = min((s.period_s for s in registry.sensors.values()), default=10.0)
    return f"{max(1, int(fastest))}s"


def json_data(settings: Settings, registry: Registry) -> dict[str, Any]:
    return {"version": "Flux", "organization": settings.influx_org, "defaultBucket": settings.influx_bucket,
            "timeInterval": min_interval(registry)}


def api_body(settings: Settings, registry: Registry, url: str, token: str) -> dict[str, Any]:
    """Body for POST /api/datasources and PUT /api/datasources/uid/:uid (AddDataSourceCommand /
    UpdateDataSourceCommand: name, type, access required)."""
    return {"uid": DATASOURCE_UID, "name": NAME, "type": DATASOURCE_TYPE, "access": "proxy", "url": url,
            "isDefault": False, "basicAuth": False, "jsonData": json_data(settings, registry),
            "secureJsonData": {"token": token}}


def provisioning_doc(settings: Settings, registry: Registry, url: str) -> dict[str, Any]:
    """deploy/grafana/provisioning/datasources/hazardwatch.yaml: no secret, only the env reference."""
    return {"apiVersion": 1, "datasources": [{
        "uid": DATASOURCE_UID, "name": NAME, "type": DATASOURCE_TYPE, "access": "proxy", "url": url,
        "isDefault": False, "editable": False, "jsonData": json_data(settings, registry),
        "secureJsonData": {"token": FILE_TOKEN}}]}


def file_url(env: dict[str, str] | None = None) -> str:
    """URL written into the provisioning file: HW_INFLUX_URL at render time, else the compose service name.
    (Grafana's provisioning expands $VAR but has no default syntax, so the default is decided here.)"""
    env = os.environ if env is None else env
    return env.get("HW_INFLUX_URL") or FILE_DEFAULT_URL


def api_url(settings: Settings, env: dict[str, str] | None = None) -> str:
    """URL Grafana (not us) uses to reach InfluxDB when provisioning over the API: HW_GRAFANA_INFLUX_URL, else
    HW_INFLUX_URL, else the settings' InfluxDB address (right when Grafana runs on the same host)."""
    env = os.environ if env is None else env
    return env.get("HW_GRAFANA_INFLUX_URL") or env.get("HW_INFLUX_URL") or settings.influx_url


def influx_token(settings: Settings, env: dict[str, str] | None = None) -> str:
    """The token Grafana stores: HW_GRAFANA_INFLUX_TOKEN or HW_GRAFANA_INFLUX_TOKEN_FILE (preferably a
    read-only token), else the service token (HW_INFLUX_TOKEN / .hw/secrets/influx-token)."""
    env = os.environ if env is None else env
    if env.get("HW_GRAFANA_INFLUX_TOKEN"):
        return env["HW_GRAFANA_INFLUX_TOKEN"]
    path = env.get("HW_GRAFANA_INFLUX_TOKEN_FILE")
    if path:
        try:
            return open(path, encoding="utf-8").read().strip()
        except OSError as exc:
            raise ConfigError(f"HW_GRAFANA_INFLUX_TOKEN_FILE={path}: cannot read it ({exc.strerror}); "
                              "point it at a file holding the InfluxDB token Grafana should use") from None
    return settings.influx_token()
