"""Alarm-system performance KPIs (ISA-18.2 / IEC 62682 section 16, EEMUA 191) over the alert-events stream.

Definitions used here (decided, so every console is measured the same way):
- An *annunciation* is a ``transition`` event with action ``raise`` or ``realarm``: the moments an operator is
  asked to act. Upgrades within one alert, commands, pages and notifications are not counted.
- A *console position* is an enterprise control room (``event["enterprise"]``); ``kpi_report`` also aggregates
  per district and for the city. The EEMUA benchmarks are per operator, so the district and city verdicts are
  an overview, not a judgement of one person's load.
- A *flood window* is a set of more than 10 annunciations of one position that all fall within less than
  10 minutes (checked at each annunciation over the 10 minutes before it, so batch and streaming agree).
  Overlapping flood windows form one *episode*; its *first-out* is the episode's first annunciation, the
  alert that most likely started the cascade. ``percent_time_in_flood`` is EEMUA's figure: the share of the
  period's 10-minute intervals (aligned to the period start) that hold more than 10 annunciations.
- *Chattering*: 3 or more annunciations of the same alert key (source|rule|sensor) within 60 s.
- *Standing*: an alert whose latest snapshot is not NORMAL and was raised more than 24 h before ``now_ms``.
- *Priority*: the four government warning levels map onto EEMUA's three priorities as level 1 (red) = high,
  level 2 (orange) = medium, levels 3-4 (yellow, blue) = low, against the target mix 5 % / 15 % / 80 %.
Replayed events (same ``event_id``) are counted once.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from alerts.model import NORMAL, event_id

WINDOW_MS = 600_000
FLOOD_OVER = 10  # more than this many annunciations in one window is a flood
CHATTER_MS = 60_000
CHATTER_MIN = 3
STANDING_MS = 24 * 3600_000
ANNUNCIATIONS = ("raise", "realarm")
FLOOD_RULE_VERSION = "flood/isa18.2-eemua191-v1"

# EEMUA 191 target mix and the mapping of the four warning levels onto its three priorities.
PRIORITY_OF_LEVEL = {1: "high", 2: "medium", 3: "low", 4: "low"}
PRIORITY_TARGET = {"high": 0.05, "medium": 0.15, "low": 0.80}
# Benchmarks per console: ISA-18.2 table 5 / EEMUA 191 (alarms per operator).
PER_DAY_ACCEPTABLE = 150  # ~1 per 10 minutes: very likely acceptable
PER_DAY_MANAGEABLE = 300  # ~2 per 10 minutes: maximum manageable
FLOOD_TIME_TARGET = 1.0  # percent of time in flood
STANDING_TARGET = 5  # fewer than this many standing alerts

_CST = timedelta(hours=8)


def is_annunciation(ev: dict[str, Any]) -> bool:
    return ev.get("kind") == "transition" and ev.get("action") in ANNUNCIATIONS


def _unique(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for ev in events:
        eid = ev.get("event_id")
        if eid is not None and eid in seen:
            continue
        seen.add(eid)
        out.append(ev)
    return out


def _texts(ev: dict[str, Any]) -> tuple[str, str]:
    snap = ev.get("alert") or {}
    return snap.get("text_zh", ""), snap.get("text_en", "")


def _key(ev: dict[str, Any]) -> str:
    return (ev.get("alert") or {}).get("key") or str(ev.get("alert_id"))


def _level(ev: dict[str, Any]) -> int | None:
    lvl = (ev.get("alert") or {}).get("level")
    return lvl if lvl in PRIORITY_OF_LEVEL else None


# ---- floods --------------------------------------------------------------------------------------------------
def flood_episodes(anns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flood episodes of one position's annunciations (sorted by ts_ms)."""
    ts = np.array([a["ts_ms"] for a in anns], dtype=np.int64)
    if len(ts) <= FLOOD_OVER:
        return []
    # For each annunciation i, the first one less than 10 minutes before it: window = [first[i], i].
    first = np.searchsorted(ts, ts - WINDOW_MS, side="right")
    flooded = np.flatnonzero(np.arange(len(ts)) - first + 1 > FLOOD_OVER)
    episodes: list[dict[str, Any]] = []
    for i in flooded.tolist():
        j = int(first[i])
        ep = episodes[-1] if episodes else None
        if ep is not None and ts[j] <= ep["end_ms"]:  # overlaps the running episode: extend it
            ep["end_ms"], ep["_last"] = int(ts[i]), i
            continue
        zh, en = _texts(anns[j])
        episodes.append({"start_ms": int(ts[j]), "end_ms": int(ts[i]), "_first": j, "_last": i,
                         "first_out": {"alert_id": anns[j].get("alert_id"), "text_zh": zh, "text_en": en,
                                       "event_id": anns[j].get("event_id")}})
    for ep in episodes:
        ep["count"] = ep.pop("_last") - ep.pop("_first") + 1
        ep["duration_s"] = (ep["end_ms"] - ep["start_ms"]) / 1000
    return episodes


def _interval_counts(ts: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    n_int = max(1, -(-(end_ms - start_ms) // WINDOW_MS))
    idx = np.clip((ts - start_ms) // WINDOW_MS, 0, n_int - 1)
    return np.bincount(idx, minlength=n_int)


# ---- chattering, standing, priority ----------------------------------------------------------------------------
def chattering(anns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in anns:
        by_key[_key(a)].append(a)
    out = []
    for key, items in by_key.items():
        if len(items) < CHATTER_MIN:
            continue
        ts = np.array([a["ts_ms"] for a in items], dtype=np.int64)
        within = np.arange(len(ts)) - np.searchsorted(ts, ts - CHATTER_MS, side="right") + 1
        peak = int(within.max())
        if peak >= CHATTER_MIN:
            zh, en = _texts(items[-1])
            out.append({"key": key, "count": len(items), "max_in_60s": peak, "first_ms": int(ts[0]),
                        "last_ms": int(ts[-1]), "alert_id": items[-1].get("alert_id"), "text_zh": zh,
                        "text_en": en})
    return sorted(out, key=lambda c: (-c["max_in_60s"], -c["count"], c["key"]))


def standing(snapshots: dict[str, dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
    out = []
    for aid, s in snapshots.items():
        raised = s.get("raised_ms")
        if s.get("state", NORMAL) == NORMAL or raised is None or now_ms - raised <= STANDING_MS:
            continue
        overlay = next((o for o in ("shelved", "suppressed", "out_of_service") if s.get(o)), None)
        out.append({"alert_id": aid, "key": s.get("key", ""), "state": s.get("state"), "level": s.get("level"),
                    "raised_ms": raised, "age_h": round((now_ms - raised) / 3600_000, 1), "overlay": overlay,
                    "text_zh": s.get("text_zh", ""), "text_en": s.get("text_en", "")})
    return sorted(out, key=lambda x: x["raised_ms"])


def priority_distribution(anns: list[dict[str, Any]]) -> dict[str, Any]:
    levels = np.array([_level(a) or 0 for a in anns], dtype=np.int64)
    counts = np.bincount(levels, minlength=5)[1:5]
    total = int(counts.sum())
    by_level = {lvl: {"count": int(c), "share": (float(c) / total if total else 0.0)}
                for lvl, c in zip(range(1, 5), counts, strict=True)}
    bands = {"high": 0.0, "medium": 0.0, "low": 0.0}
    for lvl, v in by_level.items():
        bands[PRIORITY_OF_LEVEL[lvl]] += v["share"]
    return {"by_level": by_level, "by_priority": bands, "target": dict(PRIORITY_TARGET),
            "unknown_level": int(np.count_nonzero(levels == 0)), "total": total}


# ---- verdicts ------------------------------------------------------------------------------------------------------
def _verdict(status: str, zh: str, en: str, value: Any, target: str) -> dict[str, Any]:
    return {"status": status, "value": value, "target": target, "text_zh": zh, "text_en": en}


def verdicts(k: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each KPI against its benchmark: status ok / manageable / over (or no_data)."""
    per_day = k["per_day"]["average"]
    out = {}
    if per_day <= PER_DAY_ACCEPTABLE:
        out["alarm_rate"] = _verdict("ok", "报警频率可接受", "alarm rate very likely acceptable", per_day,
                                     "≤150/day (~1 per 10 min)")
    elif per_day <= PER_DAY_MANAGEABLE:
        out["alarm_rate"] = _verdict("manageable", "报警频率处于可管理上限内", "alarm rate at most manageable",
                                     per_day, "≤300/day (~2 per 10 min)")
    else:
        out["alarm_rate"] = _verdict("over", "报警过多，值班人员可能无法处置", "alarm rate over the manageable "
                                     "maximum; operators are likely to miss alarms", per_day, "≤300/day")
    peak = k["alarms_per_10min"]["peak"]
    out["peak_10min"] = (_verdict("ok", "10分钟峰值正常", "10-minute peak within the flood limit", peak, "≤10")
                         if peak <= FLOOD_OVER else
                         _verdict("over", "出现报警泛滥", "alarm flood occurred", peak, "≤10 per 10 min"))
    pct = k["percent_time_in_flood"]
    out["flood_time"] = (_verdict("ok", "泛滥时间占比达标", "time in flood within target", pct, "<1%")
                         if pct < FLOOD_TIME_TARGET else
                         _verdict("over", "泛滥时间占比超标", "too much time in flood", pct, "<1%"))
    n_chat = len(k["chattering"])
    out["chattering"] = (_verdict("ok", "无抖动报警", "no chattering alerts", n_chat, "0")
                         if n_chat == 0 else
                         _verdict("over", "存在抖动报警，请调整死区或延时", "chattering alerts: add deadband or "
                                  "on/off delays", n_chat, "0"))
    n_std = len(k["standing"])
    out["standing"] = (_verdict("ok", "长期未消除报警少于5条", "fewer than 5 standing alerts", n_std, "<5")
                       if n_std < STANDING_TARGET else
                       _verdict("over", "长期未消除报警过多", "too many standing alerts", n_std, "<5"))
    pr = k["priority"]
    if pr["total"] == 0:
        out["priority"] = _verdict("no_data", "无报警", "no annunciations", None, "5/15/80 %")
    elif pr["by_priority"]["high"] <= 2 * PRIORITY_TARGET["high"] and \
            pr["by_priority"]["medium"] <= 2 * PRIORITY_TARGET["medium"]:
        out["priority"] = _verdict("ok", "优先级分布合理", "priority mix near the target", pr["by_priority"],
                                   "high ≤10 %, medium ≤30 % (target 5/15/80 %)")
    else:
        out["priority"] = _verdict("over", "高等级报警占比过高（等级虚高）", "too many high-priority alerts "
                                   "(priority inflation)", pr["by_priority"], "high ≤10 %, medium ≤30 %")
    return out


# ---- the KPI report --------------------------------------------------------------------------------------------------
def _cst_day(ms: int) -> str:
    return (datetime.fromtimestamp(ms / 1000, tz=UTC) + _CST).strftime("%Y-%m-%d")


def _position_kpis(anns: list[dict[str, Any]], snaps: dict[str, dict[str, Any]], start_ms: int,
                   now_ms: int) -> dict[str, Any]:
    period_ms = max(now_ms - start_ms, WINDOW_MS)  # a shorter period would inflate the averages
    ts = np.array([a["ts_ms"] for a in anns], dtype=np.int64)
    n = len(ts)
    if n:
        within = np.searchsorted(ts, ts + WINDOW_MS, side="left") - np.arange(n)  # [t, t + 10 min)
        peak_i = int(np.argmax(within))
        peak, peak_start = int(within[peak_i]), int(ts[peak_i])
    else:
        peak, peak_start = 0, None
    intervals = _interval_counts(ts, start_ms, start_ms + period_ms)
    floods = flood_episodes(anns)
    by_day: dict[str, int] = defaultdict(int)
    for t in ts.tolist():
        by_day[_cst_day(t)] += 1
    k = {
        "period": {"start_ms": start_ms, "end_ms": now_ms, "hours": round(period_ms / 3600_000, 3)},
        "annunciations": n,
        "alarms_per_10min": {"average": n * WINDOW_MS / period_ms, "peak": peak, "peak_start_ms": peak_start},
        "per_day": {"average": n * 86_400_000 / period_ms, "by_day_cst": dict(sorted(by_day.items()))},
        "floods": floods,
        "percent_time_in_flood": 100.0 * float(np.count_nonzero(intervals > FLOOD_OVER)) / len(intervals),
        "chattering": chattering(anns),
        "standing": standing(snaps, now_ms),
        "priority": priority_distribution(anns),
    }
    k["verdicts"] = verdicts(k)
    return k


def kpis(events: Iterable[dict[str, Any]], now_ms: int,
         position_of: Callable[[dict[str, Any]], str] = lambda ev: ev["enterprise"],
         since_ms: int | None = None) -> dict[str, dict[str, Any]]:
    """KPIs per console position over the events up to now_ms (the period starts at since_ms or the first
    event, so a quiet console is measured over the same time as a busy one)."""
    evs = sorted((e for e in _unique(events) if e.get("ts_ms") is not None and e["ts_ms"] <= now_ms),
                 key=lambda e: e["ts_ms"])
    start = since_ms if since_ms is not None else (evs[0]["ts_ms"] if evs else now_ms)
    anns: dict[str, list[dict[str, Any]]] = defaultdict(list)
    snaps: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for ev in evs:
        if ev["ts_ms"] < start or ev.get("kind") == "flood":
            continue
        pos = position_of(ev)
        if is_annunciation(ev):
            anns[pos].append(ev)
        snap = ev.get("alert")
        if snap and ev.get("alert_id"):
            snaps[pos][ev["alert_id"]] = snap  # later events carry the later snapshot
    positions = sorted(set(anns) | set(snaps))
    return {p: {"position": p, **_position_kpis(anns[p], snaps[p], start, now_ms)} for p in positions}


def kpi_report(events: Iterable[dict[str, Any]], now_ms: int, since_ms: int | None = None) -> dict[str, Any]:
    evs = list(events)
    return {"enterprise": kpis(evs, now_ms, lambda e: e["enterprise"], since_ms),
            "district": kpis(evs, now_ms, lambda e: e["district"], since_ms),
            "city": kpis(evs, now_ms, lambda e: "city", since_ms)}


# ---- streaming flood watch -----------------------------------------------------------------------------------------
class FloodWatch:
    """Emits one ``flood`` event per episode, at the annunciation that makes a position's 10-minute count
    exceed 10, naming the first-out. Same rule as ``flood_episodes``; state export/import as plain dicts.

    Replays are recognised by event id while they are inside the window; an annunciation that arrives late
    is placed in time order, so a slightly out-of-order topic gives the same episodes."""

    def __init__(self, position_of: Callable[[dict[str, Any]], str] = lambda ev: ev["enterprise"]):
        self.position_of = position_of
        # position -> {"window": [[ts, event_id, alert_id, zh, en, source, district]...], "episode_end_ms",
        #              "episodes": int}
        self.state: dict[str, dict[str, Any]] = {}

    def observe(self, ev: dict[str, Any]) -> dict[str, Any] | None:
        if not is_annunciation(ev):
            return None
        pos = self.position_of(ev)
        st = self.state.setdefault(pos, {"window": [], "episode_end_ms": None, "episodes": 0})
        win: list[list[Any]] = st["window"]
        if any(w[1] == ev["event_id"] for w in win):
            return None
        zh, en = _texts(ev)
        t = int(ev["ts_ms"])
        newest = max(t, win[-1][0]) if win else t
        if t <= newest - WINDOW_MS:
            return None  # too late to be part of any current window
        bisect.insort(win, [t, ev["event_id"], ev.get("alert_id"), zh, en, ev.get("source"), ev.get("district")],
                      key=lambda w: w[0])
        while win and win[0][0] <= newest - WINDOW_MS:
            win.pop(0)
        if len(win) <= FLOOD_OVER:
            return None
        first = win[0]
        end = st["episode_end_ms"]
        st["episode_end_ms"] = newest if end is None else max(end, newest)
        if end is not None and first[0] <= end:
            return None  # the running episode continues
        st["episodes"] += 1
        return self._flood_event(pos, first, len(win), newest, ev)

    @staticmethod
    def _flood_event(pos: str, first: list[Any], count: int, ts: int, ev: dict[str, Any]) -> dict[str, Any]:
        t0, first_eid, first_alert, zh, en, source, district = first
        reason_zh = f"报警泛滥：10分钟内 {count} 条报警（超过 {FLOOD_OVER} 条），首发报警：{zh or first_alert}"
        reason_en = (f"alarm flood: {count} alerts within 10 min (more than {FLOOD_OVER}); first-out: "
                     f"{en or first_alert}")
        return {
            "event_id": event_id("flood", pos, t0, first_eid), "kind": "flood", "action": "flood", "ts_ms": ts,
            "actor": "system", "reason": f"{reason_zh} / {reason_en}", "rule_version": FLOOD_RULE_VERSION,
            "source": source, "enterprise": ev.get("enterprise"), "district": district or ev.get("district"),
            "alert_id": None, "alert": None, "from_state": None, "to_state": None, "page": None, "notify": None,
            "flood": {"position": pos, "count": count, "window_s": WINDOW_MS // 1000, "first_out": first_alert,
                      "first_out_text_zh": zh, "first_out_text_en": en, "started_ms": t0},
        }

    def export(self) -> dict[str, Any]:
        return {"version": 1, "positions": {p: {"window": [list(w) for w in s["window"]],
                                                "episode_end_ms": s["episode_end_ms"], "episodes": s["episodes"]}
                                            for p, s in self.state.items()}}

    def import_(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"FloodWatch state version {state.get('version')!r} is not 1; start from empty")
        self.state = {p: {"window": [list(w) for w in s["window"]], "episode_end_ms": s["episode_end_ms"],
                          "episodes": int(s["episodes"])} for p, s in state["positions"].items()}
