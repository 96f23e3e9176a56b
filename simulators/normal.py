"""A normal day for every sensor of the chosen hazard sources, as a plant engineer would recognise it.

Each source is simulated by its kind's physics (tank farms and gas areas: tanks and gas detectors; tailings dams;
coal mines) with its own random stream derived from (seed, source id), so a scenario can rebuild one source and
get exactly what the whole-city day has for it. Sensors the physics does not recognise by their id pattern get a
plausible steady reading with noise, so any registry can be played.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from hazardwatch.registry import Registry, Sensor
from simulators import coalmine, gas, tailings, tank
from simulators.sampling import lag, quantise, shared_scan, traces
from simulators.trace import Trace

_TANK = re.compile(r"^(?P<tag>.+-T\d+)-(?P<kind>LT|TT|PT|FT)$")
_FACE = re.compile(r"^(?P<face>.+-F\d+)-(?:CH4-(?P<loc>T0|T1|T2|SH)|(?P<other>CO|WS))$")
GAS_KINDS = ("gas_combustible", "gas_toxic", "oxygen")
# Fugitive whiffs per source and day (truck loading, sampling, draining tank bottoms): peaks as a share of the
# detector's level-1 alarm.
PUFFS_PER_DAY = 0.8
PUFF_PEAK = (0.08, 0.24)


def source_rng(seed: int, source: str) -> np.random.Generator:
    """Independent, reproducible stream per source."""
    return np.random.default_rng([seed, zlib.crc32(source.encode())])


@dataclass
class SourceDay:
    source: str
    traces: list[Trace]
    farm: tank.FarmTruth | None = None
    tanks: list[tank.TankSensors] = field(default_factory=list)
    dam: tailings.DamTruth | None = None
    mine: coalmine.MineTruth | None = None
    gas_ids: list[str] = field(default_factory=list)
    gas_true: np.ndarray | None = None  # fugitive excess at the gas detectors' scan times


@dataclass
class NormalDay:
    sources: dict[str, SourceDay]

    @property
    def traces(self) -> list[Trace]:
        return [t for s in self.sources.values() for t in s.traces]


def tank_sensors(registry: Registry, source: str) -> list[tank.TankSensors]:
    tags: dict[str, dict[str, str]] = {}
    for sid in registry.sources[source].sensors:
        m = _TANK.match(sid)
        if m and registry.sensors[sid].kind in ("level", "temperature", "pressure", "flow"):
            tags.setdefault(m["tag"], {})[m["kind"].lower()] = sid
    return [tank.TankSensors(tag, **kinds) for tag, kinds in tags.items()]


def face_sensors(registry: Registry, source: str) -> tuple[list[coalmine.FaceSensors], str | None, str | None]:
    faces: dict[str, dict[str, str]] = {}
    t3 = mr = None
    for sid in registry.sources[source].sensors:
        m = _FACE.match(sid)
        if m:
            key = (m["loc"] or m["other"]).lower()
            faces.setdefault(m["face"], {})[key] = sid
        elif sid.endswith("-T3-CH4"):
            t3 = sid
        elif sid.endswith("-MR-CH4"):
            mr = sid
    return [coalmine.FaceSensors(**v) for v in faces.values()], t3, mr


def dam_sensors(registry: Registry, source: str) -> tailings.DamSensors:
    by: dict[str, list[str]] = {}
    for sid in registry.sources[source].sensors:
        by.setdefault(registry.sensors[sid].kind, []).append(sid)
    return tailings.DamSensors(*(tuple(by.get(k, [])) for k in ("phreatic_depth", "displacement", "freeboard",
                                                                  "dry_beach", "rainfall", "pond_level")))


def gas_detectors(registry: Registry, source: str) -> list[str]:
    return [s for s in registry.sources[source].sensors if registry.sensors[s].kind in GAS_KINDS]


def _first_limit(sensor: Sensor) -> float:
    highs = [lim.value for lim in sensor.limits if lim.name in ("H", "HH")]
    return min(highs) if highs else sensor.range[1] * 0.25


def gas_traces(rng: np.random.Generator, registry: Registry, ids: list[str], duration_s: float,
               scans: dict[float, np.ndarray], excess: dict[str, np.ndarray] | None = None,
               puffs: bool = True, respond: bool = True) -> tuple[list[Trace], dict[str, np.ndarray]]:
    """Gas and oxygen detectors of one source. `excess`: true concentration above clean air per sensor at its
    scan times (a release; respond=False when the detectors' response is already applied to it); a normal
    day adds rare fugitive whiffs. Returns the traces and the true excess used."""
    out: list[Trace] = []
    used: dict[str, np.ndarray] = {}
    groups: dict[tuple[str, float, float], list[str]] = {}
    for sid in ids:
        s = registry.sensors[sid]
        groups.setdefault((s.kind, s.period_s, s.range[1]), []).append(sid)
    for (kind, period, hi), members in groups.items():
        t = shared_scan(rng, period, duration_s, scans)
        model = gas.model_for(kind, hi)
        true = np.zeros((len(members), len(t)))
        if kind != "oxygen" and puffs and len(t) > 1:
            alarm = np.array([_first_limit(registry.sensors[m]) for m in members])[:, None]
            whiff = gas.fugitive_puffs(rng, t, len(members), PUFFS_PER_DAY * len(members) / max(len(ids), 1),
                                       (PUFF_PEAK[0], PUFF_PEAK[1]))
            true = true + whiff * alarm
        if not respond:
            true = lag(true, period, model.tau_s, 0.0)  # the whiffs still pass through the detector
        if excess:
            for i, m in enumerate(members):
                if m in excess:
                    true[i] = true[i] + excess[m]
        vals = gas.readings(rng, model, t, true if true.any() else None, len(members), respond=respond)
        out += traces(members, t, vals)
        used.update({m: true[i] for i, m in enumerate(members)})
    return out, used


def generic_traces(rng: np.random.Generator, registry: Registry, ids: list[str], duration_s: float,
                   scans: dict[float, np.ndarray]) -> list[Trace]:
    """Sensors no physics here models: a steady value a quarter into the range, small noise."""
    out = []
    for sid in ids:
        s = registry.sensors[sid]
        t = shared_scan(rng, s.period_s, duration_s, scans)
        lo, hi = s.range
        base = lo + 0.25 * (hi - lo)
        limits = [lim.value for lim in s.limits]
        if limits:
            # Stay well inside the alarm band the registry defines for it.
            lows = [lim.value for lim in s.limits if lim.name in ("LL", "L")]
            highs = [lim.value for lim in s.limits if lim.name in ("H", "HH")]
            a = max(lows) if lows else lo
            b = min(highs) if highs else hi
            base = a + 0.4 * (b - a) if lows else min(base, 0.5 * (lo + b))
        v = base + rng.normal(0.0, 0.002 * (hi - lo), len(t))
        out += traces([sid], t, quantise(v, 10.0 ** np.floor(np.log10((hi - lo) / 1e4))))
    return out


def tank_source(rng: np.random.Generator, registry: Registry, source: str, duration_s: float, start_hour: float,
                scans: dict[float, np.ndarray]) -> tuple[list[Trace], tank.FarmTruth | None, list[tank.TankSensors]]:
    tanks = tank_sensors(registry, source)
    if not tanks:
        return [], None, []
    spec = tank.farm_spec(source)
    truth = tank.simulate_farm(rng, spec, len(tanks), duration_s, start_hour)
    periods = {sid: registry.sensors[sid].period_s for tk in tanks for sid in (tk.lt, tk.tt, tk.pt, tk.ft) if sid}
    return tank.farm_traces(rng, truth, tanks, spec, duration_s, periods, scans), truth, tanks


def simulate_source(registry: Registry, source: str, duration_s: float, seed: int, start_hour: float = 0.0
                    ) -> SourceDay:
    """One source's normal day."""
    rng = source_rng(seed, source)
    src = registry.sources[source]
    scans: dict[float, np.ndarray] = {}
    day = SourceDay(source, [])
    if src.kind == "tailings_dam":
        ids = dam_sensors(registry, source)
        dam = tailings.simulate_dam(rng, duration_s, start_hour, tailings.DamSpec())
        period = registry.sensors[src.sensors[0]].period_s
        day.traces = tailings.dam_traces(rng, dam, ids, duration_s, start_hour, period, scans)
        day.dam = dam
    elif src.kind == "coal_mine":
        faces, t3, mr = face_sensors(registry, source)
        mine = coalmine.simulate_mine(rng, len(faces), duration_s, start_hour)
        period = registry.sensors[src.sensors[0]].period_s
        day.traces = coalmine.mine_traces(rng, mine, faces, t3, mr, duration_s, period, scans)
        day.mine = mine
    else:
        day.traces, day.farm, day.tanks = tank_source(rng, registry, source, duration_s, start_hour, scans)
        day.gas_ids = gas_detectors(registry, source)
        gas_t, _ = gas_traces(rng, registry, day.gas_ids, duration_s, scans)
        day.traces += gas_t
    done = {t.sensor for t in day.traces}
    rest = [s for s in src.sensors if s not in done]
    day.traces += generic_traces(rng, registry, rest, duration_s, scans)
    return day


def normal_day(registry: Registry, sources: list[str] | tuple[str, ...] | None, duration_s: float, seed: int,
               start_hour: float = 0.0) -> NormalDay:
    srcs = list(registry.sources) if sources is None else list(sources)
    return NormalDay({s: simulate_source(registry, s, duration_s, seed, start_hour) for s in srcs})


def normal_traces(registry: Registry, sources: list[str] | tuple[str, ...] | None, duration_s: float, seed: int,
                  start_hour: float = 0.0) -> list[Trace]:
    """Every sensor of `sources` (None: all) over duration_s, starting at start_hour local time."""
    return normal_day(registry, sources, duration_s, seed, start_hour).traces
