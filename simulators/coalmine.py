"""Coal-mine longwall faces: methane from emission and airflow, air velocity, carbon monoxide.

Methane at a face is its emission divided by the air that sweeps it, with first-order mixing over the face's
volume: dc/dt = (E(t) - Q(t) c) / V (+ intake concentration). Emission is a background from the coal walls and
the goaf plus the gas freed by cutting, which keeps desorbing from broken coal for minutes after the shearer
stops. Shifts: 00:00-08:00 maintenance (no cutting), 08:00-16:00 and 16:00-24:00 production, each with a
preparation start, cutting runs of 30-60 min, turnarounds and the odd stoppage.

Sensors: T1 at the face; T0 in the upper corner, where goaf gas collects in a small recirculating flow; T2 in
the face return airway, a transport delay (airway length / velocity) downstream; SH on the shearer, which sees
the cutting drum's bursts; T3 in the intake (very low); MR in the main return, all districts mixed. WS is the
face air velocity, CO the face's carbon monoxide (coal oxidation, diesel vehicles in production shifts).
The outstation cuts the face's power within 2 s when T1 reaches 1.5 % (AQ 1029): the shearer stops cutting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.sampling import grid, quantise, red_noise, resample, shared_scan, traces
from simulators.trace import Trace

DT_S = 10.0
POWER_OFF_PCT = 1.5


@dataclass(frozen=True)
class FaceSpec:
    area_m2: float = 12.0
    volume_m3: float = 1500.0  # air volume that mixes along the face
    ws_ms: float = 1.75
    background_m3min: float = 1.2  # walls and goaf into the face air
    cutting_m3min: float = 3.0  # extra while cutting at full rate
    desorb_tau_s: float = 480.0  # broken coal keeps releasing gas after the drum passes
    goaf_corner_m3min: float = 0.35  # goaf gas into the upper corner's recirculation
    corner_share: float = 0.10  # share of the face air that recirculates in the upper corner
    return_length_m: float = 120.0  # face end to T2
    co_ppm: float = 1.5  # at the normal airflow


@dataclass(frozen=True)
class VentFailure:
    """The face loses its air (a fan trips, a regulator is knocked shut, an air door is left open)."""

    face: int
    start_s: float
    ws_after: float
    ramp_s: float = 90.0
    restore_s: float | None = None


@dataclass
class MineTruth:
    t_s: np.ndarray
    ws: np.ndarray  # [faces, t] m/s
    cutting: np.ndarray  # [faces, t] 0..1 (after any power-off)
    emission_m3min: np.ndarray  # [faces, t]
    t1: np.ndarray  # [faces, t] %CH4
    t0: np.ndarray
    t2: np.ndarray
    sh: np.ndarray
    co: np.ndarray  # [faces, t] ppm
    t3: np.ndarray  # [t]
    mr: np.ndarray  # [t]
    power_off_s: np.ndarray  # [faces]: time the shearer's power was cut (inf if never)


def cutting_plan(rng: np.random.Generator, t: np.ndarray, start_hour: float) -> np.ndarray:
    """0/1 shearer cutting on the grid for one face."""
    day0 = -start_hour * 3600.0
    out = np.zeros(len(t))
    first_day = int(np.floor((start_hour * 3600.0) / 86400.0))
    days = int(np.ceil((t[-1] + start_hour * 3600.0) / 86400.0)) + 1
    for d in range(first_day - 1, days):
        for shift_start_h in (8.0, 16.0):
            s0 = day0 + d * 86400.0 + shift_start_h * 3600.0
            s = s0 + rng.uniform(30.0, 60.0) * 60.0  # handover, checks, support advance before the first cut
            end = s0 + 8 * 3600.0 - rng.uniform(15.0, 30.0) * 60.0
            while s < end:
                run = rng.uniform(30.0, 60.0) * 60.0
                if rng.random() < 0.12:  # a stoppage: conveyor, hydraulics, a roof support
                    run *= rng.uniform(0.2, 0.6)
                out[(t >= s) & (t < min(s + run, end))] = 1.0
                s += run + rng.uniform(5.0, 25.0) * 60.0
    return out


def ventilation(rng: np.random.Generator, t: np.ndarray, spec: FaceSpec, n_faces: int,
                failure: VentFailure | None) -> np.ndarray:
    """Face air velocity (m/s): the design velocity with slow variations (natural ventilation pressure, door
    openings elsewhere), brief dips when an air door on the route is opened, and any failure."""
    n = len(t)
    ws0 = spec.ws_ms * rng.uniform(0.9, 1.12, (n_faces, 1))
    ws = ws0 * (1.0 + red_noise(rng, (n_faces, n), DT_S, 1200.0, 0.025))
    for f in range(n_faces):
        for _ in range(rng.poisson(6 * (t[-1] - t[0]) / 86400.0)):
            t0, d = rng.uniform(t[0], t[-1]), rng.uniform(40.0, 120.0)
            ws[f] *= 1.0 - 0.12 * ((t >= t0) & (t < t0 + d))
    if failure is not None:
        f = failure.face
        drop = np.clip((t - failure.start_s) / failure.ramp_s, 0.0, 1.0)
        if failure.restore_s is not None:
            drop = drop * np.clip(1.0 - (t - failure.restore_s) / 120.0, 0.0, 1.0)
        target = failure.ws_after * (1.0 + 0.05 * red_noise(rng, (1, n), DT_S, 300.0, 1.0)[0])
        ws[f] = ws[f] * (1.0 - drop) + target * drop
    return np.maximum(ws, 0.02)


def drum_bursts(rng: np.random.Generator, plan: np.ndarray) -> np.ndarray:
    """Methane bursts at the cutting drum (%CH4 above the face average), ~20 per hour of cutting, 10-40 s."""
    out = np.zeros(plan.shape)
    for f in range(plan.shape[0]):
        on = np.flatnonzero(plan[f] > 0)
        k = rng.poisson(len(on) * DT_S / 3600.0 * 20.0) if len(on) else 0
        for idx in rng.choice(on, size=k) if k else []:
            out[f, idx:idx + int(rng.integers(1, 5))] += rng.gamma(4.0, 0.02)
    return out


def face_methane(t: np.ndarray, plan: np.ndarray, ws: np.ndarray, spec: FaceSpec, intake_pct: np.ndarray,
                 bursts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Well-mixed face: returns (T1 %CH4, shearer-mounted %CH4, emission m3/min, cutting after power-off,
    power-off time) per face. Stepped in time because the power-off feeds back: the shearer stops when T1 or
    the shearer-mounted sensor reaches 1.5 %."""
    n_f, n = plan.shape
    q = ws * spec.area_m2 * 60.0  # m3/min
    a = np.exp(-q / 60.0 * DT_S / spec.volume_m3)
    ad = np.exp(-DT_S / spec.desorb_tau_s)
    c = spec.background_m3min / q[:, 0] * 100.0 + intake_pct[0]
    fresh = np.zeros(n_f)
    off = np.zeros(n_f, dtype=bool)
    off_at = np.full(n_f, np.inf)
    t1, sh, emis, cut = (np.empty((n_f, n)) for _ in range(4))
    for k in range(n):
        cutting = np.where(off, 0.0, plan[:, k])
        fresh = ad * fresh + (1 - ad) * cutting * spec.cutting_m3min
        e = spec.background_m3min + fresh
        c = a[:, k] * c + (1 - a[:, k]) * (e / q[:, k] * 100.0 + intake_pct[k])
        # At the drum the air is richer while cutting, a little leaner than the face average otherwise.
        at_drum = c * (0.8 + 0.3 * cutting) + bursts[:, k] * cutting
        newly = ~off & ((c >= POWER_OFF_PCT) | (at_drum >= POWER_OFF_PCT))
        off_at = np.where(newly, t[k], off_at)
        off |= newly
        t1[:, k], sh[:, k], emis[:, k], cut[:, k] = c, at_drum, e, cutting
    return t1, sh, emis, cut, off_at


def _delayed(t: np.ndarray, x: np.ndarray, delay_s: np.ndarray) -> np.ndarray:
    """x(t - delay(t)) per row, for a delay that varies with the air velocity."""
    return np.stack([np.interp(t - delay_s[i], t, x[i]) for i in range(x.shape[0])])


def _first_order(x: np.ndarray, tau_s: float) -> np.ndarray:
    a = np.exp(-DT_S / tau_s)
    y = np.empty_like(x)
    cur = x[..., 0].copy()
    for k in range(x.shape[-1]):
        cur = a * cur + (1 - a) * x[..., k]
        y[..., k] = cur
    return y


def simulate_mine(rng: np.random.Generator, n_faces: int, duration_s: float, start_hour: float,
                  spec: FaceSpec | None = None, failure: VentFailure | None = None) -> MineTruth:
    spec = spec or FaceSpec()
    t = grid(duration_s, DT_S)
    n = len(t)
    plan = np.stack([cutting_plan(rng, t, start_hour) for _ in range(n_faces)])
    ws = ventilation(rng, t, spec, n_faces, failure)
    t3 = 0.03 + 0.005 * red_noise(rng, (1, n), DT_S, 3600.0, 1.0)[0]
    t1, sh, emis, cut, off_at = face_methane(t, plan, ws, spec, t3, drum_bursts(rng, plan))
    q = ws * spec.area_m2 * 60.0
    # Upper corner: goaf gas in a small recirculating flow, mixing over a few minutes.
    corner = _first_order(spec.goaf_corner_m3min / (spec.corner_share * q) * 100.0, 300.0)
    t0 = t1 + corner
    # Return airway: the face air plus the corner's gas, arriving after the airway's transport time.
    mixed = t1 + spec.corner_share * corner
    t2 = _delayed(t, mixed, spec.return_length_m / ws)
    # Main return: all faces and the rest of the mine (other districts at ~0.08 %), a few minutes downstream.
    q_other = 3000.0
    mr_now = (np.sum(q * t2, axis=0) + q_other * 0.08) / (np.sum(q, axis=0) + q_other)
    mr = _first_order(np.interp(t - 600.0, t, mr_now), 300.0)
    diesel = np.where(plan.max(axis=0) > 0, 0.8, 0.1)
    co = (spec.co_ppm * spec.ws_ms / ws) + diesel[None, :] * _first_order(plan, 900.0)
    return MineTruth(t, ws, cut, emis, t1, t0, t2, sh, co, t3, mr, off_at)


@dataclass(frozen=True)
class FaceSensors:
    t0: str | None = None
    t1: str | None = None
    t2: str | None = None
    sh: str | None = None
    co: str | None = None
    ws: str | None = None


def methane_readings(rng: np.random.Generator, true_pct: np.ndarray) -> np.ndarray:
    """Infrared methane sensor, adjusted every 15 days as the 煤矿安全规程 requires: 0.01 %CH4 resolution, a
    zero offset of a few thousandths, a little noise, floor 0."""
    off = rng.normal(0.0, 0.005, (true_pct.shape[0], 1))
    v = true_pct + off + rng.normal(0.0, 0.004, true_pct.shape)
    return np.maximum(quantise(v, 0.01), 0.0)


def mine_traces(rng: np.random.Generator, truth: MineTruth, faces: list[FaceSensors], t3: str | None,
                mr: str | None, duration_s: float, period_s: float = DT_S,
                scans: dict[float, np.ndarray] | None = None) -> list[Trace]:
    """Readings of the mine's sensors, one scan of the monitoring system for all (they share a period)."""
    t = shared_scan(rng, period_s, duration_s, scans)
    out: list[Trace] = []

    def at(rows: np.ndarray) -> np.ndarray:
        return resample(truth.t_s, rows, t)

    for f, ids in enumerate(faces):
        for attr, series in (("t0", truth.t0), ("t1", truth.t1), ("t2", truth.t2), ("sh", truth.sh)):
            sid = getattr(ids, attr)
            if sid:
                out += traces([sid], t, methane_readings(rng, at(series[f:f + 1])))
        if ids.ws:
            # Ultrasonic anemometer: turbulence of a few percent, 0.01 m/s resolution.
            w = at(truth.ws[f:f + 1])
            out += traces([ids.ws], t, quantise(w * (1 + rng.normal(0.0, 0.03, w.shape)), 0.01))
        if ids.co:
            c = at(truth.co[f:f + 1]) + rng.normal(0.0, 0.4, (1, len(t)))
            out += traces([ids.co], t, np.maximum(quantise(c, 1.0), 0.0))
    if t3:
        out += traces([t3], t, methane_readings(rng, at(truth.t3[None, :])))
    if mr:
        out += traces([mr], t, methane_readings(rng, at(truth.mr[None, :])))
    return out
