"""Tailings dam: rainfall, pond, phreatic line, freeboard, dry beach and surface displacement.

- Rainfall: a rain intensity series (mm/h); the gauge is a 0.2 mm tipping bucket and reports the total of the
  last 24 hours, the quantity GB 51108 judges (rainstorm >= 50 mm / 24 h).
- Pond: run-off from the catchment raises the pond; the decant tower lets it back down over days (a linear
  reservoir). Freeboard = crest - pond level; dry beach = (beach crest - pond level) / beach slope.
- Phreatic line: infiltration reaches the piezometers with a lag of a day or more; the depth (m below the
  surface, smaller = wetter = worse) responds to rain through a gamma-shaped unit response.
- Displacement: creep of a few hundredths of a mm per hour, then, once triggered, Fukuzono's tertiary creep:
  v(t) = A / (t_f - t) - A / (t_f - t_a), so that 1/v falls linearly to zero at the failure time t_f.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.sampling import grid, hour_of_day, quantise, red_noise, resample, shared_scan, traces
from simulators.trace import Trace

DT_S = 600.0  # the dam's instruments report every 10 minutes
TIP_MM = 0.2


@dataclass(frozen=True)
class DamSpec:
    crest_m: tuple[float, float] = (83.0, 83.25)  # crest elevation at the two freeboard / beach sections
    beach_slope: tuple[float, float] = (0.015, 0.014)
    pond0_m: float = 80.1
    pond_area_m2: float = 4.0e5
    catchment_m2: float = 3.0e6
    runoff_coeff: float = 0.45
    decant_tau_s: float = 2.5 * 86400.0  # pond recession time constant through the decant tower
    depth0_m: tuple[float, ...] = (11.8, 10.4, 8.9, 8.7, 9.0, 10.6, 12.1, 12.6)  # piezometer depths, dry weather
    rain_gain_m_per_mm: tuple[float, ...] = (0.012, 0.016, 0.021, 0.022, 0.020, 0.015, 0.011, 0.010)
    response_peak_h: tuple[float, ...] = (30.0, 28.0, 24.0, 22.0, 25.0, 29.0, 32.0, 34.0)
    disp0_mm: tuple[float, ...] = (6.2, 8.4, 11.5, 12.8, 10.9, 7.7, 5.9, 4.8)
    creep_mm_per_h: tuple[float, ...] = (0.002, 0.003, 0.004, 0.005, 0.004, 0.003, 0.002, 0.002)


@dataclass(frozen=True)
class Storm:
    start_s: float
    total_mm: float
    duration_h: float
    peak_frac: float = 0.4  # where in the storm the peak intensity falls


@dataclass(frozen=True)
class Failure:
    """Tertiary creep of some displacement points, ending in failure at t_fail_s."""

    points: tuple[int, ...]  # indices of the displacement points on the failing section
    t_start_s: float
    t_fail_s: float
    a_mm: tuple[float, ...]  # Fukuzono's A per point (mm): v = A / (t_f - t) - A / (t_f - t_a)


@dataclass
class DamTruth:
    t_s: np.ndarray
    rain_mmh: np.ndarray
    rain_24h_mm: np.ndarray
    pond_m: np.ndarray
    depth_m: np.ndarray  # [piezometers, t]
    disp_mm: np.ndarray  # [points, t]
    freeboard_m: np.ndarray  # [sections, t]
    beach_m: np.ndarray  # [sections, t]


def hyetograph(rng: np.random.Generator, t: np.ndarray, storm: Storm) -> np.ndarray:
    """Rain intensity (mm/h): a skewed storm profile broken into bursts (convective cells), scaled so the storm
    delivers exactly its total."""
    d = storm.duration_h * 3600.0
    s = (t - storm.start_s) / d
    a = 2.0 + 4.0 * storm.peak_frac
    b = 2.0 + 4.0 * (1.0 - storm.peak_frac)
    shape = np.where((s > 0) & (s < 1), np.clip(s, 0, 1) ** (a - 1) * np.clip(1 - s, 0, 1) ** (b - 1), 0.0)
    dt = float(t[1] - t[0])
    bursts = np.exp(red_noise(rng, (1, len(t)), dt, 1800.0, 0.5)[0])
    i = shape * bursts
    total = i.sum() * dt / 3600.0
    return i * (storm.total_mm / total) if total > 0 else i


def drizzle(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A normal day: most days dry, some with a few mm of light rain in one or two spells."""
    out = np.zeros(len(t))
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        storm = Storm(rng.uniform(t[0], t[-1]), rng.uniform(0.5, 6.0), rng.uniform(1.0, 5.0), rng.uniform(0.2, 0.8))
        out += hyetograph(rng, t, storm)
    return out


def rain_total_24h(t: np.ndarray, intensity_mmh: np.ndarray, before_mm: float = 0.0) -> np.ndarray:
    """What the gauge reports: bucket tips of the last 24 h times 0.2 mm. `before_mm` is rain that fell in the
    24 h before the series starts (assumed spread evenly)."""
    dt = float(t[1] - t[0])
    cum = np.concatenate([[0.0], np.cumsum(intensity_mmh[:-1] * dt / 3600.0)])
    tips = np.floor(cum / TIP_MM + 1e-9) * TIP_MM
    earlier = np.interp(t - 86400.0, t, tips, left=np.nan)
    carried = before_mm * np.clip(1.0 - t / 86400.0, 0.0, 1.0)
    return np.where(np.isnan(earlier), tips + carried, tips - np.nan_to_num(earlier))


def unit_response(s_h: np.ndarray, peak_h: float, shape: float = 2.0) -> np.ndarray:
    """Gamma-shaped response of the phreatic line to 1 mm of rain at s = 0: zero at first, a maximum of 1 at
    peak_h, then a slow recession (drainage through the dam)."""
    x = np.clip(s_h / peak_h, 0.0, None)
    return x ** shape * np.exp(shape * (1.0 - x))


def phreatic_depth(t: np.ndarray, intensity_mmh: np.ndarray, depth0: np.ndarray, gain: np.ndarray,
                   peak_h: np.ndarray) -> np.ndarray:
    """Depth below the dam surface (m) per piezometer: dry-weather depth minus the lagged rain response."""
    dt = float(t[1] - t[0])
    rain_mm = intensity_mmh * dt / 3600.0
    lags_h = np.arange(len(t)) * dt / 3600.0
    out = np.empty((len(depth0), len(t)))
    for i in range(len(depth0)):
        kernel = unit_response(lags_h, float(peak_h[i]))
        rise = np.convolve(rain_mm, kernel)[: len(t)] * gain[i]
        out[i] = depth0[i] - rise
    return out


def pond_level(t: np.ndarray, intensity_mmh: np.ndarray, spec: DamSpec) -> np.ndarray:
    """Linear reservoir: dH/dt = runoff / area - (H - H0) / tau; run-off reaches the pond within an hour."""
    dt = float(t[1] - t[0])
    runoff = intensity_mmh / 1000.0 / 3600.0 * spec.catchment_m2 * spec.runoff_coeff  # m3/s
    a = np.exp(-dt / 3600.0)
    h = np.empty(len(t))
    q, level = 0.0, spec.pond0_m
    for k in range(len(t)):
        q = a * q + (1 - a) * runoff[k]
        level = level + q * dt / spec.pond_area_m2 - (level - spec.pond0_m) * dt / spec.decant_tau_s
        h[k] = level
    return h


def tertiary_creep(t: np.ndarray, t_start: float, t_fail: float, a_mm: float) -> np.ndarray:
    """Displacement added by accelerating creep (mm): the integral of A/(t_f - t) - A/(t_f - t_a), t in hours.
    Zero before t_start; held at its value one second before failure afterwards (the point is gone)."""
    th = np.minimum(t, t_fail - 1.0) / 3600.0
    ta, tf = t_start / 3600.0, t_fail / 3600.0
    x = a_mm * (np.log((tf - ta) / (tf - th)) - (th - ta) / (tf - ta))
    return np.where(t > t_start, x, 0.0)


def creep_velocity(t: np.ndarray, t_start: float, t_fail: float, a_mm: float) -> np.ndarray:
    """True velocity (mm/h) of the tertiary creep term."""
    th = t / 3600.0
    ta, tf = t_start / 3600.0, t_fail / 3600.0
    v = a_mm / (tf - th) - a_mm / (tf - ta)
    return np.where((t > t_start) & (t < t_fail), v, 0.0)


def simulate_dam(rng: np.random.Generator, duration_s: float, start_hour: float, spec: DamSpec,
                 storm: Storm | None = None, failure: Failure | None = None, rain_before_mm: float = 0.0
                 ) -> DamTruth:
    t = grid(duration_s, DT_S)
    rain = hyetograph(rng, t, storm) if storm is not None else drizzle(rng, t)
    depth = phreatic_depth(t, rain, np.array(spec.depth0_m), np.array(spec.rain_gain_m_per_mm),
                           np.array(spec.response_peak_h))
    pond = pond_level(t, rain, spec)
    # The pond itself also feeds the phreatic line: 1 m of pond rise lifts it by ~0.3 m, with a day's lag.
    pond_push = np.convolve(pond - spec.pond0_m, _smooth_kernel(DT_S, 86400.0))[: len(t)]
    depth = depth - 0.3 * pond_push[None, :]
    hours = t[None, :] / 3600.0
    disp = np.array(spec.disp0_mm)[:, None] + np.array(spec.creep_mm_per_h)[:, None] * hours
    if failure is not None:
        for p, a in zip(failure.points, failure.a_mm, strict=True):
            disp[p] += tertiary_creep(t, failure.t_start_s, failure.t_fail_s, a)
    crest = np.array(spec.crest_m)[:, None]
    freeboard = crest - pond[None, :]
    beach = (crest - 0.15 - pond[None, :]) / np.array(spec.beach_slope)[:, None]
    return DamTruth(t, rain, rain_total_24h(t, rain, rain_before_mm), pond, depth, disp, freeboard, beach)


def _smooth_kernel(dt: float, tau: float) -> np.ndarray:
    k = np.exp(-np.arange(0.0, 6 * tau, dt) / tau)
    return k / k.sum()


@dataclass(frozen=True)
class DamSensors:
    piezometers: tuple[str, ...]
    displacement: tuple[str, ...]
    freeboard: tuple[str, ...]
    beach: tuple[str, ...]
    rain: tuple[str, ...]
    pond: tuple[str, ...]


def dam_traces(rng: np.random.Generator, truth: DamTruth, ids: DamSensors, duration_s: float, start_hour: float,
               period_s: float = DT_S, scans: dict[float, np.ndarray] | None = None) -> list[Trace]:
    """Readings of the dam's instruments; one gateway, one scan for all (they share a 10-minute period)."""
    t = shared_scan(rng, period_s, duration_s, scans)
    out: list[Trace] = []
    n = len(t)

    def at(rows: np.ndarray) -> np.ndarray:
        return resample(truth.t_s, rows, t)

    if ids.piezometers:
        k = len(ids.piezometers)
        # Vibrating-wire piezometer: centimetre resolution, a little barometric noise.
        v = at(truth.depth_m[:k]) + rng.normal(0.0, 0.01, (k, n))
        out += traces(list(ids.piezometers), t, quantise(np.clip(v, 0.0, None), 0.01))
    if ids.displacement:
        k = len(ids.displacement)
        # GNSS surface displacement from filtered 10-minute solutions: ~0.5 mm noise and a daily multipath
        # ripple of a few tenths; 0.1 mm resolution.
        ripple = 0.3 * np.sin(2 * np.pi * (hour_of_day(t, start_hour)[None, :] / 23.934
                                           + rng.uniform(0, 1, (k, 1))))
        v = at(truth.disp_mm[:k]) + ripple + rng.normal(0.0, 0.5, (k, n))
        out += traces(list(ids.displacement), t, quantise(v, 0.1))
    if ids.freeboard:
        k = len(ids.freeboard)
        v = at(truth.freeboard_m[:k]) + rng.normal(0.0, 0.01, (k, n))
        out += traces(list(ids.freeboard), t, quantise(v, 0.01))
    if ids.beach:
        k = len(ids.beach)
        # Dry beach length from a laser / video at the water's edge: decimetre resolution, ~0.5 m jitter.
        v = at(truth.beach_m[:k]) + rng.normal(0.0, 0.5, (k, n))
        out += traces(list(ids.beach), t, quantise(v, 0.1))
    if ids.rain:
        v = np.repeat(at(truth.rain_24h_mm[None, :]), len(ids.rain), axis=0)
        out += traces(list(ids.rain), t, quantise(v, TIP_MM))
    if ids.pond:
        v = at(truth.pond_m[None, :]) + rng.normal(0.0, 0.01, (len(ids.pond), n))
        out += traces(list(ids.pond), t, quantise(v, 0.01))
    return out
