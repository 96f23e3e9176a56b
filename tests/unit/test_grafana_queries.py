"""Unit tests of the Grafana building blocks: Flux literals, limit bands, uids, credentials, data source body."""

from __future__ import annotations

import pytest

from hazardwatch.config import ConfigError, Settings
from hazardwatch.grafana import datasource
from hazardwatch.grafana.flux import Buckets, any_of, lit, script
from hazardwatch.grafana.labels import LEVEL_COLOURS, grafana_unit, variable_text
from hazardwatch.grafana.naming import check_uid, scopes
from hazardwatch.grafana.panels import limit_thresholds
from hazardwatch.grafana.provision import connect, credential_from_env, grafana_url
from hazardwatch.registry import Limit, Registry, Sensor


def test_flux_string_literals_escape_quotes_backslashes_and_interpolation():
    assert lit('a "b" \\ ${x}\n') == '"a \\"b\\" \\\\ \\${x}\\n"'
    assert lit(3) == "3" and lit(2.5) == "2.5" and lit(True) == "true"
    assert any_of("rule", ["a", "b"]) == '(r.rule == "a" or r.rule == "b")'


def test_script_imports_exactly_the_packages_used():
    text = script('x = dict.fromList(pairs: [])', "array.from(rows: [])")
    assert text.startswith('import "array"\nimport "dict"\n\n') and 'import "join"' not in text


def test_buckets_follow_hw_influx_bucket(settings: Settings):
    assert Buckets.of(settings).names() == (settings.influx_bucket, f"{settings.influx_bucket}_5m",
                                            f"{settings.influx_bucket}_alarms")


def _sensor(*limits: Limit) -> Sensor:
    return Sensor("X-1", "S", "level", "%", 10.0, (0.0, 100.0), limits, "液位", "level", 0)


def test_limit_bands_colour_beyond_each_limit_by_its_level():
    lim = [Limit("LL", 5, 7, 2, "c"), Limit("L", 10, 12, 3, "c"), Limit("H", 90, 88, 3, "c"),
           Limit("HH", 95, 93, 1, "c")]
    steps = limit_thresholds(_sensor(*lim))["steps"]
    assert steps == [{"value": None, "color": LEVEL_COLOURS[2]}, {"value": 5, "color": LEVEL_COLOURS[3]},
                     {"value": 10, "color": "transparent"}, {"value": 90, "color": LEVEL_COLOURS[3]},
                     {"value": 95, "color": LEVEL_COLOURS[1]}]
    assert limit_thresholds(_sensor(Limit("H", 50, 45, 2, "c")))["steps"] == [
        {"value": None, "color": "transparent"}, {"value": 50, "color": LEVEL_COLOURS[2]}]
    assert limit_thresholds(_sensor())["steps"] == [{"value": None, "color": "transparent"}]


def test_every_example_sensor_gets_ascending_threshold_steps(registry: Registry):
    for s in registry.sensors.values():
        values = [st["value"] for st in limit_thresholds(s)["steps"][1:]]
        assert values == sorted(values), s.id


def test_units_and_variable_text():
    assert grafana_unit("%") == "percent" and grafana_unit("%LEL") == "suffix: %LEL"
    assert grafana_unit("m3/h") == "suffix: m³/h"
    assert variable_text("a, b : c") == "a， b：c"


def test_uids_are_checked_and_scopes_cover_the_registry(registry: Registry):
    with pytest.raises(ValueError, match="40"):
        check_uid("hw-" + "x" * 40)
    sc = scopes(registry)
    assert sc[0].district is None and sc[0].uid("overview") == "hw-city-overview"
    assert sc[1].uid("source-detail") == "hw-d01-source-detail"
    assert sorted(s for x in sc[1:] for s in x.source_ids) == sorted(registry.sources)


def test_grafana_credentials_come_from_env_or_files(tmp_path):
    assert credential_from_env({"HW_GRAFANA_TOKEN": "t"}) == "t"
    f = tmp_path / "pw"
    f.write_text("pw\n")
    assert credential_from_env({"HW_GRAFANA_USER": "u", "HW_GRAFANA_PASSWORD_FILE": str(f)}) == ("u", "pw")
    with pytest.raises(ConfigError, match="HW_GRAFANA_TOKEN"):
        credential_from_env({})
    with pytest.raises(ConfigError, match="cannot read"):
        credential_from_env({"HW_GRAFANA_TOKEN_FILE": str(tmp_path / "missing")})
    assert grafana_url({}) == "http://127.0.0.1:3000" and grafana_url({"HW_GRAFANA_URL": "http://g:3000/"}) == \
        "http://g:3000"


def test_connect_keeps_a_sub_path():
    assert connect("https://example.org/grafana", "t").client.url == "https://example.org/grafana/api"
    assert connect("http://127.0.0.1:3000", "t").client.url == "http://127.0.0.1:3000/api"
    with pytest.raises(ConfigError):
        connect("127.0.0.1:3000", "t")


def test_datasource_token_for_grafana(settings: Settings, registry: Registry, tmp_path):
    f = tmp_path / "tok"
    f.write_text("from-file\n")
    assert datasource.influx_token(settings, {"HW_GRAFANA_INFLUX_TOKEN": "env"}) == "env"
    assert datasource.influx_token(settings, {"HW_GRAFANA_INFLUX_TOKEN_FILE": str(f)}) == "from-file"
    body = datasource.api_body(settings, registry, "http://i:8086", "tok")
    assert body["secureJsonData"] == {"token": "tok"} and body["access"] == "proxy" and body["type"] == "influxdb"
    assert datasource.api_url(settings, {}) == settings.influx_url
