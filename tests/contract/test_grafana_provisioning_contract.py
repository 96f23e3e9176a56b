"""Contract tests: `hazardwatch grafana provision` against a stand-in for Grafana 11.3's HTTP API.

Grafana cannot run on this machine, so these check our requests against Grafana's documented API (the spec in
grafana_11.3_api.yaml, enforced by the stand-in) and our handling of its documented replies: the first run
creates, the second updates in place, refused credentials and an unreachable server give a clear error.
"""

from __future__ import annotations

import argparse
import socket
from collections import Counter

import pytest
from grafana_client.client import GrafanaClientError

from hazardwatch.config import Settings
from hazardwatch.grafana import DATASOURCE_UID
from hazardwatch.grafana.cli import provision_cmd
from hazardwatch.grafana.naming import scopes
from hazardwatch.grafana.provision import ProvisionError, connect, provision
from hazardwatch.registry import Registry
from tests.contract.conftest import INFLUX_TOKEN, TOKEN
from tests.contract.grafana_standin import GrafanaStandIn


def _calls(g: GrafanaStandIn, start: int = 0) -> Counter[str]:
    return Counter(f"{r.method} {r.endpoint}" for r in g.requests[start:])


def _run(g: GrafanaStandIn, settings: Settings, registry: Registry, credential: str | tuple[str, str] = TOKEN):
    return provision(settings, registry, connect(g.url, credential), influx_url="http://influxdb:8086",
                     say=lambda _line: None)


def test_contract_first_run_creates_datasource_folders_and_dashboards(standin, grafana_settings, registry):
    report = _run(standin, grafana_settings, registry)
    assert standin.violations == []
    n_folders = len(scopes(registry))
    n_dash = 3 * n_folders
    assert standin.requests[0].endpoint == "health", "health is checked before anything else"
    calls = _calls(standin)
    assert calls["POST datasource_create"] == 1 and calls["PUT datasource_update_by_uid"] == 0
    assert calls["POST folder_create"] == n_folders and calls["PUT folder_update"] == 0
    assert calls["POST dashboard_save"] == n_dash
    assert len(report.created) == 1 + n_folders + n_dash and report.updated == []

    ds = standin.state.datasources[DATASOURCE_UID]
    assert ds["type"] == "influxdb" and ds["access"] == "proxy" and ds["url"] == "http://influxdb:8086"
    assert ds["jsonData"]["version"] == "Flux"
    assert ds["jsonData"]["organization"] == grafana_settings.influx_org
    assert ds["jsonData"]["defaultBucket"] == grafana_settings.influx_bucket
    assert ds["secureJsonData"] == {"token": INFLUX_TOKEN}
    assert set(standin.state.folders) == {s.folder_uid for s in scopes(registry)}
    assert standin.state.folders["hw-d01"]["title"] == "东港区 Donggang District"
    for uid, saved in standin.state.dashboards.items():
        assert saved["dashboard"]["version"] == 1
        assert saved["folderUid"] == ("hw-city" if uid.startswith(("hw-city", "hw-source", "hw-sensor"))
                                      else uid[:6])
        assert saved["message"].startswith("hazardwatch grafana provision")
    saves = [r.body for r in standin.requests if r.endpoint == "dashboard_save"]
    assert all(b["overwrite"] is True and b["folderUid"] for b in saves)
    assert all("id" not in b["dashboard"] or b["dashboard"]["id"] is None for b in saves)


def test_contract_second_run_updates_in_place_and_creates_nothing(standin, grafana_settings, registry):
    _run(standin, grafana_settings, registry)
    counts = (len(standin.state.datasources), len(standin.state.folders), len(standin.state.dashboards))
    ids = {uid: d["dashboard"]["id"] for uid, d in standin.state.dashboards.items()}
    start = len(standin.requests)
    report = _run(standin, grafana_settings, registry)
    assert standin.violations == []
    calls = _calls(standin, start)
    assert calls["POST datasource_create"] == 0 and calls["POST folder_create"] == 0, "second run must not create"
    assert calls["PUT datasource_update_by_uid"] == 1
    assert calls["PUT folder_update"] == len(scopes(registry))
    assert calls["POST dashboard_save"] == counts[2]
    folder_puts = [r for r in standin.requests[start:] if r.endpoint == "folder_update"]
    assert all(r.body["overwrite"] is True and r.body["title"] for r in folder_puts)
    ds_puts = [r for r in standin.requests[start:] if r.endpoint == "datasource_update_by_uid"]
    assert ds_puts[0].path == f"/api/datasources/uid/{DATASOURCE_UID}"
    assert (len(standin.state.datasources), len(standin.state.folders), len(standin.state.dashboards)) == counts
    for uid, saved in standin.state.dashboards.items():
        assert saved["dashboard"]["version"] == 2, f"{uid} saved over the same uid bumps the version"
        assert saved["dashboard"]["id"] == ids[uid]
    assert report.created == [] and len(report.updated) == 1 + counts[1] + counts[2]
    assert standin.state.datasources[DATASOURCE_UID]["version"] == 2


def test_contract_refused_credentials_give_a_clear_error(standin, grafana_settings, registry):
    with pytest.raises(ProvisionError) as err:
        _run(standin, grafana_settings, registry, credential="wrong-token")
    msg = str(err.value)
    assert "refused the credentials (401)" in msg and "HW_GRAFANA_TOKEN" in msg and standin.url in msg
    assert standin.state.datasources == {} and standin.violations == []


def test_contract_basic_auth_is_accepted(standin, grafana_settings, registry):
    _run(standin, grafana_settings, registry, credential=(standin.user, standin.password))
    assert standin.violations == []
    assert all((r.authorization or "").startswith("Basic ") for r in standin.requests if r.endpoint != "health")


def test_contract_viewer_role_is_told_to_use_an_admin_account(grafana_settings, registry):
    with GrafanaStandIn(token=TOKEN, role="Viewer") as g, pytest.raises(ProvisionError) as err:
        _run(g, grafana_settings, registry)
    assert "403" in str(err.value) and "Admin role" in str(err.value)


def test_contract_unreachable_grafana_gives_a_clear_error(grafana_settings, registry):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = connect(f"http://127.0.0.1:{port}", TOKEN, timeout=2.0)
    with pytest.raises(ProvisionError) as err:
        provision(grafana_settings, registry, api, say=lambda _line: None)
    assert "not reachable" in str(err.value) and "HW_GRAFANA_URL" in str(err.value)


def test_contract_provision_cmd_reads_credentials_from_a_file(standin, grafana_settings, registry, tmp_path,
                                                              monkeypatch, capsys):
    token_file = tmp_path / "grafana-token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("HW_GRAFANA_TOKEN_FILE", str(token_file))
    assert provision_cmd(argparse.Namespace(url=standin.url, influx_url=None)) == 0
    assert standin.violations == [] and len(standin.state.dashboards) == 3 * len(scopes(registry))
    out = capsys.readouterr().out
    assert "created" in out and TOKEN not in out
    monkeypatch.setenv("HW_GRAFANA_TOKEN_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("HW_GRAFANA_TOKEN", "wrong")
    assert provision_cmd(argparse.Namespace(url=standin.url, influx_url=None)) == 1
    assert "refused the credentials" in capsys.readouterr().err


def test_contract_standin_enforces_the_spec(standin):
    """The stand-in must fail what Grafana 11.3 would refuse, or the tests above prove nothing."""
    api = connect(standin.url, TOKEN)
    with pytest.raises(GrafanaClientError):
        api.client.POST("/folders", json={"uid": "x"})  # no title
    with pytest.raises(GrafanaClientError):
        api.client.PUT("/folders/x", json={"title": "t"})  # neither version nor overwrite
    with pytest.raises(GrafanaClientError):
        api.client.POST("/dashboards/db", json={"folderUid": "x"})  # no dashboard
    with pytest.raises(GrafanaClientError):
        api.client.GET("/dashboards/db/old-slug")  # not in the spec
    assert len(standin.violations) == 4
    assert "missing required field(s) ['title']" in standin.violations[0]
    assert "not in the Grafana 11.3 API spec" in standin.violations[3]
