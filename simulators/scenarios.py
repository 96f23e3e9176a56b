"""The incidents of domain.md §8 and a normal day, with their ground truth.

Each builder takes the registry and a seed and returns a Scenario: every sensor of the scenario's sources plays
(the incident's physics where it acts, the source's normal day elsewhere), plus the onset, the hazardous point,
the alerts that must come before it, the injected sensor faults and the alerts that are a correct consequence.
Nothing here knows the detectors' internals beyond what the registry configures; the traces are physics, and
if a detector misjudges them that is the detector's finding, not something to tune away here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hazardwatch.registry import Registry
from simulators import coalmine, faults, gas, normal, tailings, tank
from simulators.sampling import lag, resample
from simulators.trace import Expected, Fault, Scenario, Trace

MIN = 60.0
HOUR = 3600.0


def _merge(base: list[Trace], replace: list[Trace]) -> list[Trace]:
    """`base` with the sensors of `replace` swapped in (order kept, new ones appended)."""
    new = {t.sensor: t for t in replace}
    out = [new.pop(t.sensor, t) for t in base]
    return out + list(new.values())


def _swap(traces: list[Trace], trace: Trace) -> list[Trace]:
    return [trace if t.sensor == trace.sensor else t for t in traces]


def _trace(traces: list[Trace], sensor: str) -> Trace:
    return next(t for t in traces if t.sensor == sensor)


def _crossing(t: np.ndarray, x: np.ndarray, level: float, above: bool = True, after: float = -np.inf) -> float:
    hit = ((x >= level) if above else (x <= level)) & (t >= after)
    return float(t[np.argmax(hit)]) if hit.any() else float("inf")


# ---- Buncefield: a stuck level gauge on a filling tank --------------------------------------------------------

def buncefield(registry: Registry, seed: int) -> Scenario:
    """An S01 gasoline tank fills overnight from the pipeline. At two-thirds full its servo gauge sticks; the
    inflow goes on; the independent high-level switch has failed too (it has no sensor in the registry, so it
    is simply absent). The stuck alarm (level gauge flat while the inflow meter shows product moving) is the one
    chance to stop the transfer before the tank overflows."""
    rng = np.random.default_rng([seed, 1])
    src, tag = "S01", "S01-T05"  # not T03: its multivariate model would see the fill too
    spec = tank.farm_spec(src)
    start_hour = 0.5
    level0 = rng.uniform(52.0, 58.0)
    rate = rng.uniform(1000.0, 1150.0)
    fill_from = 10 * MIN
    # How long the fill takes to the rim decides the scenario's length; simulate generously, then cut.
    horizon = fill_from + (100.0 - level0) * spec.m3_per_pct() / rate * HOUR + 30 * MIN
    receipt = [tank.Transfer(0, fill_from, 10 * horizon, rate, "receipt")]
    truth = tank.simulate_farm(rng, spec, 1, horizon, start_hour, np.array([level0]), receipt)
    onset = _crossing(truth.t_s, truth.level_pct[0], 100.0 * 2.0 / 3.0)
    hazard = _crossing(truth.t_s, truth.level_pct[0], 100.0)
    duration = hazard + 2 * MIN
    day = normal.simulate_source(registry, src, duration, seed, start_hour)
    ids = next(tk for tk in day.tanks if tk.tag == tag)
    periods = {s: registry.sensors[s].period_s for s in (ids.lt, ids.tt, ids.pt, ids.ft) if s}
    scans = {p: _trace(day.traces, s).t_s for s, p in periods.items()}
    incident = tank.farm_traces(rng, truth, [ids], spec, duration, periods, scans)
    traces = _merge(day.traces, incident)
    lt = _trace(traces, ids.lt or "")
    stuck_lt, fault = faults.stuck(registry, lt, onset, duration)
    traces = _swap(traces, stuck_lt)
    why = "液位计卡滞而进料仍在继续：立即停止输转 / gauge frozen while product flows in: stop the transfer now"
    return Scenario(
        name="buncefield", title_zh="储罐溢流：液位计卡滞、高液位开关失效（邦斯菲尔德型）",
        title_en="Tank overfill: stuck level gauge, failed high-level switch (Buncefield type)",
        duration_s=duration, sources=(src,), traces=traces,
        expected=[Expected(ids.lt or "", "stuck", 2, onset, hazard, why=why)],
        faults=[fault], onset_s=onset, hazard_s=hazard,
        notes=(f"{tag} fills at {rate:.0f} m3/h from {level0:.1f} %; the gauge sticks at "
               f"{stuck_lt.value[-1]:.1f} % (2/3 full); true level reaches 100 % (overflow) at "
               f"{hazard / HOUR:.2f} h. The independent high-level switch is assumed failed: it has no sensor in "
               "the registry. The rest of S01 plays its normal night (its own pipeline plan is not aware of this "
               "fill)."),
    )


# ---- gas release: a growing LPG leak at a pump row of the sphere area -----------------------------------------

def gas_release(registry: Registry, seed: int) -> Scenario:
    """A pump seal in S03 starts leaking and the hole grows over a quarter of an hour. The plume, carried by a
    light wind along the pump row, reaches the row's three detectors (one 2oo3 voting group) in turn."""
    rng = np.random.default_rng([seed, 2])
    src = "S03"
    start_hour = 14.0
    leak_at = 10 * MIN
    duration = leak_at + 35 * MIN
    day = normal.simulate_source(registry, src, duration, seed, start_hour)
    gc = [s for s in registry.sources[src].sensors if registry.sensors[s].kind == "gas_combustible"]
    pos = gas.detector_layout(len(gc))
    group = registry.sources[src].voting[1]
    first = gc.index(group.sensors[0])
    leak = (pos[first, 0] - 2.0, pos[first, 1] - 2.0)
    rel = gas.Release(leak, leak_at, rng.uniform(0.22, 0.3), 900.0, rng.uniform(1.3, 1.8), rng.uniform(10.0, 16.0))
    fine = np.arange(0.0, duration + 2.0, 1.0)
    true_pct = gas.LPG.percent_lel(gas.plume_kgm3(rng, fine, pos, rel))
    seen = lag(true_pct, 1.0, gas.COMBUSTIBLE.tau_s, 0.0)  # what a perfect detector would show
    # The hazardous point: an explosive cloud is forming when the half-minute mean at a detector reaches
    # 50 %LEL (peaks then touch the LEL). One eddy touching 50 %LEL for a second is not yet a cloud.
    cloud = gas.running_mean(true_pct, 1.0, 30.0)
    hazard = float(gas.first_crossing(fine, cloud, 50.0).min())
    h_times = gas.first_crossing(fine, seen, 25.0)
    first_id = gc[int(np.argmin(h_times))]
    period = registry.sensors[gc[0]].period_s
    scans = {period: _trace(day.traces, gc[0]).t_s}
    t = scans[period]
    excess = dict(zip(gc, resample(fine, seen, t), strict=True))
    incident, _ = normal.gas_traces(rng, registry, gc, duration, scans, excess, puffs=False, respond=False)
    traces = _merge(day.traces, incident)
    reached = [gc[i] for i in np.flatnonzero(seen.max(axis=1) >= 20.0)]
    others = [g.id for g in registry.sources[src].voting if sum(s in reached for s in g.sensors) >= 2]
    return Scenario(
        name="gas_release", title_zh="液化石油气泄漏：羽流依次到达同一表决组的探测器",
        title_en="LPG release: the plume reaches the detectors of one voting group in turn",
        duration_s=duration, sources=(src,), traces=traces,
        expected=[
            Expected(first_id, "limit", 3, leak_at, hazard, "H",
                     "首台探测器一级报警：现场确认泄漏 / first detector level-1 alarm: send someone to look"),
            Expected(group.id, "vote", 2, leak_at, hazard, "confirmed",
                     "2oo3 确认：启动泄漏处置、切断泵 / 2oo3 confirmed: start the leak procedure, stop the pump"),
        ],
        consequential=[(s, "limit") for s in reached] + [(g, "vote") for g in others if g != group.id],
        onset_s=leak_at, hazard_s=hazard,
        notes=(f"leak {rel.q_max_kgps:.2f} kg/s after {rel.growth_s / 60:.0f} min at ({leak[0]:.0f}, "
               f"{leak[1]:.0f}) m, wind "
               f"{rel.wind_speed:.1f} m/s toward {rel.wind_to_deg:.0f}°; detectors reached (>= 20 %LEL): "
               f"{', '.join(reached)}; hazard = 30-s mean of the true concentration at a detector reaches 50 %LEL."),
    )


# ---- tailings: rainstorm, phreatic rise, accelerating creep to failure ----------------------------------------

def tailings_dam(registry: Registry, seed: int) -> Scenario:
    """S08 (dam grade 2). A rainstorm fills the 24-h gauge past 50 mm; the pond rises and the phreatic line
    climbs toward the surface over the next day (depth falls through orange); the wetted section starts
    accelerating creep and fails days later (Fukuzono: 1/v falls linearly to zero at failure)."""
    rng = np.random.default_rng([seed, 3])
    src = "S08"
    start_hour = 0.0
    storm = tailings.Storm(rng.uniform(24.0, 30.0) * HOUR, rng.uniform(115.0, 140.0), rng.uniform(14.0, 18.0))
    t_a = storm.start_s + 28 * HOUR
    t_f = t_a + rng.uniform(60.0, 72.0) * HOUR
    a = tuple(x * rng.uniform(0.9, 1.1) for x in (30.0, 24.0, 20.0))
    failure = tailings.Failure((2, 3, 4), t_a, t_f, a)
    duration = t_f
    spec = tailings.DamSpec()
    srng = normal.source_rng(seed, src)
    truth = tailings.simulate_dam(srng, duration, start_hour, spec, storm, failure)
    ids = normal.dam_sensors(registry, src)
    period = registry.sensors[ids.rain[0]].period_s
    traces = tailings.dam_traces(srng, truth, ids, duration, start_hour, period)
    onset = storm.start_s
    orange = [s for i, s in enumerate(ids.piezometers)
              if truth.depth_m[i].min() <= registry.limit(s, "L").value - 0.05]
    main_ds = ids.displacement[failure.points[int(np.argmax(a))]]
    expected = [
        Expected(ids.rain[0], "limit", 3, onset, t_f, "H",
                 "暴雨黄色预警：加密巡查 / rainstorm yellow: step up patrols"),
        *[Expected(s, "limit", 2, onset, t_f, "L", "浸润线橙色：降低库水位 / phreatic orange: lower the pond")
          for s in orange],
        # The forecast's own onset is the start of accelerating creep: a forecast before it is a false alarm.
        Expected(main_ds, "failure_forecast", 1, t_a, t_f,
                 why="失稳预报：撤离下游人员 / failure forecast: evacuate downstream"),
        Expected(src, "dam_warning", 2, onset, t_f, why="坝体综合预警 / dam roll-up warning"),
    ]
    return Scenario(
        name="tailings", title_zh="尾矿库：暴雨、浸润线上升、位移加速直至溃坝",
        title_en="Tailings dam: rainstorm, rising phreatic line, accelerating displacement to failure",
        duration_s=duration, sources=(src,), traces=traces, expected=expected,
        consequential=[(f"{src}-PZ*", "limit"), (f"{src}-DS*", "limit"), (src, "dam_warning"),
                       *[(ids.displacement[p], "failure_forecast") for p in failure.points]],
        onset_s=onset, hazard_s=t_f,
        notes=(f"storm {storm.total_mm:.0f} mm over {storm.duration_h:.0f} h from {storm.start_s / HOUR:.1f} h; "
               f"tertiary creep of DS03-DS05 from {t_a / HOUR:.1f} h, failure at {t_f / HOUR:.1f} h (hazard); "
               f"piezometers past orange: {', '.join(orange)}."),
    )


# ---- methane: ventilation failure at a working face ------------------------------------------------------------

def methane(registry: Registry, seed: int) -> Scenario:
    """S10 face F1 loses its air while the shearer cuts. Methane climbs through 1.0 % (alarm) to 1.5 % (the
    outstation cuts the face's power); the upper-corner sensor T0 falls silent during the climb. Air is
    restored after 40 minutes."""
    src = "S10"
    start_hour = 9.0
    faces, t3, mr = normal.face_sensors(registry, src)
    duration_guess = 4 * HOUR
    plan_truth = coalmine.simulate_mine(normal.source_rng(seed, src), len(faces), duration_guess, start_hour)
    cut = plan_truth.cutting[0]
    tt = plan_truth.t_s
    # Fail during a cutting run, at least 10 minutes into it, after an hour of normal operation.
    running = np.convolve(cut, np.ones(60), mode="full")[: len(cut)] >= 60
    t_fail = float(tt[np.argmax(running & (tt >= HOUR))])
    failure = coalmine.VentFailure(0, t_fail, 0.1, restore_s=t_fail + 40 * MIN)
    duration = t_fail + 100 * MIN
    rng = normal.source_rng(seed, src)
    truth = coalmine.simulate_mine(rng, len(faces), duration, start_hour, failure=failure)
    traces = coalmine.mine_traces(rng, truth, faces, t3, mr, duration, registry.sensors[t3 or ""].period_s)
    f1 = faces[0]
    hazard = _crossing(truth.t_s, truth.t1[0], coalmine.POWER_OFF_PCT, after=t_fail)  # true T1 reaches 1.5 %
    t0_silent = _crossing(truth.t_s, truth.t0[0], 0.8, after=t_fail)
    t0_trace, t0_fault = faults.dropout(registry, _trace(traces, f1.t0 or ""), t0_silent, t0_silent + 20 * MIN)
    traces = _swap(traces, t0_trace)
    period = registry.sensors[f1.t1 or ""].period_s
    expected = [
        Expected(f1.ws or "", "limit", 2, t_fail, hazard, "L",
                 "风速低：查明风流短路 / low air velocity: find the short"),
        Expected(f1.t1 or "", "limit", 2, t_fail, hazard, "H", "瓦斯超限报警：停止作业、撤人 / methane alarm: stop, "
                 "withdraw"),
        Expected(f1.t1 or "", "limit", 1, t_fail, hazard + period, "HH",
                 "断电：一个巡检周期内 / power-off within one polling cycle of the true crossing"),
    ]
    return Scenario(
        name="methane", title_zh="煤矿工作面通风失效：瓦斯超限、上隅角传感器中断",
        title_en="Coal face ventilation failure: methane over the limits, upper-corner sensor silent",
        duration_s=duration, sources=(src,), traces=traces, expected=expected, faults=[t0_fault],
        consequential=[(f"{src}-F1-*", "limit"), (mr or "", "limit")],
        onset_s=t_fail, hazard_s=hazard,
        notes=(f"F1 air velocity falls to 0.1 m/s at {t_fail / HOUR:.2f} h while cutting; the shearer's power is "
               f"cut at {truth.power_off_s[0] / HOUR:.3f} h (SH or T1 at 1.5 %); true T1 reaches "
               f"1.5 % at {hazard / HOUR:.3f} h (hazard); T0 silent "
               f"from {t0_silent / HOUR:.2f} h for 20 min; air restored after 40 min. The HH expectation's "
               f"deadline is the true crossing + one polling cycle ({period:.0f} s)."),
    )


# ---- a normal day with injected sensor faults ------------------------------------------------------------------

def normal_day(registry: Registry, seed: int) -> Scenario:
    """Every source for 24 h from midnight, with one of each sensor fault. The only alerts due are the faults'."""
    duration = 24 * HOUR
    day = normal.normal_day(registry, None, duration, seed, 0.0)
    traces = day.traces
    fault_list: list[Fault] = []
    expected: list[Expected] = []
    rng = np.random.default_rng([seed, 5])

    def inject(new: Trace, fault: Fault) -> None:
        nonlocal traces
        traces = _swap(traces, new)
        fault_list.append(fault)

    # stuck: an S01 level gauge freezes half an hour into a receipt; the instrument tech frees it 40 min later.
    s01 = day.sources.get("S01")
    if s01 is not None and s01.farm is not None:
        fills = [tr for tr in s01.farm.transfers if tr.kind == "receipt" and tr.end_s - tr.start_s > 2 * HOUR
                 and tr.start_s + 80 * MIN < duration and s01.tanks[tr.tank].tag != "S01-T03"]
        if fills:
            fill = fills[0]
            lt = s01.tanks[fill.tank].lt or ""
            start = fill.start_s + 30 * MIN
            new, f = faults.stuck(registry, _trace(traces, lt), start, start + 40 * MIN)
            inject(new, f)
            expected.append(Expected(lt, "stuck", 2, start, start + 40 * MIN,
                                     why="液位计卡滞 / level gauge stuck during a receipt"))
    picks = {
        "drift": _first_of(registry, "S02", "gas_combustible", 4),
        "dropout": _first_of(registry, "S07", "temperature", 1),
        "spikes": _first_of(registry, "S05", "temperature", 2),
        "bad_quality": _first_of(registry, "S06", "gas_toxic", 6),
    }
    if picks["drift"]:
        s, start = picks["drift"], 10 * HOUR
        new, f = faults.drift(registry, _trace(traces, s), start, start + 4 * HOUR, 3.0)
        inject(new, f)
        expected.append(Expected(s, "drift", 4, start, start + 4 * HOUR, why="零点漂移 / zero drift: recalibrate"))
    if picks["dropout"]:
        s, start = picks["dropout"], 3 * HOUR
        new, f = faults.dropout(registry, _trace(traces, s), start, start + 30 * MIN)
        inject(new, f)
        expected.append(Expected(s, "offline", 3, start, start + 30 * MIN, why="数据中断 / sensor silent"))
    if picks["spikes"]:
        s, start = picks["spikes"], 12 * HOUR
        new, f = faults.spikes(registry, _trace(traces, s), start, start + HOUR, 3, rng)
        inject(new, f)
    if picks["bad_quality"]:
        s, start = picks["bad_quality"], 20 * HOUR
        new, f = faults.bad_quality(registry, _trace(traces, s), start, start + 20 * MIN)
        inject(new, f)
        expected.append(Expected(s, "bad_quality", 4, start, start + 20 * MIN, why="质量位坏 / quality bad"))
    return Scenario(
        name="normal_day", title_zh="正常的一天（含注入的传感器故障）",
        title_en="A normal day (with injected sensor faults)",
        duration_s=duration, sources=tuple(registry.sources), traces=traces, expected=expected, faults=fault_list,
        notes="Every source, 24 h from 00:00: tank transfers, two production shifts and a maintenance shift "
              "underground, a dry or drizzly day at the dams. No process alarm is due; the faults' alerts are.",
    )


def _first_of(registry: Registry, source: str, kind: str, nth: int) -> str | None:
    """The nth (1-based) sensor of a kind at a source, if the registry has it."""
    if source not in registry.sources:
        return None
    ids = [s for s in registry.sources[source].sensors if registry.sensors[s].kind == kind]
    return ids[nth - 1] if len(ids) >= nth else None


SCENARIOS: dict[str, Callable[[Registry, int], Scenario]] = {
    "buncefield": buncefield,
    "gas_release": gas_release,
    "tailings": tailings_dam,
    "methane": methane,
    "normal_day": normal_day,
}
