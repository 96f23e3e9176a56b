"""Panel builders (grafana-foundation-sdk) with the wall-screen conventions: level colours and labels, the
InfluxDB data source on every panel, explicit grid positions and ids, threshold bands from registry limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, common, geomap, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import geomap as gm
from grafana_foundation_sdk.models import piechart as pm

from hazardwatch.grafana.fluxquery import Flux, datasource_ref
from hazardwatch.grafana.labels import LEVEL_COLOURS, NORMAL_COLOUR, NORMAL_LABEL, grafana_unit, level_label
from hazardwatch.registry import HIGH_LIMITS, Sensor

P = TypeVar("P", timeseries.Panel, stat.Panel, table.Panel, piechart.Panel, geomap.Panel, bargauge.Panel)
# Columns Grafana may show from a Flux table that nobody on duty needs.
FLUX_META = ("result", "table", "_start", "_stop", "_measurement")


def place(panel: P, pid: int, title: str, description: str, x: int, y: int, w: int, h: int,
                       *queries: str) -> P:
    """Id, titles, position and the Flux targets (refId A, B, ...) on the hazardwatch data source."""
    panel.id(pid).title(title).description(description).datasource(datasource_ref())
    panel.grid_pos(dm.GridPos(h=h, w=w, x=x, y=y))
    panel.targets([Flux(q).ref_id(chr(ord("A") + i)) for i, q in enumerate(queries)])
    return panel


def level_mappings() -> list[dm.ValueMapping]:
    """0 normal, 1..4 the four warning levels, each with its colour and bilingual text."""
    opts = {"0": dm.ValueMappingResult(text=NORMAL_LABEL, color=NORMAL_COLOUR, index=0)}
    for n, colour in LEVEL_COLOURS.items():
        opts[str(n)] = dm.ValueMappingResult(text=level_label(n), color=colour, index=n)
    return [dm.ValueMap(options=opts)]


def level_thresholds() -> dash.ThresholdsConfig:
    steps = [dm.Threshold(value=None, color=NORMAL_COLOUR)]
    steps += [dm.Threshold(value=float(n), color=c) for n, c in LEVEL_COLOURS.items()]
    return dash.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps)


def limit_thresholds(sensor: Sensor) -> dict[str, object]:
    """Registry limits as threshold steps: coloured by the limit's warning level beyond it, transparent in the
    normal band, so 'line+area' draws the alarm bands and nothing over normal operation."""
    by = {lim.name: lim for lim in sensor.limits}
    lows = [by[n] for n in ("LL", "L") if n in by]  # most severe first
    highs = [by[n] for n in ("H", "HH") if n in by]  # least severe first
    base = LEVEL_COLOURS[lows[0].level] if lows else "transparent"
    steps: list[dict[str, object]] = [{"value": None, "color": base}]
    for i, lim in enumerate(lows):  # above LL: L's colour; above L: normal
        steps.append({"value": lim.value, "color": LEVEL_COLOURS[lows[i + 1].level] if i + 1 < len(lows)
                      else "transparent"})
    steps += [{"value": lim.value, "color": LEVEL_COLOURS[lim.level]} for lim in highs if lim.name in HIGH_LIMITS]
    return {"mode": "absolute", "steps": steps}


def organize(rename: dict[str, str], exclude: Sequence[str] = FLUX_META) -> dm.DataTransformerConfig:
    """Grafana's 'organize' transformation: bilingual column names in the given order, Flux metadata hidden."""
    return dm.DataTransformerConfig(id_val="organize", options={
        "excludeByName": dict.fromkeys(exclude, True),
        "indexByName": {name: i for i, name in enumerate(rename)},
        "renameByName": rename,
    })


def colour_overrides(panel: P, colours: dict[str, str]) -> P:
    for name, colour in colours.items():
        panel.override_by_name(name, [dm.DynamicConfigValue(id_val="color",
                                                            value={"mode": "fixed", "fixedColor": colour})])
    return panel


def count_stat(values: dict[str, str] | None = None) -> stat.Panel:
    """Big numbers, one per column (levels, rules); zero stays visible."""
    panel = (stat.Panel().color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.NONE)
             .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).no_value("0").decimals(0)
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    return colour_overrides(panel, values or {})


def pie() -> piechart.Panel:
    return (piechart.Panel().pie_type(pm.PieChartType.DONUT)
            .display_labels([pm.PieChartLabels.VALUE, pm.PieChartLabels.NAME])
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .legend(piechart.PieChartLegendOptions().show_legend(True).placement(cm.LegendPlacement.RIGHT)
                    .display_mode(cm.LegendDisplayMode.TABLE).values([pm.PieChartLegendValues.VALUE]))
            .no_value("0"))


def alert_table(rename: dict[str, str], link: str | None) -> table.Panel:
    """Active alerts: level as a coloured cell with its text; the source column links to its detail."""
    panel = (table.Panel().with_transformation(organize(rename)).cell_height(cm.TableCellHeight.SM)
             .filterable(True).no_value("无活动预警 no active alerts"))
    panel.override_by_name("level", [
        dm.DynamicConfigValue(id_val="mappings", value=level_mappings()),
        dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background", "mode": "basic"}),
        dm.DynamicConfigValue(id_val="custom.width", value=150)])
    for col in ("raised", "changed"):
        panel.override_by_name(col, [dm.DynamicConfigValue(id_val="unit", value="dateTimeAsIso"),
                                     dm.DynamicConfigValue(id_val="custom.width", value=170)])
    panel.override_by_name("state", [dm.DynamicConfigValue(id_val="mappings", value=[dm.ValueMap(options={
        "raise": dm.ValueMappingResult(text="报警中 active", index=0),
        "realarm": dm.ValueMappingResult(text="再次报警 re-alarm", index=1),
        "rtn": dm.ValueMappingResult(text="已恢复待复位 latched", index=2)})])])
    if link:
        panel.override_by_name("source", [dm.DynamicConfigValue(id_val="links", value=[
            {"title": "危险源详情 Source detail", "url": link}])])
    return panel


def rate_series(unit: str = "short") -> timeseries.Panel:
    """Bars per 10 minutes with the ISA-18.2 / EEMUA 191 marks: 1 acceptable, 2 manageable, > 10 flood."""
    return (timeseries.Panel().draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60).unit(unit).min(0)
            .thresholds(dash.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([
                dm.Threshold(value=None, color="transparent"), dm.Threshold(value=2.0, color=LEVEL_COLOURS[3]),
                dm.Threshold(value=10.0, color=LEVEL_COLOURS[1])]))
            .thresholds_style(common.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED))
            .legend(common.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.TABLE)
                    .placement(cm.LegendPlacement.RIGHT).calcs(["max", "sum"])))


def trend_series(sensors: Sequence[Sensor]) -> timeseries.Panel:
    """Sensor trends, one field per sensor id; per-sensor name, unit and limit bands as field overrides."""
    panel = (timeseries.Panel().line_width(2).fill_opacity(0).span_nulls(True).show_points(cm.VisibilityMode.NEVER)
             .thresholds_style(common.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE_AND_AREA))
             .legend(common.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.TABLE)
                     .placement(cm.LegendPlacement.BOTTOM).calcs(["lastNotNull", "min", "max"]))
             .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.NONE)))
    for s in sensors:
        panel.override_by_name(s.id, [
            dm.DynamicConfigValue(id_val="displayName", value=f"{s.id} {s.name_zh} {s.name_en}"),
            dm.DynamicConfigValue(id_val="unit", value=grafana_unit(s.unit)),
            dm.DynamicConfigValue(id_val="thresholds", value=limit_thresholds(s))])
    return panel


def source_geomap(link: str | None) -> geomap.Panel:
    """Markers at the registry's lat/lon coloured by the highest active level (green: none active)."""
    style = {
        "color": {"field": "level", "fixed": NORMAL_COLOUR},
        "opacity": 0.9,
        "size": {"fixed": 14, "max": 14, "min": 14},
        "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
        "text": {"field": "name", "fixed": "", "mode": "field"},
        "textConfig": {"fontSize": 12, "offsetX": 0, "offsetY": -16, "textAlign": "center",
                       "textBaseline": "bottom"},
    }
    markers = (common.MapLayerOptions().type("markers").name("危险源 Hazard sources")
               .config({"showLegend": True, "style": style})
               .location(common.FrameGeometrySource().mode(cm.FrameGeometrySourceMode.COORDS)
                         .latitude("lat").longitude("lon"))
               .tooltip(True))
    panel = (geomap.Panel().view(geomap.MapViewConfig().id("fit").all_layers(True).padding(10).max_zoom(14))
             .basemap(common.MapLayerOptions().type("default").name("底图 Basemap"))
             .layers([markers])
             .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(False).show_scale(True))
             .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS)))
    # Level colours and texts on the level field only (grade and counts are numbers too).
    panel.override_by_name("level", [
        dm.DynamicConfigValue(id_val="thresholds", value=level_thresholds().build()),
        dm.DynamicConfigValue(id_val="mappings", value=level_mappings()),
        dm.DynamicConfigValue(id_val="color", value={"mode": "thresholds"})])
    for name, title in (("source", "编号 Source"), ("enterprise", "企业 Enterprise"), ("kind", "类别 Kind"),
                        ("grade", "重大危险源等级 GB 18218 grade"), ("alerts", "活动预警数 Active alerts")):
        props = [dm.DynamicConfigValue(id_val="displayName", value=title)]
        if name == "source" and link:  # tooltip link from a marker to the source's detail dashboard
            props.append(dm.DynamicConfigValue(id_val="links", value=[{"title": "危险源详情 Source detail",
                                                                       "url": link}]))
        panel.override_by_name(name, props)
    return panel


def stale_table() -> table.Panel:
    """Sensors past 3 x period_s; an age of 24 h means no reading in the whole lookback."""
    panel = table.Panel().with_transformation(organize({
        "sensor": "测点 Sensor", "name": "名称 Name", "source": "危险源 Source",
        "source_name": "危险源名称 Source name", "kind": "参数 Kind", "last": "最后读数 Last reading",
        "age_s": "已过 Age", "period_s": "周期 Period", "stale_after_s": "超时判据 Stale after"})).no_value("无 none")
    panel.override_by_name("last", [dm.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")])
    for col in ("age_s", "period_s", "stale_after_s"):
        panel.override_by_name(col, [dm.DynamicConfigValue(id_val="unit", value="s")])
    none_in_lookback = dm.ValueMappingResult(text="24小时内无数据 none in 24 h", color=LEVEL_COLOURS[2])
    panel.override_by_name("age_s", [dm.DynamicConfigValue(id_val="mappings", value=[
        dm.RangeMap(options=dm.DashboardRangeMapOptions(from_val=86400.0, to=None, result=none_in_lookback))])])
    return panel
