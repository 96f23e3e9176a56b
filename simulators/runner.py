"""Play a scenario through the real pipeline: MQTT -> bridge -> Kafka -> Faust worker -> InfluxDB -> alerts.

Simulated time runs as fast as the pipeline keeps up, in lockstep: the runner publishes the readings of one
step (with their event timestamps), and moves the worker's clock (HW_CLOCK_FILE) to the end of a step only
once the worker has committed every reading of that step. So a sensor is judged offline against a clock that
never runs ahead of what the worker has seen, however slow the machine, and a scenario gives the same alerts
on a loaded CI machine as on an idle one. Event times are anchored in the recent past (the scenario ends a few
minutes before the wall clock), which the bridge accepts as ordinary late-arriving data.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from hazardwatch.model import DEAD, READINGS
from hazardwatch.registry import Registry, load_registry
from hazardwatch.sandbox import Sandbox
from simulators.playback import Chunk, chunks
from simulators.trace import Scenario

PAYLOAD_READINGS = 1000  # readings per MQTT message: a gateway's batch, well inside HW_MAX_BATCH_READINGS
END_MARGIN_S = 300.0  # the scenario's last event time lies this far before the wall clock at the start


@dataclass
class RunResult:
    scenario: str
    t0_ms: int
    published: int
    forwarded: int
    dead: list[dict[str, Any]]
    stored: int
    alerts: list[dict[str, Any]]
    wall_s: float
    steps: int
    duration_s: float
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """Simulated seconds per wall second."""
        return 0.0 if self.wall_s <= 0 else self.duration_s / self.wall_s


def default_step_s(scenario: Scenario) -> float:
    """About 200 steps per scenario, between 10 s (one polling cycle) and 5 min of simulated time."""
    return min(300.0, max(10.0, scenario.duration_s / 200))


class TopicCounter:
    """Counts readings forwarded to `readings` (and dead letters) from a thread, with the offsets seen so far."""

    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.readings = 0
        self.dead: list[dict[str, Any]] = []
        self.positions: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="topic-counter", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("could not start the Kafka consumer counting forwarded readings")

    def _run(self) -> None:
        try:
            asyncio.run(self._consume())
        except BaseException as exc:  # surfaced to the caller on the next snapshot
            self._error = exc
            self._started.set()

    async def _consume(self) -> None:
        readings, dead = self.sb.s.topic(READINGS), self.sb.s.topic(DEAD)
        c = AIOKafkaConsumer(readings, dead, bootstrap_servers=self.sb.s.kafka_bootstrap, group_id=None,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20)
        await c.start()
        self._started.set()
        try:
            while not self._stop.is_set():
                batch = await c.getmany(timeout_ms=100, max_records=5000)
                n = 0
                dead_rows = []
                pos = {}
                for tp, msgs in batch.items():
                    if tp.topic == readings:
                        n += sum(len(orjson.loads(m.value)["s"]) for m in msgs)
                        pos[tp.partition] = msgs[-1].offset + 1
                    else:
                        dead_rows += [orjson.loads(m.value) for m in msgs]
                with self._lock:
                    self.readings += n
                    self.dead += dead_rows
                    self.positions.update(pos)
        finally:
            await c.stop()

    def snapshot(self) -> tuple[int, int, dict[int, int]]:
        if self._error:
            raise RuntimeError(f"counting consumer failed: {self._error!r}")
        with self._lock:
            return self.readings, len(self.dead), dict(self.positions)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


async def _committed(sb: Sandbox) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=sb.s.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(sb.s.app_id)
    finally:
        await admin.close()
    topic = sb.s.topic(READINGS)
    return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic and om.offset >= 0}


class Lockstep:
    """Waits for the bridge to forward a step's readings, then for the worker to commit them."""

    def __init__(self, sb: Sandbox, counter: TopicCounter, timeout_s: float = 300.0):
        self.sb, self.counter, self.timeout_s = sb, counter, timeout_s
        self.loop = asyncio.new_event_loop()

    def forwarded(self, target: int) -> dict[int, int]:
        """Block until `target` readings (or rejects) reached Kafka; return the offsets that cover them."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            n, dead, pos = self.counter.snapshot()
            if n + dead >= target:
                return pos
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bridge forwarded {n} readings (+{dead} dead letters) of {target} in "
                                   f"{self.timeout_s:.0f} s; is `hazardwatch bridge` running? see its log")
            time.sleep(0.02)

    def committed(self, positions: dict[int, int]) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            done = self.loop.run_until_complete(_committed(self.sb))
            if all(done.get(p, 0) >= off for p, off in positions.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker committed {done} of {positions} in {self.timeout_s:.0f} s; "
                                   "see the worker log")
            time.sleep(0.05)

    def close(self) -> None:
        self.loop.close()


def payloads(chunk: Chunk, t0_ms: int, registry: Registry) -> list[tuple[str, str, bytes]]:
    """(MQTT user, topic rest, payload): each source's gateway sends its own readings in batches."""
    out = []
    for r in chunk.rows:
        ts = (t0_ms + (r.t_s * 1000).round()) / 1000.0
        user = registry.enterprises[r.enterprise].mqtt_user
        for i in range(0, len(r.sensors), PAYLOAD_READINGS):
            sl = slice(i, i + PAYLOAD_READINGS)
            rows = [{"s": s, "ts": t, "v": v} if q == 0 else {"s": s, "ts": t, "v": v, "q": q}
                    for s, t, v, q in zip(r.sensors[sl], ts[sl].tolist(), r.value[sl].tolist(),
                                          r.quality[sl].tolist(), strict=True)]
            out.append((user, f"{r.enterprise}/{r.source}", orjson.dumps({"readings": rows})))
    return out


def _count_stored(sb: Sandbox, t0_ms: int, duration_s: float) -> int:
    start = t0_ms // 1000 - 1
    stop = int(t0_ms / 1000 + duration_s) + 2
    rows = sb.flux(f'from(bucket: "{sb.s.influx_bucket}") |> range(start: {start}, stop: {stop}) '
                   f'|> filter(fn: (r) => r._measurement == "reading" and r._field == "v") |> group() |> count()')
    return int(rows[0]["_value"]) if rows else 0


def run_scenario(scenario: Scenario, tmp: Path, step_s: float | None = None,
                 progress: Callable[[str], None] = print) -> RunResult:
    """Start a sandboxed bridge and worker on the local services, play the scenario, collect every alert."""
    from hazardwatch.config import load_settings

    registry = load_registry(load_settings().registry_path)
    step = step_s or default_step_s(scenario)
    t0_ms = int((time.time() - scenario.duration_s - END_MARGIN_S) * 1000)
    clock = tmp / "clock"
    clock.write_text(str(t0_ms))
    # Accept event times back to the scenario's start; keep the bucket long enough to hold them.
    age_s = int(scenario.duration_s + END_MARGIN_S + 3600)
    sb = Sandbox(tmp, retention_s=0, HW_MAX_AGE_S=str(age_s), HW_CLOCK_FILE=str(clock), HW_OFFLINE_TICK_S="0.5",
                 HW_COMMIT_INTERVAL_S="0.2", HW_BATCH_MAX="5000")
    counter: TopicCounter | None = None
    lock: Lockstep | None = None
    try:
        sb.bridge()
        sb.worker()
        counter = TopicCounter(sb)
        lock = Lockstep(sb, counter)
        users = sorted({registry.enterprises[registry.sources[s].enterprise].mqtt_user for s in scenario.sources})
        clients = {u: sb.publisher(u) for u in users}
        progress(f"scenario {scenario.name}: {scenario.readings:,} readings over {scenario.duration_s / 3600:.1f} h "
                 f"simulated, steps of {step:g} s, sources {', '.join(scenario.sources)}")
        started = time.perf_counter()
        published = 0
        pending: tuple[float, int] | None = None  # (end_s, readings published through it) of the previous step
        last_note = started
        steps = 0
        for chunk in chunks(scenario, registry, step):
            infos = [clients[u].publish(sb.topic(rest), body, qos=1)
                     for u, rest, body in payloads(chunk, t0_ms, registry)]
            for info in infos:
                info.wait_for_publish(60)
            published += chunk.readings
            steps += 1
            # One step in flight while the previous one is confirmed: the pipeline never idles, and the clock
            # only moves to the end of a step the worker has fully processed.
            if pending is not None:
                _advance(lock, clock, t0_ms, *pending)
            pending = (chunk.end_s, published)
            if time.perf_counter() - last_note > 10:
                last_note = time.perf_counter()
                wall = last_note - started
                progress(f"  simulated {_hms(chunk.end_s)} of {_hms(scenario.duration_s)}, {published:,} readings, "
                         f"{chunk.end_s / wall:,.0f} x real time")
        if pending is not None:
            _advance(lock, clock, t0_ms, *pending)
        wall_s = time.perf_counter() - started
        # Offline ticks and the alert stage run on their own timers: give them a few rounds at the final clock.
        time.sleep(2.0)
        stored = sb.wait_for("every reading in InfluxDB",
                             lambda: (n := _count_stored(sb, t0_ms, scenario.duration_s)) >= published and n,
                             timeout=120, every=1.0)
        alerts = sb.read_topic("alerts", idle_s=2.0)
        for c in clients.values():
            c.disconnect()
        n, _, _ = counter.snapshot()
        res = RunResult(scenario.name, t0_ms, published, n, list(counter.dead), stored, alerts, wall_s, steps,
                        scenario.duration_s, {p.log.name: p.log.read_text(errors="replace") for p in sb.procs})
        progress(f"  done: {published:,} readings published, {stored:,} stored, {len(alerts)} alert records, "
                 f"{len(res.dead)} dead letters, {res.speedup:,.0f} x real time "
                 f"({wall_s:.0f} s)")
        return res
    finally:
        if counter:
            counter.close()
        if lock:
            lock.close()
        sb.close()


def _advance(lock: Lockstep, clock: Path, t0_ms: int, end_s: float, target: int) -> None:
    positions = lock.forwarded(target)
    lock.committed(positions)
    tmp = clock.with_suffix(".new")
    tmp.write_text(str(t0_ms + round(end_s * 1000)))
    tmp.replace(clock)  # atomic: the worker never reads a half-written number


def _hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
