"""Flux for the hazard-source detail (trends, alert annotations) and sensor-health dashboards (pure text).

Readings (contract): measurement ``reading`` in B, tags district, enterprise, source, sensor, kind, field ``v``;
``reading_5m`` in B_5m with ``mean``/``min``/``max``/``n``, ``_time`` = end of the 5-minute window.
Trends read B for ranges up to ``RAW_MAX_RANGE`` and B_5m beyond (decided inside Flux from the dashboard's
range, so one panel serves 1 h and 90 d). Grafana variables ``${source}`` / ``${kind}`` stay in the text.
"""

from __future__ import annotations

from collections.abc import Sequence

from hazardwatch.grafana.flux import Buckets, any_of, dictionary, district_filter, left_join, lit, rows, script
from hazardwatch.grafana.labels import SENSOR_KIND_LABELS
from hazardwatch.registry import Registry

RAW_MAX_RANGE = "48h"  # beyond this the 5-minute means are drawn: same shape, 30x fewer points
STALE_LOOKBACK = "-24h"  # last readings are looked for this far back; older counts as "none in 24 h"
_RANGE = "range(start: v.timeRangeStart, stop: v.timeRangeStop)"
SOURCE_VAR = "${source}"
KIND_VAR = "${kind}"


def kind_variable(reg: Registry, source_ids: Sequence[str]) -> str:
    """Values of the ``kind`` variable: the bilingual sensor-kind labels the selected source has (from the
    registry, so a kind whose sensors all went silent still gets its panel)."""
    pairs = sorted({(s, SENSOR_KIND_LABELS[reg.sensors[x].kind]) for s in source_ids for x in reg.sources[s].sensors})
    return script(f"""\
{rows([{"source": s, "_value": label} for s, label in pairs])}
    |> filter(fn: (r) => r.source == "{SOURCE_VAR}")
    |> keep(columns: ["_value"])""")


def trend(b: Buckets) -> str:
    """Sensors of the selected source and kind, one column per sensor id (field overrides key on it)."""
    pick = f'r.source == "{SOURCE_VAR}" and r.kind == kind'
    return script(dictionary("kinds", {label: kind for kind, label in SENSOR_KIND_LABELS.items()}), f"""\
kind = dict.get(dict: kinds, key: "{KIND_VAR}", default: "{KIND_VAR}")

raw = () => from(bucket: {lit(b.raw)})
    |> {_RANGE}
    |> filter(fn: (r) => r._measurement == "reading" and r._field == "v" and {pick})

means = () => from(bucket: {lit(b.downsampled)})
    |> {_RANGE}
    |> filter(fn: (r) => r._measurement == "reading_5m" and r._field == "mean" and {pick})

long = int(v: v.timeRangeStop) - int(v: v.timeRangeStart) > int(v: {RAW_MAX_RANGE})

data = if long then means() else raw()

data
    |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)
    |> keep(columns: ["_time", "_value", "sensor"])
    |> group()
    |> pivot(rowKey: ["_time"], columnKey: ["sensor"], valueColumn: "_value")
    |> sort(columns: ["_time"])""")


def _text(col: str) -> str:
    return f"(if exists r.{col} then r.{col} else \"\")"


def alert_annotation(b: Buckets, levels: Sequence[int] | None, states: Sequence[str]) -> str:
    """Alert records of the selected source as annotations (columns _time, text, tags)."""
    lvl = "" if levels is None else "\n    |> filter(fn: (r) => " + " or ".join(f"r.level == {n}" for n in levels) + ")"
    return script(f"""\
from(bucket: {lit(b.alarms)})
    |> {_RANGE}
    |> filter(fn: (r) => r._measurement == "alert" and r.source == "{SOURCE_VAR}" and {any_of("state", states)})
    |> filter(fn: (r) => r._field == "level" or r._field == "text_zh" or r._field == "text_en")
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value"){lvl}
    |> map(fn: (r) => ({{
        _time: r._time,
        text: {_text("text_zh")} + "\\n" + {_text("text_en")},
        tags: r.sensor + "," + r.rule + "," + r.state,
    }}))
    |> group()
    |> sort(columns: ["_time"])""")


def event_annotation(b: Buckets) -> str:
    """Lifecycle transitions (ack, shelve, escalate, reset, close ...) and floods of the selected source;
    raise/realarm are left out because the alert-record annotations already mark them."""
    return script(f"""\
from(bucket: {lit(b.alarms)})
    |> {_RANGE}
    |> filter(fn: (r) => r._measurement == "alert_event" and r.source == "{SOURCE_VAR}")
    |> filter(fn: (r) => r.kind == "transition" or r.kind == "flood")
    |> filter(fn: (r) => r.action != "raise" and r.action != "realarm")
    |> filter(fn: (r) => {any_of("_field", ("actor", "reason", "to_state", "alert_id"))})
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> map(fn: (r) => ({{
        _time: r._time,
        text: r.action + (if exists r.to_state and r.to_state != "" then " → " + r.to_state else "")
            + " " + {_text("actor")} + " " + {_text("reason")} + " (" + {_text("alert_id")} + ")",
        tags: r.kind + "," + r.action,
    }}))
    |> group()
    |> sort(columns: ["_time"])""")


def _sensor_rows(reg: Registry, source_ids: Sequence[str]) -> list[dict[str, str | float | int]]:
    out: list[dict[str, str | float | int]] = []
    for sid in source_ids:
        src = reg.sources[sid]
        for x in src.sensors:
            s = reg.sensors[x]
            out.append({"sensor": x, "name": f"{s.name_zh} {s.name_en}", "source": sid,
                        "source_name": f"{src.name_zh} {src.name_en}", "kind": SENSOR_KIND_LABELS[s.kind],
                        "period_s": float(s.period_s)})
    return out


def _staleness(b: Buckets, reg: Registry, district: str | None, source_ids: Sequence[str]) -> str:
    last_seen = f"""\
last_seen = from(bucket: {lit(b.raw)})
    |> range(start: {STALE_LOOKBACK})
    |> filter(fn: (r) => r._measurement == "reading" and r._field == "v"{district_filter(district)})
    |> last()
    |> group()
    |> keep(columns: ["sensor", "_time"])"""
    joined = left_join(rows(_sensor_rows(reg, source_ids)), "last_seen", "sensor",
                       'array.from(rows: [{sensor: "", _time: 1970-01-01T00:00:00Z}])',
                       "(l, r) => ({l with last: r._time})")
    # A sensor with no reading in the lookback gets the lookback as its age (shown as "none in 24 h").
    return f"""{last_seen}

sensors = {joined}
    |> map(fn: (r) => ({{r with
        age_s: if exists r.last then float(v: int(v: now()) - int(v: r.last)) / 1000000000.0 else 86400.0,
        stale_after_s: 3.0 * r.period_s,
    }}))"""


def stale_sensors(b: Buckets, reg: Registry, district: str | None, source_ids: Sequence[str]) -> str:
    """Sensors whose last reading is older than 3 x period_s (contract's "stale"), oldest first."""
    return script(_staleness(b, reg, district, source_ids), """\
sensors
    |> filter(fn: (r) => r.age_s > r.stale_after_s)
    |> sort(columns: ["age_s"], desc: true)""")


def stale_count(b: Buckets, reg: Registry, district: str | None, source_ids: Sequence[str]) -> str:
    return script(_staleness(b, reg, district, source_ids), """\
sensors
    |> map(fn: (r) => ({r with stale: if r.age_s > r.stale_after_s then 1 else 0}))
    |> sum(column: "stale")
    |> keep(columns: ["stale"])""")


def health_rate(b: Buckets, district: str | None, rules: dict[str, str]) -> str:
    """Sensor-health alert raises per hour, one column per rule."""
    return script(dictionary("rules", rules), f"""\
from(bucket: {lit(b.alarms)})
    |> {_RANGE}
    |> filter(fn: (r) => r._measurement == "alert" and r._field == "level"{district_filter(district)})
    |> filter(fn: (r) => r.state == "raise")
    |> filter(fn: (r) => {any_of("rule", list(rules))})
    |> group(columns: ["rule"])
    |> aggregateWindow(every: 1h, fn: count, createEmpty: true)
    |> map(fn: (r) => ({{_time: r._time, n: r._value, rule: dict.get(dict: rules, key: r.rule, default: r.rule)}}))
    |> group()
    |> pivot(rowKey: ["_time"], columnKey: ["rule"], valueColumn: "n")
    |> sort(columns: ["_time"])""")

