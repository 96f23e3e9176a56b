"""Fixed gas detectors: clean-air background, and a release plume that reaches detectors in turn.

Background: each detector has its own zero offset (within the ±3 %LEL a calibration allows), a slow wander of
that zero with temperature and humidity, white noise, the transmitter's resolution, and a floor at 0 (gateways
clamp the slight under-range a 4-20 mA loop shows in clean air). Oxygen detectors read 20.9 %VOL.

Release: a ground-level Gaussian plume from the leak point, in the frame of the instantaneous wind. Its
direction meanders (an Ornstein-Uhlenbeck angle), its concentration is intermittent (a log-normal factor with a
few seconds' correlation), and gas emitted at time t reaches a point x metres downwind at t + x / u. Plant
congestion gives the plume an initial width of a metre or two. The detector sees that concentration through its
own response (T90 ~ 15 s, GB 15322 allows 30 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.sampling import lag, quantise, red_noise

R_LATERAL = 0.5  # instantaneous plume width as a share of Briggs' averaged width: meander supplies the rest


@dataclass(frozen=True)
class Substance:
    name: str
    lel_frac: float  # lower explosive limit, volume fraction
    density_kgm3: float  # of the pure gas at ~15 °C

    def percent_lel(self, kg_m3: np.ndarray) -> np.ndarray:
        return kg_m3 / self.density_kgm3 / self.lel_frac * 100.0


LPG = Substance("LPG (butane-rich)", 0.019, 2.3)
GASOLINE_VAPOUR = Substance("gasoline vapour", 0.014, 3.0)


@dataclass(frozen=True)
class DetectorModel:
    """Clean-air behaviour of one detector type, in its registry unit."""

    clean: float  # true value of clean air
    offset_sd: float  # zero (or span) offset between detectors
    wander_sd: float  # slow zero wander over hours
    noise_sd: float
    resolution: float
    tau_s: float  # first-order response time constant (T90 = 2.3 tau)
    span: float  # instrument span in its unit (the registry range's top)
    floor: float | None = 0.0  # clamp below this

    @property
    def ceiling(self) -> float:
        """A 4-20 mA loop saturates at 20.5 mA (NAMUR NE43): 103.1 % of span, whatever the gas does."""
        return 1.03125 * self.span


COMBUSTIBLE = DetectorModel(0.0, 0.6, 0.25, 0.2, 0.1, 6.5, 100.0)
OXYGEN = DetectorModel(20.9, 0.08, 0.04, 0.03, 0.1, 8.0, 30.0, floor=None)


def toxic_model(range_hi: float) -> DetectorModel:
    """Electrochemical cell: offsets and noise scale with the range (a 0-20 mg/m3 Cl2 head resolves 0.01)."""
    res = 0.01 if range_hi <= 50 else 0.1
    return DetectorModel(0.0, 0.002 * range_hi, 0.001 * range_hi, 0.0008 * range_hi, res, 10.0, range_hi)


def model_for(kind: str, range_hi: float) -> DetectorModel:
    if kind == "oxygen":
        return OXYGEN
    if kind == "gas_toxic":
        return toxic_model(range_hi)
    return COMBUSTIBLE


def detector_layout(n: int, spacing_m: float = 30.0, row_m: float = 5.0) -> np.ndarray:
    """Deterministic plan positions (m) of a source's n detectors. Each voting group of three watches one
    piece of equipment (a pump row or a manifold): its detectors stand on a line 5 m apart. Groups sit on a grid
    30 m apart, three to a row; a detector left over guards the fence line."""
    pos = np.zeros((n, 2))
    for i in range(n):
        g, k = divmod(i, 3)
        if g < n // 3:
            cx, cy = (g % 3) * spacing_m, (g // 3) * spacing_m
            pos[i] = (cx + (k - 1) * row_m, cy)
        else:
            pos[i] = (-spacing_m / 2.0, -spacing_m / 2.0 - k * row_m)
    return pos


def briggs_rural_d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Briggs open-country dispersion widths for neutral stability (class D), metres."""
    sy = 0.08 * x / np.sqrt(1.0 + 0.0001 * x)
    sz = 0.06 * x / np.sqrt(1.0 + 0.0015 * x)
    return sy, sz


@dataclass(frozen=True)
class Release:
    leak_xy: tuple[float, float]
    start_s: float
    q_max_kgps: float
    growth_s: float  # the hole grows: q = q_max * min(1, (t - start) / growth)
    wind_speed: float  # m/s
    wind_to_deg: float  # direction the wind blows toward, plan angle from +x
    meander_deg: float = 15.0
    meander_tau_s: float = 40.0
    intermittency: float = 0.35  # log-normal sigma of concentration fluctuations
    sigma0_m: tuple[float, float] = (1.5, 1.0)  # initial lateral and vertical spread (congestion)

    def rate(self, t: np.ndarray) -> np.ndarray:
        return self.q_max_kgps * np.clip((t - self.start_s) / self.growth_s, 0.0, 1.0)


def plume_kgm3(rng: np.random.Generator | None, t: np.ndarray, pos: np.ndarray, rel: Release) -> np.ndarray:
    """True concentration (kg/m3) at each detector (rows) on the time grid t (regular). rng None: the mean
    wind, no meander and no intermittency (for checking the geometry)."""
    dt = float(t[1] - t[0])
    n = len(t)
    theta = np.deg2rad(rel.wind_to_deg) * np.ones(n)
    if rng is not None and rel.meander_deg > 0:
        theta = theta + red_noise(rng, (1, n), dt, rel.meander_tau_s, np.deg2rad(rel.meander_deg))[0]
    u = rel.wind_speed
    d = pos[:, None, :] - np.asarray(rel.leak_xy)[None, None, :]  # [m, 1, 2]
    cos, sin = np.cos(theta)[None, :], np.sin(theta)[None, :]
    x = d[..., 0] * cos + d[..., 1] * sin  # downwind
    y = -d[..., 0] * sin + d[..., 1] * cos  # crosswind
    xs = np.maximum(x, 0.5)
    by, bz = briggs_rural_d(xs)
    sy = np.sqrt(rel.sigma0_m[0] ** 2 + (R_LATERAL * by) ** 2)
    sz = np.sqrt(rel.sigma0_m[1] ** 2 + bz ** 2)
    # Gas emitted at t - x/u is what arrives now: the front reaches nearer detectors first.
    q = rel.rate(t[None, :] - xs / u)
    c = q / (np.pi * sy * sz * u) * np.exp(-0.5 * (y / sy) ** 2)
    c = np.where(x > 0, c, 0.0)
    if rng is not None and rel.intermittency > 0:
        z = red_noise(rng, c.shape, dt, 5.0, 1.0)
        c = c * np.exp(rel.intermittency * z - 0.5 * rel.intermittency ** 2)
    return c


def running_mean(x: np.ndarray, dt_s: float, window_s: float) -> np.ndarray:
    """Trailing moving average along the last axis."""
    w = max(1, round(window_s / dt_s))
    c = np.cumsum(np.pad(x, [(0, 0)] * (x.ndim - 1) + [(w, 0)]), axis=-1)
    return (c[..., w:] - c[..., :-w]) / w


def first_crossing(t: np.ndarray, x: np.ndarray, level: float) -> np.ndarray:
    """Per row, the first time x >= level (inf if never)."""
    hit = x >= level
    idx = np.argmax(hit, axis=-1)
    return np.where(hit.any(axis=-1), t[idx], np.inf)


def fugitive_puffs(rng: np.random.Generator, t: np.ndarray, n: int, per_day: float, peak: tuple[float, float]
                   ) -> np.ndarray:
    """Short whiffs a normal day brings to a few detectors (truck loading, sampling, draining water from a tank
    bottom): a rise over tens of seconds and a decay over a minute or two, true concentration."""
    out = np.zeros((n, len(t)))
    duration = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    k = rng.poisson(per_day * duration / 86400.0)
    for _ in range(k):
        i = int(rng.integers(0, n))
        t0 = rng.uniform(t[0], t[-1])
        a = rng.uniform(*peak)
        rise, decay = rng.uniform(10.0, 30.0), rng.uniform(40.0, 120.0)
        dt = t - t0
        after = np.maximum(dt, 0.0)
        shape = (1.0 - np.exp(-after / rise)) * np.exp(-after / decay)
        out[i] += a * shape / max(shape.max(), 1e-9)
    return out


def readings(rng: np.random.Generator, model: DetectorModel, t: np.ndarray, true_excess: np.ndarray | None,
             n: int, dt_s: float | None = None, offsets: np.ndarray | None = None, respond: bool = True
             ) -> np.ndarray:
    """Detector readings at the scan times t (rows: detectors). true_excess: concentration above clean air at
    the detector at those times (or None); the detector's response lag is applied to it unless the caller
    already did (respond=False, e.g. on a finer grid)."""
    dt = dt_s if dt_s is not None else (float(np.median(np.diff(t))) if len(t) > 1 else 1.0)
    off = offsets if offsets is not None else rng.normal(0.0, model.offset_sd, (n, 1))
    wander = red_noise(rng, (n, len(t)), dt, 7200.0, model.wander_sd)
    v = model.clean + off + wander + rng.normal(0.0, model.noise_sd, (n, len(t)))
    if true_excess is not None:
        v = v + (lag(true_excess, dt, model.tau_s, 0.0) if respond else true_excess)
    v = quantise(np.minimum(v, model.ceiling), model.resolution)
    if model.floor is not None:
        v = np.maximum(v, model.floor)
    return v
