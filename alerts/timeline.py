"""One alert's full timeline from the audit log, as a report a safety inspector can read (Markdown or HTML).

``timeline`` and ``render_report`` are pure over the audit records; the readings come from InfluxDB through
``readings_around`` only, so the report can be rebuilt and tested without a database.
Command: ``python -m alerts.timeline AUDIT_PATH ALERT_ID [--html] [--out FILE] [--margin-min 15] [--no-readings]``.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from alerts.audit import Verdict, read_records, verify
from alerts.model import STATE_NAMES, TIER_NAMES, TIERS
from hazardwatch.config import Settings
from hazardwatch.registry import LEVEL_NAMES, Registry

CST = timezone(timedelta(hours=8), "CST")  # inspectors read China Standard Time
RAW_POINTS_MAX = 40  # up to this many readings are listed one by one; more are summarised per minute
_SOURCE_WIDE = ("suppress", "unsuppress")  # commands on a whole source also shape this alert's handling


def cst(ms: int | None, seconds: bool = True) -> str:
    if ms is None:
        return "—"
    t = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(CST)
    return t.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " CST"


def _duration(ms: int) -> str:
    s = max(ms, 0) // 1000
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m} min {sec} s" if h else (f"{m} min {sec} s" if m else f"{sec} s")


def _alert_of(rec: dict[str, Any]) -> str | None:
    ev = rec.get("event") or {}
    return (rec.get("alert_id") or ev.get("alert_id") or (ev.get("notify") or {}).get("alert_id")
            or (ev.get("alert") or {}).get("alert_id"))


def timeline(audit_path: str | Path, alert_id: str) -> list[dict[str, Any]]:
    """The alert's records in log order: transitions, commands, pages, notification attempts, plus any
    suppress/unsuppress of its whole source while it was open."""
    mine: list[dict[str, Any]] = []
    source_wide: list[dict[str, Any]] = []
    for rec in read_records(audit_path):
        if _alert_of(rec) == alert_id:
            mine.append(rec)
        elif rec.get("action") in _SOURCE_WIDE and not rec.get("alert_id"):
            source_wide.append(rec)
    if not mine:
        return []
    src = mine[0].get("source")
    lo, hi = mine[0]["seq"], mine[-1]["seq"]
    extra = [r for r in source_wide if r.get("source") == src and lo <= r["seq"] <= hi]
    return sorted(mine + extra, key=lambda r: r["seq"])


# ---- facts drawn from the records -------------------------------------------------------------------------------
def _summary(alert_id: str, records: list[dict[str, Any]], reg: Registry) -> dict[str, Any]:
    snaps = [r["event"]["alert"] for r in records if (r.get("event") or {}).get("alert")]
    snap: dict[str, Any] = snaps[-1] if snaps else {}
    first = next((r for r in records if r.get("action") == "raise"), records[0] if records else {})
    ack = next((r for r in records if r.get("action") == "ack"), None)
    close = next((r for r in records if r.get("action") == "close" or
                  (r.get("event") or {}).get("to_state") == "NORMAL"), None)
    raised = snap.get("raised_ms", first.get("at_ms"))
    acked_ms = snap.get("acked_ms") or (ack or {}).get("at_ms")
    acked_by = snap.get("acked_by") or (ack or {}).get("actor")
    ent_id = snap.get("enterprise") or first.get("enterprise") or ""
    src_id = snap.get("source") or first.get("source") or ""
    sensor_id = snap.get("sensor", "")
    ent, src, sensor = reg.enterprises.get(ent_id), reg.sources.get(src_id), reg.sensors.get(sensor_id)
    level = snap.get("level")
    max_level = snap.get("max_level", level)
    return {
        "alert_id": alert_id, "key": snap.get("key", ""),
        "enterprise": f"{ent.name_zh} / {ent.name_en} ({ent_id})" if ent else ent_id,
        "source": f"{src.name_zh} / {src.name_en} ({src_id})" if src else src_id,
        "sensor": f"{sensor.name_zh} / {sensor.name_en} ({sensor_id})" if sensor else sensor_id,
        "rule": snap.get("rule", ""), "rule_version": snap.get("rule_version") or first.get("rule_version") or "",
        "level": _level(level), "max_level": _level(max_level), "colour": _colour(max_level),
        "clause": snap.get("clause", ""), "state": _state(snap.get("state")),
        "value": snap.get("value"), "threshold": snap.get("threshold"), "unit": snap.get("unit", ""),
        "raised_ms": raised, "acked_ms": acked_ms, "acked_by": acked_by,
        "ack_after": _duration(acked_ms - raised) if acked_ms is not None and raised is not None else "—",
        "closed_ms": snap.get("closed_ms") or (close or {}).get("at_ms"),
        "text_zh": snap.get("text_zh", ""), "text_en": snap.get("text_en", ""),
    }


def _level(level: Any) -> str:
    if level not in LEVEL_NAMES:
        return "—"
    zh, colour_zh, en, colour_en = LEVEL_NAMES[level]
    return f"{zh}（{colour_zh}） / {en} ({colour_en})"


def _colour(level: Any) -> str:
    return LEVEL_NAMES[level][3] if level in LEVEL_NAMES else "grey"


def _state(state: Any) -> str:
    return f"{STATE_NAMES[state][0]} / {STATE_NAMES[state][1]}" if state in STATE_NAMES else "—"


def _tier(tier: Any, name: str | None = None) -> str:
    name = name or (TIERS[tier] if isinstance(tier, int) and 0 <= tier < len(TIERS) else "")
    zh, en = TIER_NAMES.get(name, (name, name))
    return f"{tier}: {zh} / {en}" if tier is not None else "—"


def _transitions(records: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in records:
        if r.get("kind") not in ("transition", "command", "rejected") or r.get("action") == "comment":
            continue
        ev = r.get("event") or {}
        move = f"{ev.get('from_state') or '—'} → {ev.get('to_state') or '—'}"
        action = r.get("action") or ""
        if r.get("kind") == "rejected":
            action = f"{action} (rejected 拒绝)"
        level = (ev.get("alert") or {}).get("level")
        short = f"{LEVEL_NAMES[level][0]} {LEVEL_NAMES[level][3]}" if level in LEVEL_NAMES else "—"
        rows.append([cst(r.get("at_ms")), r.get("actor") or "", action, move, short, r.get("reason") or ""])
    return rows


def _notifications(records: list[dict[str, Any]]) -> list[list[str]]:
    tiers: dict[str, tuple[Any, str]] = {}
    rows = []
    for r in records:
        ev = r.get("event") or {}
        if r.get("kind") == "page" and ev.get("page"):
            p = ev["page"]
            tiers[p.get("page_id", "")] = (p.get("tier"), p.get("tier_name", ""))
            names = "、".join(x.get("name", "") for x in p.get("recipients", []))
            what = f"paged 呼叫 ({r.get('action') or p.get('purpose', '')}, repeat {p.get('repeat', 0)})"
            rows.append([cst(r.get("at_ms")), _tier(p.get("tier"), p.get("tier_name")), names, "—", "—", what, "—"])
        elif r.get("kind") == "notify" and ev.get("notify"):
            n = ev["notify"]
            tier, name = tiers.get(n.get("page_id", ""), (None, ""))
            result = "delivered 送达" if n.get("ok") else f"failed 失败: {n.get('status', '')} {n.get('error') or ''}"
            channel = n.get("channel", "")
            if n.get("fallback_of"):
                channel += f" (fallback for {n['fallback_of']})"
            rows.append([cst(n.get("ts_ms", r.get("at_ms"))), _tier(tier, name),
                         f"{n.get('recipient', '')} {n.get('address', '')}".strip(), channel,
                         str(n.get("attempt", "")), result.strip(), n.get("receipt") or "—"])
    return rows


def _comments(records: list[dict[str, Any]]) -> list[list[str]]:
    return [[cst(r.get("at_ms")), r.get("actor") or "", r.get("reason") or ""] for r in records
            if r.get("action") == "comment"]


def _reading_rows(readings: list[tuple[int, float]]) -> tuple[list[str], list[list[str]]]:
    if len(readings) <= RAW_POINTS_MAX:
        return ["时间 Time", "读数 Value"], [[cst(t), f"{v:g}"] for t, v in readings]
    ts = np.fromiter((t for t, _ in readings), dtype=np.int64, count=len(readings))
    vs = np.fromiter((v for _, v in readings), dtype=np.float64, count=len(readings))
    order = np.argsort(ts, kind="stable")
    ts, vs = ts[order], vs[order]
    minute = ts // 60_000
    starts = np.flatnonzero(np.r_[True, minute[1:] != minute[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    mins, maxs = np.minimum.reduceat(vs, starts), np.maximum.reduceat(vs, starts)
    rows = [[cst(int(minute[s]) * 60_000, seconds=False), f"{lo:g}", f"{hi:g}", f"{vs[e]:g}", str(e - s + 1)]
            for s, e, lo, hi in zip(starts, ends, mins, maxs, strict=True)]
    return ["分钟 Minute", "最小 Min", "最大 Max", "最后 Last", "点数 Points"], rows


def _sparkline(readings: list[tuple[int, float]], threshold: float | None, mark_ms: int | None) -> str:
    if len(readings) < 2:
        return ""
    w, h, pad = 640, 90, 4
    pts = sorted(readings)
    t0, t1 = pts[0][0], pts[-1][0]
    vals = [v for _, v in pts] + ([threshold] if threshold is not None else [])
    lo, hi = min(vals), max(vals)
    span_t, span_v = max(t1 - t0, 1), (hi - lo) or 1.0

    def x(t: float) -> float:
        return pad + (t - t0) / span_t * (w - 2 * pad)

    def y(v: float) -> float:
        return h - pad - (v - lo) / span_v * (h - 2 * pad)

    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
             f'aria-label="readings 读数曲线"><rect width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>']
    if threshold is not None:
        parts.append(f'<line x1="{pad}" x2="{w - pad}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
                     'stroke="#c00" stroke-dasharray="4 3"><title>threshold 限值</title></line>')
    if mark_ms is not None and t0 <= mark_ms <= t1:
        parts.append(f'<line x1="{x(mark_ms):.1f}" x2="{x(mark_ms):.1f}" y1="0" y2="{h}" stroke="#888">'
                     '<title>raised 报警</title></line>')
    parts.append(f'<polyline fill="none" stroke="#036" stroke-width="1.5" points="{line}"/></svg>')
    return "".join(parts)


# ---- rendering ------------------------------------------------------------------------------------------------
def _md_table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "无 / none\n"

    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p>无 / none</p>"
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


_TRANSITION_HEAD = ["时间 Time (CST)", "操作人 Who", "动作 Action", "状态 From → To", "等级 Level", "原因 Why"]
_NOTIFY_HEAD = ["时间 Time (CST)", "层级 Tier", "接收人 Recipient", "渠道 Channel", "次数 Attempt", "结果 Result",
                "回执 Receipt"]
_COMMENT_HEAD = ["时间 Time (CST)", "操作人 Who", "内容 Comment"]


def render_report(alert_id: str, records: list[dict[str, Any]], readings: list[tuple[int, float]] | None,
                  registry: Registry, fmt: str = "md", verdict: Verdict | None = None,
                  generated_ms: int | None = None) -> str:
    """The inspector's report. Pure: the verdict and the export time are passed in by the caller."""
    if fmt not in ("md", "html"):
        raise ValueError(f"fmt must be 'md' or 'html', not {fmt!r}")
    s = _summary(alert_id, records, registry)
    value = "—" if s["value"] is None else f"{s['value']:g} {s['unit']}"
    thr = "—" if s["threshold"] is None else f"{s['threshold']:g} {s['unit']}"
    summary = [
        ("企业 Enterprise", s["enterprise"]), ("危险源 Hazard source", s["source"]), ("传感器 Sensor", s["sensor"]),
        ("规则 Rule", f"{s['rule']} (version {s['rule_version']})"), ("等级 Level", s["level"]),
        ("最高等级 Highest level", f"{s['max_level']} — colour {s['colour']}"), ("依据 Clause", s["clause"]),
        ("读数/限值 Value / threshold", f"{value} / {thr}"), ("当前状态 State", s["state"]),
        ("报警时间 Raised", cst(s["raised_ms"])), ("确认时间 Acknowledged", cst(s["acked_ms"])),
        ("确认人 Acknowledged by", s["acked_by"] or "—"), ("确认用时 Time to acknowledge", s["ack_after"]),
        ("关闭时间 Closed", cst(s["closed_ms"])), ("报警内容", s["text_zh"]), ("Alert text", s["text_en"]),
    ]
    if verdict is None:
        chain = "未校验 / not verified"
    elif verdict.ok:
        chain = f"完整 / intact — {verdict.problem}"
    else:
        chain = f"异常 / NOT INTACT — {verdict.problem}"
    made = f"导出时间 Exported {cst(generated_ms)}" if generated_ms is not None else ""
    sections: list[tuple[str, Any]] = [
        ("报警概要 / Alert summary", ("kv", summary)),
        ("状态变化 / Transitions", ("table", _TRANSITION_HEAD, _transitions(records))),
        ("升级与通知 / Escalation and notifications", ("table", _NOTIFY_HEAD, _notifications(records))),
        ("备注 / Comments", ("table", _COMMENT_HEAD, _comments(records))),
    ]
    if readings is None:
        sections.append(("报警前后读数 / Readings around the alert", ("text", "未提供 / not included")))
    else:
        head, rows = _reading_rows(readings)
        sections.append(("报警前后读数 / Readings around the alert",
                         ("readings", head, rows, _sparkline(readings, s["threshold"], s["raised_ms"]))))
    sections.append(("审计链校验 / Audit chain verification", ("text", chain)))
    title = f"报警处置记录 / Alert timeline — {alert_id}"
    return _html(title, made, sections) if fmt == "html" else _md(title, made, sections)


def _md(title: str, made: str, sections: list[tuple[str, Any]]) -> str:
    out = [f"# {title}\n", f"{made}\n" if made else ""]
    for name, body in sections:
        out.append(f"\n## {name}\n")
        kind = body[0]
        if kind == "kv":
            out.append(_md_table(["项目 Item", "内容 Value"], [[k, v] for k, v in body[1]]))
        elif kind == "text":
            out.append(body[1] + "\n")
        else:
            out.append(_md_table(body[1], body[2]))
    return "".join(out)


_CSS = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}th{background:#eee}")


def _html(title: str, made: str, sections: list[tuple[str, Any]]) -> str:
    out = [f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if made:
        out.append(f"<p>{html.escape(made)}</p>")
    for name, body in sections:
        out.append(f"<h2>{html.escape(name)}</h2>")
        kind = body[0]
        if kind == "kv":
            out.append(_html_table(["项目 Item", "内容 Value"], [[k, v] for k, v in body[1]]))
        elif kind == "text":
            out.append(f"<p>{html.escape(body[1])}</p>")
        elif kind == "readings":
            out.append(body[3] + _html_table(body[1], body[2]))
        else:
            out.append(_html_table(body[1], body[2]))
    out.append("</body></html>")
    return "".join(out)


# ---- InfluxDB (the only I/O besides the audit file) ---------------------------------------------------------------
def _flux_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def readings_flux(bucket: str, sensor: str, start_ms: int, stop_ms: int) -> str:
    return (f"from(bucket: {_flux_string(bucket)}) "
            f"|> range(start: time(v: {int(start_ms) * 1_000_000}), stop: time(v: {int(stop_ms) * 1_000_000})) "
            f'|> filter(fn: (r) => r._measurement == "reading" and r._field == "v" '
            f"and r.sensor == {_flux_string(sensor)}) "
            f'|> keep(columns: ["_time", "_value"]) |> sort(columns: ["_time"])')


def _points(tables: Iterable[Any]) -> list[tuple[int, float]]:
    return [(int(rec.get_time().timestamp() * 1000), float(rec.get_value())) for t in tables for rec in t.records]


def readings_around(settings: Settings, sensor: str, start_ms: int, stop_ms: int) -> list[tuple[int, float]]:
    from influxdb_client import InfluxDBClient

    flux = readings_flux(settings.influx_bucket, sensor, start_ms, stop_ms)
    with InfluxDBClient(url=settings.influx_url, token=settings.influx_token(), org=settings.influx_org) as c:
        return _points(c.query_api().query(flux))


async def readings_around_async(settings: Settings, sensor: str, start_ms: int,
                                stop_ms: int) -> list[tuple[int, float]]:
    from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

    flux = readings_flux(settings.influx_bucket, sensor, start_ms, stop_ms)
    async with InfluxDBClientAsync(url=settings.influx_url, token=settings.influx_token(),
                                   org=settings.influx_org) as c:
        return _points(await c.query_api().query(flux))


def export_report(audit_path: str | Path, alert_id: str, registry: Registry, fmt: str = "md",
                  settings: Settings | None = None, margin_ms: int = 15 * 60_000, now_ms: int | None = None) -> str:
    """timeline + chain verdict + (when settings are given) readings from InfluxDB, rendered."""
    records = timeline(audit_path, alert_id)
    if not records:
        raise LookupError(f"alert {alert_id} is not in {audit_path}; check the id (see the console or the topic)")
    verdict = verify(audit_path)
    readings = None
    snap = next((r["event"]["alert"] for r in reversed(records) if (r.get("event") or {}).get("alert")), {})
    sensor = snap.get("sensor")
    if settings is not None and sensor in registry.sensors:
        start = int(snap.get("raised_ms") or records[0]["at_ms"]) - margin_ms
        stop = int(snap.get("closed_ms") or records[-1]["at_ms"]) + margin_ms
        readings = readings_around(settings, sensor, start, stop)
    return render_report(alert_id, records, readings, registry, fmt, verdict, now_ms)


def main(argv: list[str] | None = None) -> int:
    import time

    from hazardwatch.config import load_settings
    from hazardwatch.registry import load_registry

    ap = argparse.ArgumentParser(prog="python -m alerts.timeline", description="export one alert's timeline")
    ap.add_argument("audit_path")
    ap.add_argument("alert_id")
    ap.add_argument("--html", action="store_true", help="HTML with a sparkline instead of Markdown")
    ap.add_argument("--out", help="write here instead of stdout")
    ap.add_argument("--margin-min", type=float, default=15.0, help="readings this long before and after")
    ap.add_argument("--no-readings", action="store_true", help="do not query InfluxDB")
    a = ap.parse_args(argv)
    settings = load_settings()
    reg = load_registry(settings.registry_path)
    text = export_report(a.audit_path, a.alert_id, reg, "html" if a.html else "md",
                         None if a.no_readings else settings, int(a.margin_min * 60_000), int(time.time() * 1000))
    if a.out:
        Path(a.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
