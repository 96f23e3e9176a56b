"""Flux for the alert panels (map, active alerts, counts) and the ISA-18.2 KPIs, as pure text builders.

Data (contract): measurement ``alert`` in B_alarms, one point per detector record, tags district, enterprise,
source, sensor, rule, limit?, state, category?, fields level, value, threshold, alert_id, text_zh, text_en,
clause; measurement ``alert_event``: tags district, enterprise, source, kind, action, fields alert_id, actor,
reason, level, to_state.

An alert is *active* when the latest record of its alert_id is raise / realarm / rtn (a latched alarm that
returned to normal still waits for a person's reset); ``raised`` is the time of its first record. Grafana
macros (v.timeRangeStart, v.timeRangeStop, v.windowPeriod) are left in the text for Grafana to fill in.
"""

from __future__ import annotations

from collections.abc import Sequence

from hazardwatch.grafana.flux import (
    ACTIVE_LOOKBACK,
    ACTIVE_STATES,
    Buckets,
    any_of,
    dictionary,
    district_filter,
    left_join,
    lit,
    rows,
    script,
)
from hazardwatch.grafana.labels import RULE_LABELS, SOURCE_KIND_LABELS, level_label
from hazardwatch.registry import Registry

_RANGE = "range(start: v.timeRangeStart, stop: v.timeRangeStop)"
# EEMUA 191 / ISA-18.2: annunciations are raise and realarm transitions (same definition as alerts/kpi.py).
_ANNUNCIATIONS = '(r.action == "raise" or r.action == "realarm")'
TABLE_FIELDS = ("alert_id", "level", "value", "threshold", "text_zh", "text_en")


def active_alerts(b: Buckets, district: str | None, fields: Sequence[str] = ("alert_id", "level"),
                  extra: str = "") -> str:
    """Statement defining ``active``: one row per active alert (columns: _time of the latest record, raised,
    alert_id, the tags, and ``fields``). ``extra`` is a further filter, e.g. ` and r.source == "S01"`."""
    wanted = ("alert_id", *[f for f in fields if f != "alert_id"])
    states = " or ".join(f"r.state == {lit(s)}" for s in ACTIVE_STATES)
    return f"""\
alerts = from(bucket: {lit(b.alarms)})
    |> range(start: {ACTIVE_LOOKBACK})
    |> filter(fn: (r) => r._measurement == "alert"{district_filter(district)}{extra})
    |> filter(fn: (r) => {any_of("_field", wanted)})
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> group(columns: ["alert_id"])
    |> sort(columns: ["_time"])

none = array.from(rows: [{{alert_id: "", _time: 1970-01-01T00:00:00Z, state: "raise"}}])

latest = union(tables: [alerts |> last(column: "_time") |> group(), none])
    |> filter(fn: (r) => {states})

raised = union(tables: [alerts |> first(column: "_time") |> group() |> keep(columns: ["alert_id", "_time"]), none])
    |> keep(columns: ["alert_id", "_time"])
    |> rename(columns: {{_time: "raised"}})

// join.inner refuses empty inputs, hence the sentinel row "none" on both sides, dropped after the join.
active = join.inner(left: latest, right: raised, on: (l, r) => l.alert_id == r.alert_id,
                    as: (l, r) => ({{l with raised: r.raised}}))
    |> filter(fn: (r) => r.alert_id != "")
    |> drop(columns: ["_start", "_stop", "_measurement"])"""


def _source_rows(reg: Registry, source_ids: Sequence[str]) -> list[dict[str, str | float | int]]:
    out: list[dict[str, str | float | int]] = []
    for sid in source_ids:
        src = reg.sources[sid]
        ent = reg.enterprises[src.enterprise]
        out.append({"source": sid, "name": f"{src.name_zh} {src.name_en}", "enterprise": f"{ent.name_zh} {ent.name_en}",
                    "kind": SOURCE_KIND_LABELS[src.kind], "grade": src.grade, "lat": src.lat, "lon": src.lon})
    return out


def source_names(reg: Registry, source_ids: Sequence[str]) -> str:
    return dictionary("source_names", {s: f"{reg.sources[s].name_zh} {reg.sources[s].name_en}" for s in source_ids})


def console_names(reg: Registry, source_ids: Sequence[str]) -> dict[str, str]:
    """Console positions (enterprise control rooms) of the scope, id -> bilingual name."""
    ents = sorted({reg.sources[s].enterprise for s in source_ids})
    return {e: f"{reg.enterprises[e].name_zh} {reg.enterprises[e].name_en}" for e in ents}


def source_map(b: Buckets, reg: Registry, district: str | None, source_ids: Sequence[str]) -> str:
    """Every hazard source of the scope with lat/lon (from the registry) and its highest active level
    (1 = red highest; 0 = none active) and number of active alerts, for the geomap."""
    worst = """\
worst = union(tables: [active |> keep(columns: ["source", "level"]), array.from(rows: [{source: "", level: 9}])])
    |> group(columns: ["source"])
    |> reduce(identity: {level: 9, n: 0}, fn: (r, accumulator) => ({
        level: if r.level < accumulator.level then r.level else accumulator.level,
        n: accumulator.n + (if r.source == "" then 0 else 1),
    }))
    |> group()"""
    joined = left_join(rows(_source_rows(reg, source_ids)), "worst", "source",
                       'array.from(rows: [{source: "", level: 9, n: 0}])',
                       "(l, r) => ({l with level: if exists r.level and r.level < 9 then r.level else 0, "
                       "alerts: if exists r.n then r.n else 0})")
    return script(active_alerts(b, district), worst, joined)


def active_table(b: Buckets, reg: Registry, district: str | None, source_ids: Sequence[str],
                 extra: str = "") -> str:
    """Active alerts, most severe first, then newest first, with bilingual source and rule names."""
    shaped = """\
active
    |> map(fn: (r) => ({
        raised: r.raised,
        changed: r._time,
        level: r.level,
        source: r.source,
        source_name: dict.get(dict: source_names, key: r.source, default: r.source),
        sensor: r.sensor,
        rule: dict.get(dict: rules, key: r.rule, default: r.rule),
        state: r.state,
        value: r.value,
        threshold: r.threshold,
        text_zh: r.text_zh,
        text_en: r.text_en,
        k: r.level * 10000000000000 - int(v: r.raised) / 1000000,
    }))
    |> group()
    |> sort(columns: ["k"])
    |> drop(columns: ["k"])"""
    return script(active_alerts(b, district, TABLE_FIELDS, extra), source_names(reg, source_ids),
                  dictionary("rules", RULE_LABELS), shaped)


def fixed_counts(b: Buckets, district: str | None, column: str, labels: dict[int, str] | dict[str, str],
                 extra: str = "") -> str:
    """Active alerts counted per value of ``column`` (e.g. level 1..4, or the health rules): one row, one
    column per label in the given order, zeros included (a wall screen must show "0", not "No data")."""
    pairs: list[tuple[int | str, str]] = list(labels.items())
    acc = ", ".join(f"c{i}: accumulator.c{i} + (if r.{column} == {lit(v)} then 1 else 0)"
                    for i, (v, _) in enumerate(pairs))
    identity = ", ".join(f"c{i}: 0" for i in range(len(pairs)))
    names = ", ".join(f"c{i}: {lit(label)}" for i, (_, label) in enumerate(pairs))
    counted = f"""\
union(tables: [active |> keep(columns: ["{column}"]), array.from(rows: [{{{column}: {lit(type(pairs[0][0])())}}}])])
    |> group()
    |> reduce(identity: {{{identity}}}, fn: (r, accumulator) => ({{{acc}}}))
    |> rename(columns: {{{names}}})"""
    return script(active_alerts(b, district, extra=extra), counted)


def level_counts(b: Buckets, district: str | None, extra: str = "") -> str:
    """One row, one column per level ('一级 红色 Level 1 red' ...)."""
    return fixed_counts(b, district, "level", {n: level_label(n) for n in range(1, 5)}, extra)


def counts_by(b: Buckets, district: str | None, label_dict: str, column: str) -> str:
    """Active alerts counted per label of ``column`` (rule, or source -> hazard-source kind), one row with
    one column per label (what a pie chart wants)."""
    counted = f"""\
active
    |> keep(columns: ["{column}", "alert_id"])
    |> map(fn: (r) => ({{k: "n", label: dict.get(dict: labels, key: r.{column}, default: r.{column}), n: 1}}))
    |> group(columns: ["k", "label"])
    |> sum(column: "n")
    |> group()
    |> pivot(rowKey: ["k"], columnKey: ["label"], valueColumn: "n")
    |> drop(columns: ["k"])"""
    return script(active_alerts(b, district), label_dict, counted)


def _annunciations(b: Buckets, district: str | None) -> str:
    return f"""\
annunciations = from(bucket: {lit(b.alarms)})
    |> {_RANGE}
    |> filter(fn: (r) => r._measurement == "alert_event" and r._field == "level"{district_filter(district)})
    |> filter(fn: (r) => r.kind == "transition")
    |> filter(fn: (r) => {_ANNUNCIATIONS})"""


def alarm_rate(b: Buckets, reg: Registry, district: str | None, source_ids: Sequence[str]) -> str:
    """Annunciations per console per 10 minutes (ISA-18.2: ~1 acceptable, 2 manageable, > 10 flood)."""
    rate = """\
annunciations
    |> group(columns: ["enterprise"])
    |> aggregateWindow(every: 10m, fn: count, createEmpty: true)
    |> map(fn: (r) => ({
        _time: r._time,
        n: r._value,
        console: dict.get(dict: consoles, key: r.enterprise, default: r.enterprise),
    }))
    |> group()
    |> pivot(rowKey: ["_time"], columnKey: ["console"], valueColumn: "n")
    |> sort(columns: ["_time"])"""
    return script(_annunciations(b, district), dictionary("consoles", console_names(reg, source_ids)), rate)


def kpi_table(b: Buckets, reg: Registry, district: str | None, source_ids: Sequence[str]) -> str:
    """One row per console position (enterprise control room): annunciations in the range, mean and peak per
    10 min, 10-minute intervals in flood (> 10), standing alerts (> 24 h), priority mix (1 = high, 2 = medium,
    3-4 = low against EEMUA 191's 5 / 15 / 80 %)."""
    consoles = [{"enterprise": e, "console": n} for e, n in console_names(reg, source_ids).items()]
    windows = """\
windows = float(v: int(v: v.timeRangeStop) - int(v: v.timeRangeStart)) / 600000000000.0

mix = annunciations
    |> group(columns: ["enterprise"])
    |> reduce(identity: {total: 0, high: 0, medium: 0, low: 0}, fn: (r, accumulator) => ({
        total: accumulator.total + 1,
        high: accumulator.high + (if r._value == 1 then 1 else 0),
        medium: accumulator.medium + (if r._value == 2 then 1 else 0),
        low: accumulator.low + (if r._value >= 3 then 1 else 0),
    }))
    |> group()

peaks = annunciations
    |> group(columns: ["enterprise"])
    |> aggregateWindow(every: 10m, fn: count, createEmpty: false)
    |> reduce(identity: {peak: 0, floods: 0}, fn: (r, accumulator) => ({
        peak: if r._value > accumulator.peak then r._value else accumulator.peak,
        floods: accumulator.floods + (if r._value > 10 then 1 else 0),
    }))
    |> group()

standing = active
    |> filter(fn: (r) => int(v: r.raised) < int(v: now()) - int(v: 24h))
    |> group(columns: ["enterprise"])
    |> count(column: "alert_id")
    |> rename(columns: {alert_id: "standing"})
    |> group()"""
    j1 = left_join(rows(consoles), "mix", "enterprise",
                   'array.from(rows: [{enterprise: "", total: 0, high: 0, medium: 0, low: 0}])',
                   "(l, r) => ({l with total: if exists r.total then r.total else 0, "
                   "high: if exists r.high then r.high else 0, medium: if exists r.medium then r.medium else 0, "
                   "low: if exists r.low then r.low else 0})")
    j2 = left_join("with_mix", "peaks", "enterprise", 'array.from(rows: [{enterprise: "", peak: 0, floods: 0}])',
                   "(l, r) => ({l with peak: if exists r.peak then r.peak else 0, "
                   "floods: if exists r.floods then r.floods else 0})")
    j3 = left_join("with_peaks", "standing", "enterprise", 'array.from(rows: [{enterprise: "", standing: 0}])',
                   "(l, r) => ({l with standing: if exists r.standing then r.standing else 0})")
    shaped = f"""\
with_mix = {j1}

with_peaks = {j2}

{j3}
    |> map(fn: (r) => ({{
        console: r.console,
        total: r.total,
        per_10min: if windows > 0.0 then float(v: r.total) / windows else 0.0,
        peak_10min: r.peak,
        flood_intervals: r.floods,
        standing_24h: r.standing,
        high_pct: if r.total > 0 then 100.0 * float(v: r.high) / float(v: r.total) else 0.0,
        medium_pct: if r.total > 0 then 100.0 * float(v: r.medium) / float(v: r.total) else 0.0,
        low_pct: if r.total > 0 then 100.0 * float(v: r.low) / float(v: r.total) else 0.0,
    }}))
    |> sort(columns: ["console"])"""
    return script(active_alerts(b, district), _annunciations(b, district), windows, shaped)
