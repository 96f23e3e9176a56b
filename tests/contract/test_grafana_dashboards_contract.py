"""Contract tests of the generated dashboards against Grafana 11.3's dashboard model (grafana-foundation-sdk
11.3.0) and our own rules: data source, ids, grid, buckets, variables, annotations, stable uids.

The Flux text is checked for structure only here; ``flux_queries`` hands every query to the integration test
that runs it against the real InfluxDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from hazardwatch.config import Settings, load_settings
from hazardwatch.grafana import DATASOURCE_UID, fluxquery
from hazardwatch.grafana.dashboards import DashboardSpec, build, flux_queries
from hazardwatch.grafana.flux import Buckets
from hazardwatch.grafana.naming import scopes
from hazardwatch.registry import Registry
from tests.conftest import EXAMPLE

BUILTIN_VARS = {"__data", "__url_time_range", "__all"}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    """Module-scoped (the root fixture is per test): the dashboards are built once for all tests here."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HW_REGISTRY", str(EXAMPLE))
    yield load_settings()
    mp.undo()


@pytest.fixture(scope="module")
def boards(settings: Settings, registry: Registry) -> list[tuple[DashboardSpec, dict[str, Any]]]:
    return [(spec, spec.to_json()) for spec in build(settings, registry)]


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in doc.get("panels", []):
        out.append(p)
        out += p.get("panels", [])
    return out


def _queries(doc: dict[str, Any]) -> list[str]:
    qs = [t["query"] for p in _panels(doc) for t in p.get("targets", [])]
    qs += [str(v["query"]) for v in doc["templating"].get("list", []) if v.get("type") == "query"]
    qs += [a["target"]["query"] for a in doc["annotations"].get("list", []) if "query" in a.get("target", {})]
    return qs


def _subset(small: Any, big: Any, path: str = "") -> list[str]:
    """Where ``small`` is not contained in ``big`` (the SDK may add defaults when decoding, never drop)."""
    if isinstance(small, dict):
        if not isinstance(big, dict):
            return [path]
        return [d for k, v in small.items() for d in ([f"{path}/{k}"] if k not in big else _subset(v, big[k],
                                                                                                    f"{path}/{k}"))]
    if isinstance(small, list):
        if not isinstance(big, list) or len(big) != len(small):
            return [path]
        return [d for i, (a, b) in enumerate(zip(small, big, strict=True)) for d in _subset(a, b, f"{path}[{i}]")]
    return [] if small == big else [path]


def test_contract_dashboards_round_trip_through_the_sdk_model(boards):
    register_default_plugins()
    fluxquery.register()
    for spec, doc in boards:
        model = Dashboard.from_json(doc)
        back = json.loads(json.dumps(model, cls=JSONEncoder))
        decoded_targets = [t for p in (model.panels or []) for t in (getattr(p, "targets", None) or [])]
        assert decoded_targets and all(isinstance(t, fluxquery.FluxQuery) for t in decoded_targets), spec.uid
        # The SDK types annotation targets as the built-in Grafana target; ours carry {refId, query}.
        ann = [a.pop("target") for a in doc["annotations"].get("list", [])]
        for a in back["annotations"].get("list", []):
            a.pop("target", None)
        try:
            assert _subset(doc, back) == [], f"{spec.uid}: lost in the SDK round trip"
        finally:
            for a, t in zip(doc["annotations"].get("list", []), ann, strict=True):
                a["target"] = t


def test_contract_every_panel_uses_the_influxdb_datasource_with_unique_ids_and_a_grid(boards):
    for spec, doc in boards:
        panels = _panels(doc)
        assert panels, spec.uid
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{spec.uid}: duplicate panel ids {ids}"
        cells: set[tuple[int, int]] = set()
        for p in panels:
            assert p["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, (spec.uid, p["title"])
            for t in p.get("targets", []):
                assert t["datasource"]["uid"] == DATASOURCE_UID and t["refId"] and t["query"].strip()
            g = p["gridPos"]
            assert g["w"] > 0 and g["h"] > 0 and 0 <= g["x"] and g["x"] + g["w"] <= 24, (spec.uid, p["title"], g)
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{spec.uid}: panel {p['title']!r} overlaps another"
            cells |= mine
            assert CJK.search(p["title"]) and re.search(r"[A-Za-z]{3}", p["title"]), f"bilingual: {p['title']}"


def test_contract_flux_queries_are_well_formed_and_name_existing_buckets(boards, settings):
    buckets = set(Buckets.of(settings).names())
    for spec, doc in boards:
        defined = {v["name"] for v in doc["templating"].get("list", [])} | BUILTIN_VARS
        for q in _queries(doc):
            named = set(re.findall(r'from\(bucket: "([^"]+)"\)', q))
            assert named <= buckets, f"{spec.uid}: unknown bucket {named - buckets}"
            assert named or "array.from(" in q, f"{spec.uid}: a query reads nothing"
            for pkg in ("array", "dict", "join"):
                assert (f"{pkg}." in q) == (f'import "{pkg}"' in q), f"{spec.uid}: import of {pkg}"
            stripped = re.sub(r'"(?:\\.|[^"\\])*"', '""', q)  # brackets inside strings do not count
            for o, c in ("()", "[]", "{}"):
                assert stripped.count(o) == stripped.count(c), f"{spec.uid}: unbalanced {o}{c}"
            used = {m.split(".")[0].split(":")[0] for m in re.findall(r"\$\{([^}]+)\}", q)}
            assert used <= defined, f"{spec.uid}: undefined variables {used - defined}"
            assert "range(start: v.timeRangeStart" in q or "range(start: -" in q or "array.from" in q


def test_contract_source_dashboards_have_the_source_variable_and_annotations(boards, registry):
    by_uid = {spec.uid: doc for spec, doc in boards}
    for scope in scopes(registry):
        doc = by_uid[scope.uid("source-detail")]
        variables = {v["name"]: v for v in doc["templating"]["list"]}
        assert variables["source"]["type"] == "custom"
        assert [o["value"] for o in variables["source"]["options"]] == list(scope.source_ids)
        assert variables["kind"]["type"] == "query" and variables["kind"]["includeAll"] is True
        repeated = [p for p in doc["panels"] if p.get("repeat") == "kind"]
        assert len(repeated) == 1
        names = {o["matcher"]["options"] for o in repeated[0]["fieldConfig"]["overrides"]}
        assert names == {x for s in scope.source_ids for x in registry.sources[s].sensors}
        annotations = doc["annotations"]["list"]
        assert len(annotations) >= 6
        for a in annotations:
            assert a["datasource"]["uid"] == DATASOURCE_UID and a["enable"] is True and a["iconColor"]
            assert '"${source}"' in a["target"]["query"] and a["target"]["refId"]


def test_contract_uids_are_stable_and_every_scope_has_its_folder(boards, settings, registry):
    again = {spec.uid: spec.to_json() for spec in build(settings, registry)}
    assert {spec.uid: doc for spec, doc in boards} == again, "the same registry must give the same dashboards"
    folders = {s.folder_uid for s in scopes(registry)}
    assert folders == {"hw-city", "hw-d01", "hw-d02", "hw-d03"}
    for spec, doc in boards:
        assert re.fullmatch(r"hw-[a-z0-9-]{1,37}", spec.uid) and doc["uid"] == spec.uid
        assert spec.folder_uid in folders and CJK.search(doc["title"])
        assert len(json.dumps(doc, ensure_ascii=False).encode()) < 1 << 20
    overview = next(doc for spec, doc in boards if spec.uid == "hw-city-overview")
    assert overview["refresh"] == "10s" and overview["timezone"] == "Asia/Shanghai"


def test_contract_flux_queries_lists_every_query_with_macros_substituted(boards, settings, registry):
    listed = flux_queries(settings, registry, {"${source}": "S03"})
    uids = {spec.uid for spec, _ in boards}
    assert {uid for uid, _, _ in listed} == uids
    for uid, title, text in listed:
        assert title and "v.timeRange" not in text and "v.windowPeriod" not in text, (uid, title)
        assert "${source}" not in text and "${kind}" not in text, (uid, title)
    kinds = {registry.sensors[x].kind for x in registry.sources["S03"].sensors}
    trends = [t for uid, t, _ in listed if uid == "hw-source-detail" and "trend" in t]
    assert len(trends) == len(kinds)
    n_targets = sum(len(p.get("targets", [])) for _, doc in boards for p in _panels(doc))
    assert len(listed) >= n_targets
