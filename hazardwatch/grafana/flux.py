"""Flux text helpers shared by the query builders: literals, scripts, safe joins, registry tables.

Everything here is a pure function of its arguments (no settings, no I/O) so the text is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hazardwatch.config import Settings

# How far back "active" alerts are looked for, independent of the dashboard's time picker: an alert raised a
# month ago and still active must stay on the wall screen. Alert records are few, so the scan is cheap.
ACTIVE_LOOKBACK = "-30d"
ACTIVE_STATES = ("raise", "realarm", "rtn")  # latest detector state of an alert that is not over (rtn: latched)


@dataclass(frozen=True)
class Buckets:
    """Bucket names from HW_INFLUX_BUCKET = B (contract): B raw, B_5m downsampled, B_alarms alarms."""

    raw: str
    downsampled: str
    alarms: str

    @classmethod
    def of(cls, settings: Settings) -> Buckets:
        b = settings.influx_bucket
        return cls(b, f"{b}_5m", f"{b}_alarms")

    def names(self) -> tuple[str, str, str]:
        return self.raw, self.downsampled, self.alarms


def lit(value: str | float | bool) -> str:
    """A Flux literal. Strings escape backslash, quote and '${' (Flux string interpolation)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${").replace("\n", "\\n")
    return f'"{text}"'


def any_of(column: str, values: Iterable[str]) -> str:
    """`(r.c == "a" or r.c == "b")`: equality chains push down to storage, unlike contains()."""
    return "(" + " or ".join(f"r.{column} == {lit(v)}" for v in values) + ")"


def district_filter(district: str | None) -> str:
    return "" if district is None else f" and r.district == {lit(district)}"


def script(*statements: str) -> str:
    """Imports the statements use (detected, sorted) + the statements separated by blank lines."""
    body = "\n\n".join(s.strip("\n") for s in statements)
    imports = [p for p in ("array", "dict", "join") if f"{p}." in body]
    head = "".join(f'import "{p}"\n' for p in imports)
    return (head + "\n" if head else "") + body + "\n"


def rows(records: Sequence[Mapping[str, str | float | int]]) -> str:
    """`array.from(rows: [...])` of registry facts (keys in the given order, one row per line)."""
    lines = ["{" + ", ".join(f"{k}: {lit(v)}" for k, v in r.items()) + "}" for r in records]
    return "array.from(rows: [\n    " + ",\n    ".join(lines) + ",\n])"


def dictionary(name: str, pairs: Mapping[str, str]) -> str:
    """`name = dict.fromList(...)`, sorted by key for stable text."""
    items = ", ".join(f"{{key: {lit(k)}, value: {lit(v)}}}" for k, v in sorted(pairs.items()))
    return f"{name} = dict.fromList(pairs: [{items}])"


def left_join(left: str, right: str, key: str, sentinel: str, as_fn: str) -> str:
    """join.left that never sees an empty right side: InfluxDB refuses "cannot join on an empty table", so
    one sentinel row (key "") is unioned in; it matches nothing on the left."""
    return (f"join.left(\n    left: {left},\n    right: union(tables: [{right}, {sentinel}]),\n"
            f"    on: (l, r) => l.{key} == r.{key},\n    as: {as_fn},\n)")
