"""Storage tanks: level from a volume balance, inflow metering, product temperature and vapour-space pressure.

A tank farm is planned the way its operators run it: a pipeline (or a ship) delivers batches one tank at a time
into the emptiest tank, and trucks load from one or two full tanks during the day shift (a tank is never filled
and emptied at once). Flows are piecewise constant with pump ramps; the level integrates them over the tank's
cross-section, so the inflow meter and the level slope always agree.

Sensor kinds in the registry: *-LT level (% of height), *-TT product temperature (°C), *-PT vapour-space gauge
pressure (kPa), *-FT inflow (m3/h, only where the registry has one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulators.sampling import (
    ambient_temperature,
    hour_of_day,
    lag,
    quantise,
    red_noise,
    resample,
    shared_scan,
    traces,
)
from simulators.trace import Trace

P_ATM_KPA = 101.325
DT_S = 10.0  # physics grid: the level gauges' period
DT_THERMAL_S = 60.0  # product temperature moves over days: a minute grid is plenty
LOW_FLOW_CUTOFF_M3H = 5.0  # flow meters report 0 below this (transmitter low-flow cut-off)


@dataclass(frozen=True)
class Product:
    name: str
    expansion_per_c: float  # volumetric thermal expansion coefficient of the liquid
    dpv_dt_kpa_per_c: float  # slope of the product's vapour pressure near storage temperature
    valve_kpa: float  # breather valve (pressure side) set pressure, gauge
    vacuum_kpa: float  # breather valve vacuum setting (positive number)
    receipt_temp_c: float  # temperature of incoming product
    refrigerated_c: float | None = None  # held at this temperature by refrigeration
    controlled_kpa: float | None = None  # held near this gauge pressure by boil-off compressors


GASOLINE = Product("gasoline", 0.00125, 2.0, 2.0, 0.5, 24.0)
CRUDE = Product("crude", 0.00085, 0.9, 1.8, 0.4, 27.0)
# The registry gives S03's tanks an atmospheric pressure transmitter (-5..50 kPa) and a -40..120 °C thermometer,
# which cannot hold a pressurised LPG sphere (0.3-0.8 MPa); what fits those instruments is refrigerated,
# butane-rich LPG near atmospheric pressure, held at about -5 °C by boil-off compressors.
LPG_REFRIGERATED = Product("lpg", 0.0020, 0.0, 15.0, 0.3, -4.0, refrigerated_c=-5.0, controlled_kpa=6.0)
AMMONIA_REFRIGERATED = Product("ammonia", 0.0024, 0.0, 15.0, 0.3, -32.0, refrigerated_c=-33.0, controlled_kpa=5.0)
METHANOL = Product("methanol", 0.00119, 0.75, 2.0, 0.5, 22.0)
CAUSTIC = Product("caustic", 0.00045, 0.1, 1.5, 0.4, 35.0)
BENZENE = Product("benzene", 0.00124, 0.6, 2.0, 0.5, 23.0)


@dataclass(frozen=True)
class FarmSpec:
    product: Product
    diameter_m: float
    height_m: float
    receipt_m3h: tuple[float, float]  # pipeline or ship pumping rate
    batches_per_day: tuple[int, int]  # receipts per day (each into one tank)
    delivery: str  # trucks | pipeline
    delivery_m3h: tuple[float, float]  # per truck loading arm, or the pipeline rate
    trucks_per_hour: float = 0.0
    fill_target_pct: tuple[float, float] = (74.0, 80.0)  # where operators stop a receipt (H alarm is 85 %)
    floor_pct: float = 20.0  # below this a tank is not loaded any more (L alarm is 10 %)

    @property
    def area_m2(self) -> float:
        return float(np.pi * self.diameter_m ** 2 / 4.0)

    def m3_per_pct(self) -> float:
        return self.area_m2 * self.height_m / 100.0


# The example city's farms; any other source gets GENERIC.
FARMS: dict[str, FarmSpec] = {
    "S01": FarmSpec(GASOLINE, 28.5, 17.8, (650.0, 950.0), (2, 3), "trucks", (70.0, 95.0), 4.0),
    "S02": FarmSpec(CRUDE, 60.0, 19.3, (1800.0, 2600.0), (0, 1), "pipeline", (450.0, 650.0)),
    "S03": FarmSpec(LPG_REFRIGERATED, 30.0, 25.0, (500.0, 700.0), (0, 1), "trucks", (50.0, 65.0), 3.0),
    "S04": FarmSpec(AMMONIA_REFRIGERATED, 20.0, 15.0, (150.0, 250.0), (0, 1), "trucks", (35.0, 45.0), 1.0),
    "S05": FarmSpec(METHANOL, 21.0, 15.5, (300.0, 450.0), (1, 2), "trucks", (60.0, 80.0), 2.0),
    "S07": FarmSpec(CAUSTIC, 14.0, 13.0, (80.0, 120.0), (0, 1), "trucks", (40.0, 50.0), 1.0),
    "S12": FarmSpec(BENZENE, 17.0, 14.0, (200.0, 300.0), (1, 1), "trucks", (50.0, 70.0), 1.5),
}
GENERIC = FarmSpec(GASOLINE, 20.0, 16.0, (300.0, 500.0), (1, 2), "trucks", (60.0, 80.0), 2.0)


@dataclass
class Transfer:
    tank: int
    start_s: float
    end_s: float
    rate_m3h: float
    kind: str  # receipt | delivery


@dataclass
class FarmTruth:
    """True state of every tank of a farm on the physics grid (rows: tanks)."""

    t_s: np.ndarray
    level_pct: np.ndarray
    inflow_m3h: np.ndarray
    outflow_m3h: np.ndarray
    temp_c: np.ndarray  # product
    pressure_kpa: np.ndarray  # vapour space, gauge
    transfers: list[Transfer] = field(default_factory=list)


def farm_spec(source: str) -> FarmSpec:
    return FARMS.get(source, GENERIC)


# ---- planning -----------------------------------------------------------------------------------------------

def plan_transfers(rng: np.random.Generator, spec: FarmSpec, n_tanks: int, level0: np.ndarray, duration_s: float,
                   start_hour: float) -> list[Transfer]:
    """The day's receipts and deliveries. Receipts go one at a time into the emptiest tank not in delivery;
    deliveries load from the fullest tanks (trucks only on the 07:00-19:00 shift, a pipeline round the clock)."""
    lo, hi = spec.batches_per_day
    n_batches = int(rng.integers(lo, hi + 1, size=max(1, int(np.ceil(duration_s / 86400.0)))).sum())
    order = np.argsort(-level0)
    n_delivery = 1 if spec.delivery == "pipeline" or n_tanks < 4 else 2
    delivery_tanks = [int(i) for i in order[:min(n_delivery, max(n_tanks - 1, 1))]]
    out: list[Transfer] = []
    est = level0.astype(float).copy()
    free_from = 0.0
    # Batches are spread over the day, each starting after the previous one ended (one pipeline).
    starts = np.sort(rng.uniform(0.02, 0.85, n_batches)) * duration_s if n_batches else np.zeros(0)
    for s in starts:
        s = max(float(s), free_from)
        candidates = [i for i in range(n_tanks) if i not in delivery_tanks] or list(range(n_tanks))
        tank = min(candidates, key=lambda i: est[i])
        target = rng.uniform(*spec.fill_target_pct)
        if est[tank] > target - 15.0:
            continue  # nothing to receive into: the batch is put off
        rate = rng.uniform(*spec.receipt_m3h)
        volume = (target - est[tank]) * spec.m3_per_pct()
        dur = volume / rate * 3600.0
        if s + 1800.0 > duration_s:
            break
        out.append(Transfer(tank, s, s + dur, rate, "receipt"))
        est[tank] = target
        free_from = s + dur + 1800.0  # line flushing and tank switching between batches
    for tank in delivery_tanks:
        out += _deliveries(rng, spec, tank, duration_s, start_hour)
    return out


def _deliveries(rng: np.random.Generator, spec: FarmSpec, tank: int, duration_s: float, start_hour: float
                ) -> list[Transfer]:
    if spec.delivery == "pipeline":
        return [Transfer(tank, 0.0, duration_s, rng.uniform(*spec.delivery_m3h), "delivery")]
    # Trucks arrive as a Poisson stream in the day shift; each loads ~20-35 m3 on one arm.
    n = rng.poisson(spec.trucks_per_hour * duration_s / 3600.0)
    arrivals = np.sort(rng.uniform(0.0, duration_s, n))
    hours = hour_of_day(arrivals, start_hour)
    arrivals = arrivals[(hours >= 7.0) & (hours < 19.0)]
    out = []
    for a in arrivals:
        rate = rng.uniform(*spec.delivery_m3h)
        load = rng.uniform(20.0, 35.0)
        out.append(Transfer(tank, float(a), float(a) + load / rate * 3600.0, rate, "delivery"))
    return out


def flows_on_grid(t: np.ndarray, transfers: list[Transfer], n_tanks: int, ramp_s: float = 90.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Inflow and outflow (m3/h) per tank on the grid; pumps and valves take ~ramp_s to reach their rate."""
    inflow = np.zeros((n_tanks, len(t)))
    outflow = np.zeros((n_tanks, len(t)))
    for tr in transfers:
        shape = np.clip((t - tr.start_s) / ramp_s, 0.0, 1.0) * np.clip((tr.end_s - t) / ramp_s + 1.0, 0.0, 1.0)
        target = inflow if tr.kind == "receipt" else outflow
        target[tr.tank] += tr.rate_m3h * shape
    return inflow, outflow


def volume_balance(level0_pct: np.ndarray, inflow: np.ndarray, outflow: np.ndarray, dt_s: float,
                   m3_per_pct: float) -> np.ndarray:
    """Level (%) from the flows: dV = (in - out) dt, V = A h. Overflow caps the level at 100 % (product spills
    over the rim) and an empty tank cannot go below 0."""
    dv = (inflow - outflow) * dt_s / 3600.0
    level = level0_pct[:, None] + np.concatenate([np.zeros((len(level0_pct), 1)), np.cumsum(dv, axis=1)[:, :-1]],
                                                 axis=1) / m3_per_pct
    return np.clip(level, 0.0, 100.0)


def keep_in_window(t: np.ndarray, inflow: np.ndarray, outflow: np.ndarray, level0: np.ndarray, spec: FarmSpec,
                   targets: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Operators stop a receipt at its target fill and stop loading trucks from a tank at the floor."""
    inflow, outflow = inflow.copy(), outflow.copy()
    for _ in range(2):
        level = volume_balance(level0, inflow, outflow, dt_s, spec.m3_per_pct())
        for i in range(len(level0)):
            over = np.flatnonzero((level[i] >= targets[i]) & (inflow[i] > 0))
            if len(over):
                inflow[i, over[0]:] *= _ramp_down(t[over[0]:] - t[over[0]])
            under = np.flatnonzero((level[i] <= spec.floor_pct) & (outflow[i] > 0))
            if len(under):
                outflow[i, under[0]:] = 0.0
    return inflow, outflow


def _ramp_down(dt: np.ndarray, ramp_s: float = 90.0) -> np.ndarray:
    return np.clip(1.0 - dt / ramp_s, 0.0, 1.0)


# ---- thermal and pressure physics ---------------------------------------------------------------------------

def product_temperature(t: np.ndarray, ambient: np.ndarray, inflow: np.ndarray, level_pct: np.ndarray,
                        spec: FarmSpec, temp0: np.ndarray) -> np.ndarray:
    """dT/dt = (T_ambient + solar - T) / tau + (Q_in / V) (T_in - T): the wall exchange of a big tank takes
    days, so the daily cycle is damped to a few tenths of a degree; a receipt pulls the product toward the
    incoming temperature in proportion to the volume it adds."""
    p = spec.product
    if p.refrigerated_c is not None:
        return np.full(inflow.shape, p.refrigerated_c) + 0.15 * np.sin(2 * np.pi * t / 5400.0)[None, :]
    dt = float(t[1] - t[0])
    # Bigger tanks have more product per wall area: time constant ~ 2 days for 20 m, ~3.5 days for 60 m.
    tau = 86400.0 * (1.2 + spec.diameter_m / 30.0)
    vol = np.maximum(level_pct * spec.m3_per_pct(), 50.0)
    out = np.empty_like(inflow)
    temp = temp0.astype(float).copy()
    env = ambient + 1.5  # solar gain on the shell
    for k in range(len(t)):
        mix = inflow[:, k] / 3600.0 * dt / vol[:, k]
        temp = temp + (env[k] - temp) * dt / tau + mix * (p.receipt_temp_c - temp)
        out[:, k] = temp
    return out


def vapour_temperature(t: np.ndarray, start_hour: float, ambient: np.ndarray) -> np.ndarray:
    """The vapour under the roof follows the air with about an hour's lag, plus the sun on the roof."""
    h = hour_of_day(t, start_hour)
    solar = 7.0 * np.clip(np.sin(np.pi * (h - 6.5) / 12.5), 0.0, None)
    dt = float(t[1] - t[0])
    return lag((ambient + solar)[None, :], dt, 3600.0)[0]


def vapour_pressure(t: np.ndarray, level_pct: np.ndarray, inflow: np.ndarray, outflow: np.ndarray,
                    vapour_c: np.ndarray, spec: FarmSpec, rng: np.random.Generator) -> np.ndarray:
    """Gauge pressure of the vapour space (kPa). Closed between the breather valve's settings: filling
    compresses the vapour and warming expands it and evaporates product; the valve caps the pressure at its
    set value (plus a little accumulation while it passes flow) and lets air in at its vacuum setting.
    Refrigerated tanks are held near a set pressure by boil-off compressors that cycle."""
    p = spec.product
    n_tanks, n = level_pct.shape
    if p.controlled_kpa is not None:
        cycle = 0.6 * np.sin(2 * np.pi * (t[None, :] / 2700.0 + rng.uniform(0, 1, (n_tanks, 1))))
        boil_off = 0.002 * inflow  # warm product arriving boils off and lifts the pressure until compressors catch up
        return p.controlled_kpa + cycle + lag(boil_off, float(t[1] - t[0]), 1800.0, 0.0)
    dt = float(t[1] - t[0])
    cap = 100.0 * spec.m3_per_pct()
    v_vap = np.maximum(cap - level_pct * spec.m3_per_pct(), 0.02 * cap)
    dv_liq = (inflow - outflow) * dt / 3600.0
    tv = vapour_c + 273.15
    d_tv = np.diff(vapour_c, prepend=vapour_c[0])
    # Per step, before the valve: compression by the liquid, gas expansion, and evaporation of the product.
    dp = (P_ATM_KPA * dv_liq / v_vap + (P_ATM_KPA / tv * d_tv)[None, :]
          + (p.dpv_dt_kpa_per_c * d_tv)[None, :])
    # Accumulation above the set pressure grows with the venting flow (API 2000 valves need ~10 % overpressure).
    vent = np.maximum(inflow, 0.0) / 1000.0
    hi = p.valve_kpa * (1.0 + 0.1 * np.minimum(vent, 1.5))
    lo = -p.vacuum_kpa * (1.0 + 0.1 * np.minimum(np.maximum(outflow, 0.0) / 1000.0, 1.5))
    # Spin up over the day before (same weather, no transfers) so the day starts where breathing left it.
    spin = (P_ATM_KPA / tv * d_tv + p.dpv_dt_kpa_per_c * d_tv)[: round(86400.0 / dt)]
    cur = np.zeros(n_tanks)
    for k in range(len(spin)):
        cur = np.minimum(np.maximum(cur + spin[k], -p.vacuum_kpa), p.valve_kpa)
    out = np.empty((n_tanks, n))
    for k in range(n):
        cur = np.minimum(np.maximum(cur + dp[:, k], lo[:, k]), hi[:, k])
        out[:, k] = cur
    return out


def simulate_farm(rng: np.random.Generator, spec: FarmSpec, n_tanks: int, duration_s: float, start_hour: float,
                  level0: np.ndarray | None = None, transfers: list[Transfer] | None = None,
                  temp0: np.ndarray | None = None) -> FarmTruth:
    """True state of a farm on the DT_S grid. Pass `transfers` to play a chosen operation (a scenario)."""
    t = np.arange(0.0, duration_s + 2 * DT_S, DT_S)
    if level0 is None:
        level0 = rng.uniform(25.0, 70.0, n_tanks)
    level0 = np.asarray(level0, dtype=float)
    planned = transfers is None
    if transfers is None:
        transfers = plan_transfers(rng, spec, n_tanks, level0, duration_s, start_hour)
    inflow, outflow = flows_on_grid(t, transfers, n_tanks)
    if planned:
        targets = np.full(n_tanks, spec.fill_target_pct[1])
        inflow, outflow = keep_in_window(t, inflow, outflow, level0, spec, targets, DT_S)
    # Pipelines and pumps do not deliver a perfectly flat rate: ~1 % slow fluctuation while running.
    wobble = 1.0 + 0.01 * _slow(rng, (n_tanks, len(t)))
    inflow, outflow = inflow * wobble, outflow * np.clip(wobble[::-1], 0.97, 1.03)
    level = volume_balance(level0, inflow, outflow, DT_S, spec.m3_per_pct())
    tt = np.arange(0.0, duration_s + 2 * DT_THERMAL_S, DT_THERMAL_S)
    amb_t = ambient_temperature(tt, start_hour)
    if temp0 is None:
        temp0 = amb_t.mean() + rng.normal(1.0, 1.0, n_tanks)
    lvl_t = np.stack([np.interp(tt, t, row) for row in level])
    in_t = np.stack([np.interp(tt, t, row) for row in inflow])
    temp = np.stack([np.interp(t, tt, row) for row in product_temperature(tt, amb_t, in_t, lvl_t, spec, temp0)])
    # The product expands with temperature: the gauge sees volume / area, not mass.
    level = np.clip(level * (1.0 + spec.product.expansion_per_c * (temp - temp[:, :1])), 0.0, 100.0)
    vap = vapour_temperature(t, start_hour, ambient_temperature(t, start_hour))
    pressure = vapour_pressure(t, level, inflow, outflow, vap, spec, rng)
    return FarmTruth(t, level, inflow, outflow, temp, pressure, transfers)


def _slow(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return red_noise(rng, shape, DT_S, 900.0, 1.0)


# ---- instruments --------------------------------------------------------------------------------------------

def level_readings(rng: np.random.Generator, level_pct: np.ndarray, moving: np.ndarray, height_m: float
                   ) -> np.ndarray:
    """Radar gauge: ~1 mm noise on a calm surface, a few mm while product flows in or out (surface
    agitation), transmitted in mm resolution and converted to % of height."""
    sigma_mm = np.where(moving, 3.0, 1.0)
    mm = np.round(level_pct / 100.0 * height_m * 1000.0 + rng.normal(0.0, 1.0, level_pct.shape) * sigma_mm)
    return np.round(mm / (height_m * 1000.0) * 100.0, 3)


def flow_readings(rng: np.random.Generator, flow_m3h: np.ndarray) -> np.ndarray:
    """Turbine / Coriolis meter: ~0.3 % of reading noise, 0.1 m3/h resolution, low-flow cut-off to 0."""
    bias = 1.0 + rng.normal(0.0, 0.002, (flow_m3h.shape[0], 1))  # meter factor within calibration tolerance
    f = flow_m3h * bias * (1.0 + rng.normal(0.0, 0.003, flow_m3h.shape)) + rng.normal(0.0, 0.3, flow_m3h.shape)
    return np.where(f < LOW_FLOW_CUTOFF_M3H, 0.0, quantise(f, 0.1))


def temperature_readings(rng: np.random.Generator, temp_c: np.ndarray) -> np.ndarray:
    """Multi-point averaging Pt100: 0.1 °C resolution, a few hundredths of noise, a small per-sensor offset."""
    offset = rng.normal(0.0, 0.1, (temp_c.shape[0], 1))
    return quantise(temp_c + offset + rng.normal(0.0, 0.04, temp_c.shape), 0.1)


def pressure_readings(rng: np.random.Generator, p_kpa: np.ndarray) -> np.ndarray:
    """Low-range gauge pressure transmitter: 0.01 kPa resolution, ~0.03 kPa noise and valve flutter."""
    offset = rng.normal(0.0, 0.02, (p_kpa.shape[0], 1))
    return quantise(p_kpa + offset + rng.normal(0.0, 0.03, p_kpa.shape), 0.01)


@dataclass(frozen=True)
class TankSensors:
    """A tank's sensor ids (None where the registry has none) and the tag they share, e.g. S01-T03."""

    tag: str
    lt: str | None = None
    tt: str | None = None
    pt: str | None = None
    ft: str | None = None


def farm_traces(rng: np.random.Generator, truth: FarmTruth, tanks: list[TankSensors], spec: FarmSpec,
                duration_s: float, periods: dict[str, float], scans: dict[float, np.ndarray] | None = None
                ) -> list[Trace]:
    """Readings of every tank sensor. One gateway per source: sensors of the same period share scan times
    (pass the source's `scans` to share them with its other instruments)."""
    out: list[Trace] = []
    scans = {} if scans is None else scans

    def times(period: float) -> np.ndarray:
        return shared_scan(rng, period, duration_s, scans)

    moving = (truth.inflow_m3h > 1.0) | (truth.outflow_m3h > 1.0)
    for kind, build in (("lt", "level"), ("tt", "temp"), ("pt", "pressure"), ("ft", "flow")):
        rows = [(i, getattr(tk, kind)) for i, tk in enumerate(tanks) if getattr(tk, kind)]
        by_period: dict[float, list[tuple[int, str]]] = {}
        for i, sid in rows:
            by_period.setdefault(periods[sid], []).append((i, sid))
        for period, members in by_period.items():
            t = times(period)
            idx = [i for i, _ in members]
            ids = [sid for _, sid in members]
            if build == "level":
                true = resample(truth.t_s, truth.level_pct[idx], t)
                mov = resample(truth.t_s, moving[idx].astype(float), t) > 0.5
                vals = level_readings(rng, true, mov, spec.height_m)
            elif build == "temp":
                vals = temperature_readings(rng, resample(truth.t_s, truth.temp_c[idx], t))
            elif build == "pressure":
                vals = pressure_readings(rng, resample(truth.t_s, truth.pressure_kpa[idx], t))
            else:
                vals = flow_readings(rng, resample(truth.t_s, truth.inflow_m3h[idx], t))
            out += traces(ids, t, vals)
    return out
