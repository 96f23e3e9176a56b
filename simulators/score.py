"""Score a scenario's alerts against its ground truth, for the engineer and for the duty officer.

Input records are detection dicts (DetectorEngine output) or alert records from the `alerts` topic (the same
dict with more fields). Only raises count as alerts (`raise`, and `realarm` of a latched gas alarm). Each raise
is put in exactly one bin, in this order: an Expected it satisfies, an injected Fault that explains it, a
consequential pattern of the scenario, else UNEXPECTED (a false or unexplained alarm).

The alarm rate is counted the way the alert manager annunciates (alerts/manager.py): one alert per source, rule
and sensor or group; a raise while that alert's condition is already active is an upgrade, not a new alarm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from alerts.kpi import FLOOD_OVER, PER_DAY_ACCEPTABLE, WINDOW_MS
from alerts.model import alert_key
from simulators.trace import Expected, Fault, Scenario

RAISES = ("raise", "realarm")
CLEARS = ("clear", "rtn")
FAULT_GRACE_S = 1800.0  # a fault's alerts may come a little after it ends (a repaired gauge jumps, rate fires)
ACCEPTABLE_PER_10MIN = PER_DAY_ACCEPTABLE * WINDOW_MS / 86_400_000  # ~1 per 10 min (ISA-18.2 / EEMUA 191)


@dataclass
class Alert:
    t_s: float
    source: str
    enterprise: str
    target: str  # group id for group rules, else the sensor
    sensor: str
    rule: str
    limit: str
    level: int
    category: str
    state: str
    value: float
    why: str = ""  # which expected / fault / pattern explains it


@dataclass
class ExpectedResult:
    target: str
    rule: str
    limit: str | None
    level: int
    onset_s: float
    hazard_s: float
    why: str
    fired: bool
    first_s: float | None
    lead_s: float | None  # hazard - first raise
    delay_s: float | None  # first raise - onset
    level_seen: int | None
    passed: bool


@dataclass
class FaultResult:
    sensor: str
    kind: str
    start_s: float
    end_s: float
    rules: tuple[str, ...]
    alerts: list[Alert]

    @property
    def detected(self) -> bool:
        return bool(self.alerts)

    @property
    def first_s(self) -> float | None:
        return min((a.t_s for a in self.alerts), default=None)


@dataclass
class Rate:
    enterprise: str
    annunciations: int
    mean_per_10min: float
    max_per_10min: int
    floods: int  # windows with more than 10 annunciations in 10 min

    @property
    def ok(self) -> bool:
        return self.mean_per_10min <= ACCEPTABLE_PER_10MIN and self.max_per_10min <= FLOOD_OVER


@dataclass
class ScenarioReport:
    name: str
    title_zh: str
    title_en: str
    duration_s: float
    onset_s: float | None
    hazard_s: float | None
    expected: list[ExpectedResult]
    faults: list[FaultResult]
    consequential: list[Alert]
    unexpected: list[Alert]
    rates: list[Rate]
    notes: str = ""
    early: list[Alert] = field(default_factory=list)  # expected kinds raised before the onset (in unexpected too)

    @property
    def expected_ok(self) -> bool:
        return all(e.passed for e in self.expected)

    @property
    def rate_ok(self) -> bool:
        return all(r.ok for r in self.rates)

    @property
    def ok(self) -> bool:
        # An incident may flood a console; a normal day must not.
        rate = self.rate_ok if self.onset_s is None else True
        return self.expected_ok and not self.unexpected and rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"], d["expected_ok"], d["rate_ok"] = self.ok, self.expected_ok, self.rate_ok
        for f, fr in zip(d["faults"], self.faults, strict=True):
            f["detected"], f["first_s"] = fr.detected, fr.first_s
        for r, rr in zip(d["rates"], self.rates, strict=True):
            r["ok"] = rr.ok
        return d

    def render(self) -> str:
        return _render(self)


# ---- matching ------------------------------------------------------------------------------------------------

def _targets(rec: dict[str, Any]) -> set[str]:
    out = {rec.get("sensor"), rec.get("group"), rec.get("source")}
    return {t for t in out if t}


def _members(rec: dict[str, Any]) -> set[str]:
    return {rec.get("sensor", ""), *rec.get("voters", []), *rec.get("members", [])} - {""}


def _matches_expected(rec: dict[str, Any], e: Expected) -> bool:
    return (rec["rule"] == e.rule and e.target in _targets(rec)
            and (e.limit is None or rec.get("limit") == e.limit))


def _matches_fault(rec: dict[str, Any], t_s: float, f: Fault) -> bool:
    return (rec["rule"] in f.rules and f.sensor in _members(rec)
            and f.start_s <= t_s <= f.end_s + FAULT_GRACE_S)


def _matches_pattern(rec: dict[str, Any], pattern: tuple[str, str]) -> bool:
    target, rule = pattern
    return fnmatchcase(rec["rule"], rule) and any(fnmatchcase(t, target) for t in _targets(rec))


def _alert(rec: dict[str, Any], t0_ms: int, why: str = "") -> Alert:
    return Alert((rec["ts_ms"] - t0_ms) / 1000.0, rec["source"], rec.get("enterprise", ""),
                 rec.get("group") or rec["sensor"], rec["sensor"], rec["rule"], rec.get("limit") or "",
                 int(rec["level"]), rec.get("category", ""), rec["state"], float(rec.get("value", np.nan)), why)


def score(scenario: Scenario, records: list[dict[str, Any]], t0_ms: int) -> ScenarioReport:
    recs = sorted(records, key=lambda r: r["ts_ms"])
    raises = [r for r in recs if r["state"] in RAISES]
    results: list[ExpectedResult] = []
    used: set[int] = set()
    early: list[Alert] = []
    too_early: set[int] = set()  # an expected kind of alert before its onset: a false alarm, whatever else
    for e in scenario.expected:
        hits = [(i, r) for i, r in enumerate(raises) if _matches_expected(r, e)]
        after = [(i, r) for i, r in hits if (r["ts_ms"] - t0_ms) / 1000.0 >= e.onset_s]
        used.update(i for i, _ in after)
        before = [(i, r) for i, r in hits if (r["ts_ms"] - t0_ms) / 1000.0 < e.onset_s]
        too_early.update(i for i, _ in before)
        early += [_alert(r, t0_ms, "before the onset") for _, r in before]
        # The first raise at the required level or more severe counts (a dam's yellow before its orange does
        # not); without one, the first raise of any level is shown and the verdict says too low.
        severe = [r for _, r in after if int(r["level"]) <= e.level]
        pick = severe[0] if severe else (after[0][1] if after else None)
        first = None if pick is None else (pick["ts_ms"] - t0_ms) / 1000.0
        in_time = [r for _, r in after if (r["ts_ms"] - t0_ms) / 1000.0 <= e.hazard_s]
        seen = min((int(r["level"]) for r in in_time), default=None)
        passed = bool(severe) and first is not None and first <= e.hazard_s
        results.append(ExpectedResult(e.target, e.rule, e.limit, e.level, e.onset_s, e.hazard_s, e.why,
                                      first is not None, first, None if first is None else e.hazard_s - first,
                                      None if first is None else first - e.onset_s, seen, passed))
    fault_results = [FaultResult(f.sensor, f.kind, f.start_s, f.end_s, f.rules, []) for f in scenario.faults]
    consequential: list[Alert] = []
    unexpected: list[Alert] = []
    for i, r in enumerate(raises):
        t = (r["ts_ms"] - t0_ms) / 1000.0
        fr = next((fr for fr, f in zip(fault_results, scenario.faults, strict=True) if _matches_fault(r, t, f)),
                  None)
        if i in used:
            if fr is not None:  # an expected alert that is also the fault's: the fault was caught
                fr.alerts.append(_alert(r, t0_ms, "expected"))
            continue
        if fr is not None:
            fr.alerts.append(_alert(r, t0_ms, f"fault {fr.kind} on {fr.sensor}"))
            continue
        # A consequence cannot come before its cause.
        cause_yet = scenario.onset_s is None or t >= scenario.onset_s
        pat = None if i in too_early or not cause_yet else \
            next((p for p in scenario.consequential if _matches_pattern(r, p)), None)
        if pat is not None:
            consequential.append(_alert(r, t0_ms, f"consequence {pat[0]} / {pat[1]}"))
            continue
        unexpected.append(_alert(r, t0_ms, "unexpected"))
    return ScenarioReport(scenario.name, scenario.title_zh, scenario.title_en, scenario.duration_s,
                          scenario.onset_s, scenario.hazard_s, results, fault_results, consequential, unexpected,
                          alarm_rates(scenario, recs, t0_ms), scenario.notes, early)


# ---- alarm rate ----------------------------------------------------------------------------------------------

def annunciations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The raises an operator is asked to act on: the first raise of an alert, or a raise after its condition
    had gone (re-alarm). A raise while the alert's condition is active (H then HH) is an upgrade."""
    active: dict[str, set[str]] = {}
    out = []
    for r in sorted(records, key=lambda r: r["ts_ms"]):
        key = alert_key(r)
        conds = active.setdefault(key, set())
        sub = r.get("limit") or ""
        if r["state"] in RAISES:
            if not conds:
                out.append(r)
            conds.add(sub)
        elif r["state"] in CLEARS:
            conds.discard(sub)
    return out


def alarm_rates(scenario: Scenario, records: list[dict[str, Any]], t0_ms: int) -> list[Rate]:
    """Per console position (enterprise): annunciations per 10-minute interval of the scenario."""
    anns = annunciations(records)
    n_win = max(1, int(np.ceil(scenario.duration_s * 1000 / WINDOW_MS)))
    ents = sorted({r.get("enterprise", "") for r in records} - {""})
    out = []
    for ent in ents:
        ts = np.array([r["ts_ms"] - t0_ms for r in anns if r.get("enterprise", "") == ent], dtype=np.int64)
        counts = np.bincount(np.clip(ts // WINDOW_MS, 0, n_win - 1), minlength=n_win) if len(ts) else \
            np.zeros(n_win, dtype=np.int64)
        # Sliding 10-minute windows for floods, as alerts/kpi.py judges them.
        ts_sorted = np.sort(ts)
        within = np.arange(len(ts_sorted)) - np.searchsorted(ts_sorted, ts_sorted - WINDOW_MS, side="right") + 1
        out.append(Rate(ent, len(ts), float(counts.mean()), int(counts.max()),
                        int(np.count_nonzero(within > FLOOD_OVER))))
    return out


# ---- text ----------------------------------------------------------------------------------------------------

def _clock(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "—"
    sign = "-" if s < 0 else ""
    s = abs(s)
    return f"{sign}{int(s // 3600)}:{int(s % 3600 // 60):02d}:{int(s % 60):02d}"


def _dur(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "—"
    if abs(s) < 120:
        return f"{s:.0f} s"
    if abs(s) < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


LEVEL_ZH = {1: "一级红", 2: "二级橙", 3: "三级黄", 4: "四级蓝"}


def _level(lv: int | None) -> str:
    return "—" if lv is None else f"{LEVEL_ZH.get(lv, '?')}/L{lv}"


def _alert_rows(alerts: list[Alert], limit: int = 40) -> list[str]:
    rows = [f"    {_clock(a.t_s):>9}  {a.target:<16} {a.rule:<16} {a.limit:<10} {_level(a.level):<9} {a.category}"
            for a in alerts[:limit]]
    if len(alerts) > limit:
        rows.append(f"    … 另有 {len(alerts) - limit} 条 / {len(alerts) - limit} more")
    return rows


def _render(r: ScenarioReport) -> str:
    verdict = "通过 PASS" if r.ok else "未通过 FAIL"
    lines = [f"场景 Scenario: {r.name} — {r.title_zh} / {r.title_en}",
             f"结论 Verdict: {verdict}    时长 duration {_dur(r.duration_s)}    "
             f"起始 onset {_clock(r.onset_s)}    危险点 hazard {_clock(r.hazard_s)}    (时刻自场景开始 h:mm:ss)"]
    if r.notes:
        lines.append(f"说明 Notes: {r.notes}")
    lines += ["", "应报警项 Expected alerts",
              "    目标 target       规则 rule         限值 limit 要求 need  首报 first  提前 lead   延迟 delay  "
              "所见 seen   判定 verdict"]
    for e in r.expected:
        ok = "✓ 通过 pass" if e.passed else ("✗ 过晚/级别不足 late/low" if e.fired else "✗ 未报 missed")
        lines.append(f"    {e.target:<16} {e.rule:<16} {e.limit or '':<10} {_level(e.level):<9} "
                     f"{_clock(e.first_s):>9}  {_dur(e.lead_s):>9}  {_dur(e.delay_s):>9}  {_level(e.level_seen):<9} "
                     f"{ok}")
        if e.why:
            lines.append(f"        {e.why}")
    if r.faults:
        lines += ["", "注入的传感器故障 Injected sensor faults"]
        for f in r.faults:
            det = f"已发现 detected {_clock(f.first_s)}" if f.detected else "未发现 not detected"
            lines.append(f"    {f.sensor:<16} {f.kind:<12} {_clock(f.start_s)}–{_clock(f.end_s)}  {det}  "
                         f"({len(f.alerts)} 条 alerts: {', '.join(sorted({a.rule for a in f.alerts})) or '—'})")
    lines += ["", f"连带报警 Consequential alerts ({len(r.consequential)})"]
    lines += _alert_rows(r.consequential) or ["    无 none"]
    lines += ["", f"意外报警 UNEXPECTED alerts ({len(r.unexpected)})"]
    lines += _alert_rows(r.unexpected) or ["    无 none"]
    lines += ["", f"报警率（每控制室每10分钟）Alarm rate per console (enterprise) per 10 min; "
                  f"ISA-18.2 可接受 acceptable ≤ {ACCEPTABLE_PER_10MIN:.2f} mean, ≤ {FLOOD_OVER} peak",
              "    企业 enterprise  报警数 alarms  平均 mean  峰值 max  泛滥 floods  判定"]
    for rate in r.rates:
        lines.append(f"    {rate.enterprise:<16} {rate.annunciations:>7}  {rate.mean_per_10min:>9.2f}  "
                     f"{rate.max_per_10min:>7}  {rate.floods:>9}   {'✓' if rate.ok else '✗'}")
    return "\n".join(lines)
