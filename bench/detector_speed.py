"""Detector throughput on one core: the vectorised engine against per-reading Python and a memory-bound floor.

    .venv/bin/python bench/detector_speed.py [--sensors 100000] [--batches 10000:8,30000:5,100000:4]

Builds a synthetic city of 100,000 sensors in memory (tank farms: level with LL/L/H/HH + rate + trend + a
related inflow meter, temperature, pressure; gas areas: latching combustible/toxic heads in 2oo3 voting groups,
oxygen; coal mines: methane with power-off/re-energise, CO, wind; tailings dams: piezometers, displacement
points, freeboard, dry beach, rain) and streams batches of readings through DetectorEngine.process_arrays:
mostly normal values with noise, some sensors in excursion (past a limit, latched, ramping, frozen gauge),
bad quality, late readings and resends, event time advancing batch by batch.

For each batch size it prints readings/s, the speed-up over the per-reading reference
(bench/reference_detectors.py) on the same batch, the slowdown against one vectorised gather + compare over the
same batch (the memory-bound floor of any detector), and detector state per sensor. Goals from the issue:
>= 50x the per-reading Python, within 10x of the comparison pass, state < 1 KiB per sensor.
"""

from __future__ import annotations

import os

# One core: pin BLAS/OpenMP pools before NumPy loads them, and the process itself to one CPU.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from dataclasses import dataclass, fields, is_dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.reference_detectors import ReferenceDetectors  # noqa: E402
from detectors.engine import DetectorEngine  # noqa: E402
from hazardwatch.model import Q_BAD, Q_GOOD  # noqa: E402
from hazardwatch.registry import (  # noqa: E402
    LIMIT_NAMES,
    District,
    Enterprise,
    HazardSource,
    Limit,
    Person,
    RateSpec,
    Registry,
    Sensor,
    TrendSpec,
    VotingGroup,
)

T0 = 1_800_000_000_000
PER_READING_RULES = {"limit", "rate", "trend", "drift", "out_of_range", "bad_quality", "stuck", "offline"}
REF_BUDGET_S = 4.0  # per batch: beyond this the reference runs on a slice and is scaled per reading
GOAL_SPEEDUP, GOAL_FLOOR, GOAL_STATE = 50.0, 10.0, 1024.0


@dataclass(frozen=True)
class Kind:
    kind: str
    unit: str
    period_s: float
    lo: float
    hi: float
    limits: tuple[tuple[str, float, float, bool], ...]  # (name, set, reset, latching)
    normal: tuple[float, float]  # per-sensor operating point drawn uniformly in this interval
    noise: float  # standard deviation of reading noise
    excursion: float  # value during an excursion (past a limit)


KINDS = {
    "level": Kind("level", "%", 10, 0, 100, (("LL", 5, 7, False), ("L", 10, 12, False), ("H", 85, 83, False),
                                             ("HH", 90, 88, False)), (30, 70), 0.05, 92),
    "flow": Kind("flow", "m3/h", 10, 0, 1500, (), (200, 600), 5.0, 1400),
    "temperature": Kind("temperature", "°C", 30, -40, 120, (("H", 45, 43, False), ("HH", 55, 52, False)),
                        (15, 30), 0.2, 50),
    "pressure": Kind("pressure", "kPa", 10, -5, 50, (("H", 15, 13, False), ("HH", 20, 18, False)), (2, 8), 0.05, 17),
    "gas_combustible": Kind("gas_combustible", "%LEL", 5, 0, 100, (("H", 25, 20, True), ("HH", 50, 45, True)),
                            (0, 3), 0.3, 30),
    "gas_toxic": Kind("gas_toxic", "ppm", 5, 0, 400, (("H", 20, 16, True), ("HH", 40, 36, True)), (0, 5), 0.5, 25),
    "oxygen": Kind("oxygen", "%VOL", 5, 0, 30, (("L", 19.5, 19.8, True), ("H", 23.5, 23.2, True)), (20.8, 21.0),
                   0.05, 19.0),
    "methane": Kind("methane", "%CH4", 10, 0, 40, (("H", 1.0, 1.0, False), ("HH", 1.5, 1.0, False)), (0.1, 0.5),
                    0.05, 1.6),
    "carbon_monoxide": Kind("carbon_monoxide", "ppm", 10, 0, 1000, (("H", 24, 20, False),), (2, 10), 1.0, 30),
    "wind_speed": Kind("wind_speed", "m/s", 10, 0, 15, (("L", 0.25, 0.3, False),), (1, 4), 0.2, 0.1),
    "phreatic_depth": Kind("phreatic_depth", "m", 600, 0, 40, (("LL", 6.0, 6.18, False), ("L", 6.6, 6.78, False)),
                           (8, 15), 0.01, 6.3),
    "displacement": Kind("displacement", "mm", 600, 0, 500, (("H", 40, 39, False), ("HH", 50, 49, False)), (5, 20),
                         0.1, 45),
    "freeboard": Kind("freeboard", "m", 600, 0, 10, (("LL", 1.0, 1.05, False),), (2, 4), 0.01, 0.9),
    "dry_beach": Kind("dry_beach", "m", 600, 0, 500, (("LL", 100, 102, False),), (150, 250), 0.5, 95),
    "rainfall": Kind("rainfall", "mm", 600, 0, 300, (("H", 50, 45, False),), (0, 5), 1.0, 60),
}
# Sources of 50 sensors each: (source kind, share of sources, sensor kinds in order).
TANK = ["level", "flow", "temperature", "pressure"] * 10 + ["gas_combustible"] * 10
GAS = ["gas_combustible"] * 30 + ["gas_toxic"] * 15 + ["oxygen"] * 5
COAL = ["methane"] * 30 + ["carbon_monoxide"] * 10 + ["wind_speed"] * 10
DAM = ["phreatic_depth"] * 20 + ["displacement"] * 15 + ["freeboard"] * 5 + ["dry_beach"] * 5 + ["rainfall"] * 5
SOURCE_MIX = [("tank_farm", 0.4, TANK), ("gas_area", 0.3, GAS), ("coal_mine", 0.2, COAL), ("tailings_dam", 0.1, DAM)]


def build_registry(n_sensors: int) -> tuple[Registry, list[str]]:
    """A city of n_sensors (a multiple of 50), built directly in memory. Returns it and the kind per slot."""
    district = District("D01", "合成区", "Synthetic district")
    enterprises: dict[str, Enterprise] = {}
    sources: dict[str, HazardSource] = {}
    sensors: dict[str, Sensor] = {}
    kinds: list[str] = []
    people = (Person("主要负责人 principal", "bench", "+86-00000000000"),)
    n_sources = n_sensors // 50
    plan = [kind for kind, share, _ in SOURCE_MIX for _ in range(round(share * n_sources))]
    plan = (plan + [SOURCE_MIX[0][0]] * n_sources)[:n_sources]
    layout = {kind: members for kind, _, members in SOURCE_MIX}
    for i, src_kind in enumerate(plan):
        eid, sid = f"E{i // 10:04d}", f"S{i:05d}"
        if eid not in enterprises:
            enterprises[eid] = Enterprise(eid, district.id, eid, eid, eid.lower())
        ids: list[str] = []
        for j, k in enumerate(layout[src_kind]):
            spec = KINDS[k]
            sensor_id = f"{sid}-{j:02d}-{k}"
            limits = tuple(Limit(name, float(v), float(r), 3 if len(name) == 1 else 2, "synthetic", latching=latch,
                                 raise_name="power_off" if k == "methane" and name == "HH" else "raise",
                                 clear_name="re_energise" if k == "methane" and name == "HH" else "clear")
                           for name, v, r, latch in spec.limits)
            extra: dict[str, Any] = {}
            if k == "level":
                extra = {"rate": RateSpec(2.0, 3, "synthetic"), "trend": TrendSpec(1800.0, 3, "HH", 120.0),
                         "related": (f"{sid}-{j + 1:02d}-flow",), "stuck_s": 300.0}
            sensors[sensor_id] = Sensor(sensor_id, sid, k, spec.unit, spec.period_s, (spec.lo, spec.hi), limits,
                                        sensor_id, sensor_id, len(kinds), **extra)
            kinds.append(k)
            ids.append(sensor_id)
        gas = [x for x in ids if x.endswith("gas_combustible") or x.endswith("gas_toxic")]
        voting = tuple(VotingGroup(f"{sid}-V{g:02d}", sid, "2oo3", tuple(gas[3 * g:3 * g + 3]), "H")
                       for g in range(len(gas) // 3))
        sources[sid] = HazardSource(sid, eid, src_kind, sid, sid, 30.0, 120.0, 2, "declared", people, tuple(ids),
                                    voting)
    reg = Registry(Path("synthetic"), "合成市", "Synthetic city", {district.id: district}, enterprises, sources,
                   sensors)
    return reg, kinds


class World:
    """Ground truth per sensor: operating point, excursions (some latched gas, some filling tanks), frozen gauges.

    Every sensor reports on its own period with a random phase and some jitter; a batch is the next `size`
    readings due, so a sensor appears about once per period, as from real gateways.
    """

    def __init__(self, kinds: list[str], seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        n = len(kinds)
        names = sorted(KINDS)
        code = np.array([names.index(k) for k in kinds])

        def column(f: str) -> np.ndarray:
            return np.array([getattr(KINDS[k], f) for k in names], dtype=float)[code]

        lo_n = np.array([KINDS[k].normal[0] for k in names])[code]
        hi_n = np.array([KINDS[k].normal[1] for k in names])[code]
        self.n = n
        self.base = lo_n + self.rng.random(n) * (hi_n - lo_n)
        self.noise, self.exc_value, self.period_ms = column("noise"), column("excursion"), column("period_s") * 1000
        is_level = np.array([k == "level" for k in kinds])
        self.excursion = np.zeros(n, dtype=bool)
        self.frozen = is_level & (self.rng.random(n) < 0.01)  # stuck gauges (Buncefield)
        self.ramp = np.where(is_level & (self.rng.random(n) < 0.05), 0.01, 0.0)  # filling tanks, % per s
        self.due = T0 + (self.rng.random(n) * self.period_ms).astype(np.int64)
        self.last_ts = np.full(n, T0, dtype=np.int64)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The next `size` readings due, in arrival order (time order, some late, some resent)."""
        rng = self.rng
        # 0.1 % of sensors start an excursion per batch, 20 % of those in one end it.
        self.excursion |= rng.random(self.n) < 0.001
        self.excursion &= rng.random(self.n) >= 0.2
        take = np.argpartition(self.due, size - 1)[:size] if size < self.n else np.arange(self.n)
        slot = take[np.argsort(self.due[take], kind="stable")].astype(np.int64)
        ts = self.due[slot].copy()
        jitter = rng.normal(0.0, 0.02, size) * self.period_ms[slot]
        self.due[slot] += (self.period_ms[slot] + jitter).astype(np.int64)
        late = rng.random(size) < 0.01  # delivered by a later batch than its time says
        ts[late] -= rng.integers(5_000, 30_000, int(late.sum()))
        resend = rng.random(size) < 0.002  # a gateway resending the sensor's previous reading time
        ts[resend] = self.last_ts[slot[resend]]
        self.last_ts[slot] = ts
        elapsed_s = (ts - T0) / 1000.0
        value = self.base[slot] + self.ramp[slot] * elapsed_s + rng.normal(0.0, 1.0, size) * self.noise[slot]
        exc = self.excursion[slot]
        value[exc] = self.exc_value[slot[exc]] + rng.normal(0.0, 1.0, int(exc.sum())) * self.noise[slot[exc]]
        frozen = self.frozen[slot]
        value[frozen] = self.base[slot[frozen]]
        value = np.maximum(value, 0.0)
        q = np.where(rng.random(size) < 0.005, Q_BAD, Q_GOOD).astype(np.int8)
        return slot, ts, value, q


def state_nbytes(engine: DetectorEngine) -> tuple[int, int]:
    """(bytes of the per-sensor state arrays, bytes of all state including voting groups and forecast buffers)."""
    per_sensor = total = 0
    for key, obj in engine.state.items():
        if not is_dataclass(obj):
            continue
        nbytes = sum(getattr(obj, f.name).nbytes for f in fields(obj) if isinstance(getattr(obj, f.name), np.ndarray))
        total += nbytes
        if key in ("limits", "rate", "trend", "drift", "health", "last"):
            per_sensor += nbytes
    return per_sensor, total


def floor_pass(reg: Registry, slot: np.ndarray, val: np.ndarray, repeats: int = 15) -> float:
    """Best time of one gather + compare over the batch: `value > H set level of the reading's sensor`."""
    h = reg.limit_set[:, LIMIT_NAMES.index("H")].copy()
    out = np.empty(len(slot), dtype=bool)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.greater(val, h[slot], out=out)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sensors", type=int, default=100_000)
    ap.add_argument("--batches", default="10000:8,30000:5,100000:4", help="size:count,...")
    args = ap.parse_args()
    plan = [(int(s), int(c)) for s, c in (x.split(":") for x in args.batches.split(","))]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    started = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", flush=True)

    say(f"building a synthetic registry of {args.sensors:,} sensors ...")
    reg, kinds = build_registry(args.sensors)
    counts = {k: kinds.count(k) for k in KINDS}
    say("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v))
    n_groups = sum(len(s.voting) for s in reg.sources.values())
    say(f"  {len(reg.sources):,} sources, {n_groups:,} 2oo3 voting groups; building engine and reference ...")
    engine = DetectorEngine(reg)
    ref = ReferenceDetectors(reg)
    world = World(kinds)
    say("warm-up: one reading per sensor (first values seed baselines and trends) ...")
    slot, ts, val, q = world.batch(args.sensors)
    engine.process_arrays(slot, ts, val, q)
    ref.process_arrays(slot, ts, val, q)
    check_e = check_r = 0
    in_sync = True  # the reference has seen every reading the engine has (no slice yet): events comparable

    rows: list[dict[str, Any]] = []
    for size, count in plan:
        eng_s: list[float] = []
        ref_per: list[float] = []
        floor_s: list[float] = []
        events = 0
        sliced = False
        for b in range(count):
            slot, ts, val, q = world.batch(size)
            gc.collect()
            t = time.perf_counter()
            out = engine.process_arrays(slot, ts, val, q)
            eng_s.append(time.perf_counter() - t)
            events += len(out)
            # The reference on the same batch; a slice, scaled per reading, when the whole would be too slow.
            m = size
            if ref_per and ref_per[-1] * size > REF_BUDGET_S:
                m, sliced = max(1_000, int(REF_BUDGET_S / ref_per[-1])), True
            t = time.perf_counter()
            ref_out = ref.process_arrays(slot[:m], ts[:m], val[:m], q[:m])
            ref_per.append((time.perf_counter() - t) / m)
            in_sync &= m == size
            if in_sync:
                check_e += sum(r["rule"] in PER_READING_RULES for r in out)
                check_r += len(ref_out)
            floor_s.append(floor_pass(reg, slot, val))
            part = f" (slice of {m:,})" if m < size else ""
            say(f"  batch {size:>7,} #{b + 1}: engine {eng_s[-1] * 1e3:8.1f} ms ({size / eng_s[-1]:>11,.0f} rd/s), "
                f"reference {ref_per[-1] * 1e6:6.2f} us/reading{part}, compare pass {floor_s[-1] * 1e3:6.3f} ms, "
                f"{len(out)} events")
        e = statistics.median(eng_s)
        r = statistics.median(ref_per) * size
        f = statistics.median(floor_s)
        rows.append({"size": size, "count": count, "eng": e, "ref": r, "floor": f, "events": events,
                     "sliced": sliced})

    say("memory: tracemalloc peak during one batch of each size (separate, untimed runs) ...")
    peaks: dict[int, int] = {}
    for size, _ in plan:
        slot, ts, val, q = world.batch(size)
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        engine.process_arrays(slot, ts, val, q)
        peaks[size] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    per_sensor, total = state_nbytes(engine)
    n = args.sensors

    print()
    print(f"DetectorEngine.process_arrays, {n:,} sensors, one core (affinity 1 CPU, BLAS/OpenMP threads = 1)")
    print("full detector set: limits (deadband, delays, latching), rate, trend time-to-limit, CUSUM drift, health "
          "(out of range, bad quality, stuck with related flow), 2oo3 voting, inverse-velocity forecast")
    print(f"{'batch':>8} {'n':>2} {'readings/s':>12} {'ms/batch':>9} {'vs Python':>10} {'vs compare':>11} "
          f"{'compare ms':>10} {'events':>7}")
    for row in rows:
        print(f"{row['size']:>8,} {row['count']:>2} {row['size'] / row['eng']:>12,.0f} {row['eng'] * 1e3:>9.1f} "
              f"{row['ref'] / row['eng']:>9.1f}x {row['eng'] / row['floor']:>10.0f}x {row['floor'] * 1e3:>10.3f} "
              f"{row['events']:>7,}{'  *' if row['sliced'] else ''}")
    print("medians over the batches of each size; 'vs Python' = per-reading reference time / engine time on the "
          "same batch,")
    print("'vs compare' = engine time / one `value > H_set[slot]` gather + compare over the same batch (best of 15).")
    if any(row["sliced"] for row in rows):
        print(f"* the reference ran on a slice of the batch (about {REF_BUDGET_S:.0f} s of work) and was scaled per "
              "reading.")
    print("The reference implements the per-reading rules only (no voting, no inverse-velocity forecast); the "
          "engine does all.")
    print(f"events while the reference saw every reading: engine {check_e:,} per-reading-rule events, "
          f"reference {check_r:,}{' (equal)' if check_e == check_r else ' (DIFFERENT)'}")
    print()
    print(f"state: {per_sensor / n:,.0f} B/sensor in per-sensor arrays; {total / n:,.0f} B/sensor including voting "
          "and forecast buffers (nbytes / sensors)")
    for size, peak in peaks.items():
        print(f"tracemalloc peak during a batch of {size:>7,}: {peak / 2**20:7.1f} MiB = {peak / n:,.0f} B/sensor")
    worst_speedup = min(row["ref"] / row["eng"] for row in rows)
    per_size = ", ".join(f"{row['size']:,}: {row['ref'] / row['eng']:.0f}x" for row in rows)
    worst_floor = max(row["eng"] / row["floor"] for row in rows)
    print()
    print("goals:")
    print(f"  >= {GOAL_SPEEDUP:.0f}x faster than per-reading Python: worst {worst_speedup:.1f}x -> "
          f"{'met' if worst_speedup >= GOAL_SPEEDUP else 'NOT met'}"
          f" (per size: {per_size})")
    print(f"  within {GOAL_FLOOR:.0f}x of a single comparison pass: worst {worst_floor:.0f}x -> "
          f"{'met' if worst_floor <= GOAL_FLOOR else 'NOT met'}")
    print(f"  state < 1 KiB per sensor: {total / n:,.0f} B -> {'met' if total / n < GOAL_STATE else 'NOT met'}; "
          f"peak transient per sensor during a batch {max(peaks.values()) / n:,.0f} B "
          f"({'under' if max(peaks.values()) / n < GOAL_STATE else 'over'} 1 KiB)")
    say("done")


if __name__ == "__main__":
    main()
