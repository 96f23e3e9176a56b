"""The shipped Grafana provisioning files (deploy/grafana) are exactly what the code renders, hold no secret,
and rendering is deterministic."""

from __future__ import annotations

import json

import pytest
import yaml

from hazardwatch.config import PROJECT_ROOT, Settings, load_settings
from hazardwatch.grafana.files import render, rendered
from hazardwatch.registry import Registry

SHIPPED = PROJECT_ROOT / "deploy" / "grafana"


@pytest.fixture()
def default_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the shipped files are rendered with: defaults, whatever this shell exports."""
    for name in ("HW_INFLUX_URL", "HW_INFLUX_ORG", "HW_INFLUX_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    return load_settings()


def test_shipped_files_equal_a_fresh_render(default_settings: Settings, registry: Registry):
    fresh = rendered(default_settings, registry)
    shipped = {p.relative_to(SHIPPED).as_posix(): p.read_text(encoding="utf-8")
               for p in sorted(SHIPPED.rglob("*")) if p.is_file() and p.suffix in (".yaml", ".json")}
    stale = sorted(set(shipped) - set(fresh))
    missing = sorted(set(fresh) - set(shipped))
    changed = sorted(k for k in set(fresh) & set(shipped) if fresh[k] != shipped[k])
    assert not (stale or missing or changed), (
        f"deploy/grafana drifted from the code (stale {stale}, missing {missing}, changed {changed}); "
        "run `hazardwatch grafana render --out deploy/grafana` and commit the result")


def test_rendered_files_hold_no_secret_and_reference_the_token_variable(default_settings: Settings,
                                                                        registry: Registry,
                                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HW_INFLUX_TOKEN", "s3cret-influx-token")
    files = rendered(default_settings, registry)
    assert not any("s3cret" in text for text in files.values())
    ds = yaml.safe_load(files["provisioning/datasources/hazardwatch.yaml"])["datasources"][0]
    assert ds["secureJsonData"] == {"token": "$HW_INFLUX_TOKEN"}
    assert ds["url"] == "http://influxdb:8086" and ds["uid"] == "hw-influxdb"
    assert ds["jsonData"] == {"version": "Flux", "organization": "hazardwatch", "defaultBucket": "hazardwatch",
                              "timeInterval": "5s"}
    providers = yaml.safe_load(files["provisioning/dashboards/hazardwatch.yaml"])["providers"]
    assert [p["folderUid"] for p in providers] == ["hw-city", "hw-d01", "hw-d02", "hw-d03"]
    for p in providers:
        assert p["options"]["path"] == f"/var/lib/grafana/dashboards/{p['folderUid']}"
        assert any(k.startswith(f"dashboards/{p['folderUid']}/") for k in files)


def test_render_url_follows_hw_influx_url(default_settings: Settings, registry: Registry,
                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HW_INFLUX_URL", "http://influx.internal:8086")
    ds = yaml.safe_load(rendered(default_settings, registry)["provisioning/datasources/hazardwatch.yaml"])
    assert ds["datasources"][0]["url"] == "http://influx.internal:8086"


def test_render_is_deterministic_and_removes_dashboards_no_longer_generated(default_settings: Settings,
                                                                            registry: Registry, tmp_path):
    render(default_settings, registry, tmp_path)
    first = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    stale = tmp_path / "dashboards" / "hw-d99" / "hw-d99-overview.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    render(default_settings, registry, tmp_path)
    second = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert first == second and not stale.exists()
    for path, data in second.items():
        if path.suffix == ".json":
            doc = json.loads(data)
            assert json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n" == data.decode()
            assert len(data) < 1 << 20
