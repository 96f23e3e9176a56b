"""The dashboards, built from the registry with grafana-foundation-sdk, one set per scope (city, each district).

Per scope (see naming.py for uids):
- overview: geomap of hazard sources coloured by the highest active level, counts by level / rule / source
  kind, the active-alert queue, ISA-18.2 KPIs per console (alarm rate per 10 min, floods, standing > 24 h,
  priority mix); refresh 10 s for the wall screen;
- source detail: variable ``source`` (registry sources of the scope) and ``kind`` (that source's sensor kinds),
  one trend panel per kind repeated by Grafana, limit bands per sensor from the registry, alert annotations;
- sensor health: offline / stuck / bad quality / out of range / drift alerts and stale sensors (last reading
  older than 3 x period_s).
District folders hold the same three dashboards limited to the district, so Grafana folder permissions scope a
district's staff to its own sources.

``flux_queries`` lists every query with Grafana's macros substituted, for running against a real InfluxDB.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from hazardwatch.config import Settings
from hazardwatch.grafana import panels as P
from hazardwatch.grafana import queries as Q
from hazardwatch.grafana import sensor_queries as S
from hazardwatch.grafana.flux import Buckets, any_of, dictionary
from hazardwatch.grafana.fluxquery import FluxAnnotation, datasource_ref
from hazardwatch.grafana.labels import (
    HEALTH_RULES,
    LEVEL_COLOURS,
    NORMAL_COLOUR,
    RULE_LABELS,
    SENSOR_KIND_LABELS,
    SOURCE_KIND_LABELS,
    level_label,
    variable_text,
)
from hazardwatch.grafana.naming import Scope, scopes
from hazardwatch.registry import Registry

TIMEZONE = "Asia/Shanghai"  # the command centre's clock, whatever the wall-screen PC is set to
WALL_REFRESH = "10s"
TAGS = ["hazardwatch", "重大危险源"]
_TIME_LINK = "&${__url_time_range}"
_ALERT_COLUMNS = {"level": "级别 Level", "raised": "首次报警 Raised", "changed": "最近变化 Changed",
                  "source": "危险源 Source", "source_name": "名称 Name", "sensor": "测点 Sensor",
                  "rule": "规则 Rule", "state": "状态 State", "value": "值 Value", "threshold": "阈值 Threshold",
                  "text_zh": "预警内容", "text_en": "Alert text"}


@dataclass(frozen=True)
class DashboardSpec:
    folder_uid: str
    folder_title: str
    uid: str
    title: str
    model: dm.Dashboard

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (what Grafana stores): the SDK models encoded, then decoded to dicts."""
        return json.loads(json.dumps(self.model, cls=JSONEncoder))


def _base(scope: Scope, what: str, title: str, description: str, time_from: str) -> dash.Dashboard:
    links = [dash.DashboardLink(t).type(dm.DashboardLinkType.LINK).url(f"/d/{scope.uid(w)}").keep_time(True)
             for w, t in (("overview", "总览 Overview"), ("source-detail", "危险源详情 Source detail"),
                          ("sensor-health", "传感器健康 Sensor health")) if w != what]
    return (dash.Dashboard(title).uid(scope.uid(what)).description(description)
            .tags([*TAGS, what] + ([scope.district] if scope.district else []))
            .timezone(TIMEZONE).refresh(WALL_REFRESH).time(time_from, "now").readonly()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR).links(links)
            .timepicker(dash.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m"])))


def _detail_link(scope: Scope) -> str:
    return f"/d/{scope.uid('source-detail')}?var-source=${{__data.fields.source}}{_TIME_LINK}"


def overview(b: Buckets, reg: Registry, scope: Scope) -> dash.Dashboard:
    d, srcs = scope.district, scope.source_ids
    kinds = {s: SOURCE_KIND_LABELS[reg.sources[s].kind] for s in srcs}
    level_colours = {level_label(n): c for n, c in LEVEL_COLOURS.items()}
    board = _base(scope, "overview", f"{scope.title_zh}重大危险源总览 {scope.title_en} major hazards overview",
                  "危险源分布与预警、活动预警队列、ISA-18.2 报警管理指标。Hazard sources and their alerts, the "
                  "active-alert queue and ISA-18.2 alarm KPIs per console.", "now-6h")
    board.with_panel(P.place(
        P.source_geomap(_detail_link(scope)), 1,
        "危险源分布（按最高活动预警级别着色）Hazard sources by highest active level",
        "绿色：无活动预警。点击标记查看详情。Green: no active alert. Click a marker for its detail.", 0, 0, 12, 14,
        Q.source_map(b, reg, d, srcs)))
    board.with_panel(P.place(
        P.count_stat(level_colours), 2, "活动预警（按级别）Active alerts by level",
        "一级红色最高。Level 1 (red) is the most severe.", 12, 0, 12, 5, Q.level_counts(b, d)))
    board.with_panel(P.place(
        P.pie(), 3, "活动预警（按规则）Active alerts by rule", "按检测规则统计。Counted per detection rule.",
        12, 5, 6, 9, Q.counts_by(b, d, dictionary("labels", RULE_LABELS), "rule")))
    board.with_panel(P.place(
        P.pie(), 4, "活动预警（按危险源类别）Active alerts by source kind",
        "储罐区、气体区域、尾矿库、煤矿。Tank farms, gas areas, tailings dams, coal mines.", 18, 5, 6, 9,
        Q.counts_by(b, d, dictionary("labels", kinds), "source")))
    board.with_panel(P.place(
        P.alert_table(_ALERT_COLUMNS, _detail_link(scope)), 5, "活动预警队列 Active alert queue",
        "最严重、最新的在前；含已恢复待复位的锁存报警。Most severe and newest first; includes latched alarms "
        "waiting for reset.", 0, 14, 24, 10, Q.active_table(b, reg, d, srcs)))
    board.with_panel(P.place(
        P.rate_series(), 6, "报警率（每10分钟，按控制室）Alarm rate per 10 min per console",
        "ISA-18.2：约1条/10分钟可接受，2条为可管理上限，超过10条为报警泛滥。~1 per 10 min acceptable, 2 the "
        "manageable maximum, more than 10 a flood.", 0, 24, 12, 9, Q.alarm_rate(b, reg, d, srcs)))
    board.with_panel(P.place(_kpi_table(), 7, "报警管理指标（按控制室）Alarm KPIs per console",
                             "时间范围内：报警数、平均与峰值每10分钟、泛滥时段（>10/10分钟）、长期报警（>24小时）、"
                             "优先级构成（目标 高5% 中15% 低80%）。In the range: annunciations, mean and peak per "
                             "10 min, flood intervals, standing > 24 h, priority mix against 5/15/80 %.",
                             12, 24, 12, 9, Q.kpi_table(b, reg, d, srcs)))
    return board


def _kpi_table() -> table.Panel:
    panel = table.Panel().with_transformation(P.organize({
        "console": "控制室 Console", "total": "报警数 Alarms", "per_10min": "平均/10分钟 Mean per 10 min",
        "peak_10min": "峰值/10分钟 Peak per 10 min", "flood_intervals": "泛滥时段 Flood intervals",
        "standing_24h": "长期报警 Standing > 24 h", "high_pct": "高 High %", "medium_pct": "中 Medium %",
        "low_pct": "低 Low %"}))
    panel.override_by_name("per_10min", [dm.DynamicConfigValue(id_val="decimals", value=2),
                                         dm.DynamicConfigValue(id_val="custom.cellOptions",
                                                               value={"type": "color-text"}),
                                         dm.DynamicConfigValue(id_val="thresholds", value={
                                             "mode": "absolute", "steps": [
                                                 {"value": None, "color": NORMAL_COLOUR},
                                                 {"value": 1.0, "color": LEVEL_COLOURS[3]},
                                                 {"value": 2.0, "color": LEVEL_COLOURS[1]}]})])
    for col in ("flood_intervals", "standing_24h"):
        panel.override_by_name(col, [dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
                                     dm.DynamicConfigValue(id_val="thresholds", value={"mode": "absolute", "steps": [
                                         {"value": None, "color": NORMAL_COLOUR},
                                         {"value": 1.0, "color": LEVEL_COLOURS[1]}]})])
    for col in ("high_pct", "medium_pct", "low_pct"):
        panel.override_by_name(col, [dm.DynamicConfigValue(id_val="unit", value="percent"),
                                     dm.DynamicConfigValue(id_val="decimals", value=0)])
    return panel


def _source_variable(reg: Registry, scope: Scope) -> dash.CustomVariable:
    opts = [(s, variable_text(f"{s} {reg.sources[s].name_zh} {reg.sources[s].name_en}")) for s in scope.source_ids]
    first = opts[0]
    return (dash.CustomVariable("source").label("危险源 Hazard source")
            .values(", ".join(f"{text} : {value}" for value, text in opts))
            .current(dm.VariableOption(selected=True, text=first[1], value=first[0]))
            .options([dm.VariableOption(selected=i == 0, text=t, value=v) for i, (v, t) in enumerate(opts)]))


def _annotations(b: Buckets) -> list[dash.AnnotationQuery]:
    ref = datasource_ref()
    out = [dash.AnnotationQuery().name(f"预警 {level_label(n)}").datasource(ref).enable(True).icon_color(c)
           .target(FluxAnnotation(S.alert_annotation(b, [n], ("raise", "realarm")))) for n, c in LEVEL_COLOURS.items()]
    out.append(dash.AnnotationQuery().name("预警解除 Cleared").datasource(ref).enable(True).icon_color(NORMAL_COLOUR)
               .target(FluxAnnotation(S.alert_annotation(b, None, ("clear", "rtn")))))
    out.append(dash.AnnotationQuery().name("处置记录 Acknowledge, shelve, escalate ...").datasource(ref).enable(True)
               .icon_color("#8c564b").target(FluxAnnotation(S.event_annotation(b))))
    return out


def source_detail(b: Buckets, reg: Registry, scope: Scope) -> dash.Dashboard:
    src_filter = ' and r.source == "${source}"'
    board = _base(scope, "source-detail", f"{scope.title_zh}危险源详情 {scope.title_en} hazard source detail",
                  "选择危险源：各测点趋势、报警限值带、预警与处置记录。Pick a source: sensor trends with the "
                  "registry's limit bands, alert and handling annotations.", "now-6h")
    board.with_variable(_source_variable(reg, scope))
    board.with_variable(dash.QueryVariable("kind").label("参数 Kind").datasource(datasource_ref())
                        .query(S.kind_variable(reg, scope.source_ids)).refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
                        .multi(True).include_all(True).sort(dm.VariableSort.ALPHABETICAL_ASC)
                        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))
    board.annotations(_annotations(b))
    board.with_panel(P.place(
        P.count_stat({level_label(n): c for n, c in LEVEL_COLOURS.items()}), 1,
        "本危险源活动预警 Active alerts of this source", "按级别。By level.", 0, 0, 8, 7,
        Q.level_counts(b, scope.district, src_filter)))
    board.with_panel(P.place(
        P.alert_table(_ALERT_COLUMNS, None), 2, "本危险源活动预警 Active alerts of this source",
        "最严重、最新的在前。Most severe and newest first.", 8, 0, 16, 7,
        Q.active_table(b, reg, scope.district, scope.source_ids, src_filter)))
    sensors = [reg.sensors[x] for s in scope.source_ids for x in reg.sources[s].sensors]
    board.with_panel(P.place(
        P.trend_series(sensors).repeat("kind").repeat_direction("h").max_per_row(2), 3,
        "${kind} 趋势 trend", "虚线与色带：登记的报警限值（颜色为预警级别）；超过48小时显示5分钟均值。Dashed lines "
        "and bands: the registry's limits in their warning colours; ranges over 48 h show 5-minute means.",
        0, 7, 12, 10, S.trend(b)))
    return board


def sensor_health(b: Buckets, reg: Registry, scope: Scope) -> dash.Dashboard:
    d, srcs = scope.district, scope.source_ids
    health = {r: RULE_LABELS[r] for r in HEALTH_RULES}
    health_filter = " and " + any_of("rule", HEALTH_RULES)
    board = _base(scope, "sensor-health", f"{scope.title_zh}传感器健康 {scope.title_en} sensor health",
                  "数据中断、卡滞、坏值、超量程、漂移与超时未报（超过3倍上报周期）。Offline, stuck, bad quality, "
                  "out of range, drift, and stale sensors (no reading for 3 x their period).", "now-24h")
    board.with_panel(P.place(P.count_stat(), 1, "传感器健康预警 Sensor-health alerts", "活动预警，按规则。Active, "
                             "per rule.", 0, 0, 18, 5, Q.fixed_counts(b, d, "rule", health, health_filter)))
    board.with_panel(P.place(P.count_stat({"stale": LEVEL_COLOURS[3]}).display_name("超时未报 Stale"), 2,
                             "超时未报 Stale sensors", "最后读数早于3倍上报周期。Last reading older than 3 x "
                             "period_s.", 18, 0, 6, 5, S.stale_count(b, reg, d, srcs)))
    board.with_panel(P.place(P.stale_table(), 3, "超时未报的测点 Stale sensors", "最久未报的在前。Oldest first.",
                             0, 5, 12, 12, S.stale_sensors(b, reg, d, srcs)))
    board.with_panel(P.place(
        P.alert_table(_ALERT_COLUMNS, _detail_link(scope)), 4, "传感器健康活动预警 Active sensor-health alerts",
        "最严重、最新的在前。Most severe and newest first.", 12, 5, 12, 12,
        Q.active_table(b, reg, d, srcs, health_filter)))
    board.with_panel(P.place(P.rate_series(), 5, "传感器健康预警（每小时）Sensor-health alerts per hour",
                             "按规则统计新报警。New alerts per rule.", 0, 17, 24, 8, S.health_rate(b, d, health)))
    return board


def build(settings: Settings, registry: Registry) -> list[DashboardSpec]:
    """Every dashboard, city scope first, in a stable order."""
    b = Buckets.of(settings)
    out = []
    for scope in scopes(registry):
        for maker in (overview, source_detail, sensor_health):
            board = maker(b, registry, scope).build()
            out.append(DashboardSpec(scope.folder_uid, scope.folder_title, board.uid or "", board.title or "", board))
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def default_substitutions(start: dt.datetime | None = None, stop: dt.datetime | None = None) -> dict[str, str]:
    """Grafana fills these in before the query reaches InfluxDB; absolute times, as Grafana sends them."""
    stop = stop or _now()
    start = start or stop - dt.timedelta(hours=6)
    return {"v.timeRangeStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "v.timeRangeStop": stop.strftime("%Y-%m-%dT%H:%M:%SZ"), "v.windowPeriod": "1m"}


def _substitute(text: str, subs: dict[str, str]) -> str:
    for key in sorted(subs, key=len, reverse=True):  # longest first: v.timeRangeStart before a shorter prefix
        text = text.replace(key, subs[key])
    return text


def flux_queries(settings: Settings, registry: Registry,
                 substitutions: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, Flux text) for every panel target, variable query and annotation, with
    Grafana's macros substituted: keys are the literal text to replace (``v.timeRangeStart``,
    ``v.timeRangeStop``, ``v.windowPeriod``, ``${source}``, ``${kind}``); missing ones get
    ``default_substitutions()`` and, per dashboard, the scope's first source. A panel repeated over ``${kind}``
    is listed once per kind of that source (title suffixed with the kind), as Grafana would run it."""
    subs = {**default_substitutions(), **(substitutions or {})}
    out: list[tuple[str, str, str]] = []
    for spec in build(settings, registry):
        data = spec.to_json()
        var_values = {v["name"]: v for v in data.get("templating", {}).get("list", [])}
        own = dict(subs)
        if "source" in var_values:
            own.setdefault("${source}", var_values["source"]["current"]["value"])
        source = own.get("${source}")
        kinds = [SENSOR_KIND_LABELS[k] for k in sorted({registry.sensors[x].kind
                                                         for x in registry.sources[source].sensors})] \
            if source in registry.sources else []
        for panel in data.get("panels", []):
            for target in panel.get("targets", []):
                if "${kind}" in target["query"] and "${kind}" not in own:
                    out += [(spec.uid, f"{panel['title']} [{k}]", _substitute(target["query"], {**own, "${kind}": k}))
                            for k in kinds]
                else:
                    out.append((spec.uid, panel["title"], _substitute(target["query"], own)))
        for name, var in var_values.items():
            if var.get("type") == "query":
                out.append((spec.uid, f"variable {name}", _substitute(str(var["query"]), own)))
        for ann in data.get("annotations", {}).get("list", []):
            if "query" in ann.get("target", {}):
                out.append((spec.uid, f"annotation {ann['name']}", _substitute(ann["target"]["query"], own)))
    return out

