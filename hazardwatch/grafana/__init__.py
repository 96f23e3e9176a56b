"""Grafana for the duty officers' wall screens: dashboards built from the registry, provisioned by code or files.

Modules, each named for what it does:
- ``naming``: stable uids and bilingual titles (derived from registry ids, never random, so re-provisioning
  updates in place);
- ``labels``: Chinese + English labels and the level colours shared by every dashboard;
- ``fluxquery``: a typed Flux dataquery for the grafana-foundation-sdk (the SDK ships none for InfluxDB);
- ``flux``: Flux text helpers (literals, safe joins, registry tables), ``queries`` (alerts, KPIs) and
  ``sensor_queries`` (trends, annotations, sensor health): Flux text builders, pure functions;
- ``panels`` / ``dashboards``: typed dashboard builders; ``dashboards.flux_queries`` lists every query;
- ``datasource``: the InfluxDB data source, for the HTTP API and for file provisioning;
- ``provision``: a live Grafana over its HTTP API with grafana-client;
- ``files``: file provisioning (``render``);
- ``cli``: ``render_cmd`` / ``provision_cmd`` for ``hazardwatch grafana render|provision``.

Nothing heavy is imported here, so ``import hazardwatch.grafana`` stays cheap for the CLI.
"""

from __future__ import annotations

GRAFANA_VERSION = "11.3.1"  # image grafana/grafana-oss:11.3.1; the builders are grafana-foundation-sdk 11.3.0
SDK_VERSION = "11.3.0"
DATASOURCE_UID = "hw-influxdb"
DATASOURCE_TYPE = "influxdb"
