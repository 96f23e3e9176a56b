"""End-to-end benchmark: MQTT -> bridge -> Kafka -> Faust worker(s) -> InfluxDB and alerts, next to raw baselines.

    .venv/bin/python bench/e2e.py                  # full run, about 8 minutes
    .venv/bin/python bench/e2e.py --quick          # about 3 minutes, shorter windows
    .venv/bin/python bench/e2e.py --json out.json  # also write every figure as JSON
    .venv/bin/python bench/e2e.py --phases pipeline-batched,latency --window 30

One run measures, each phase in a fresh Sandbox (its own topics, Faust app, MQTT root and InfluxDB bucket):

  raw-mqtt          publish -> subscribe through Mosquitto with no processing: the load generator flat out, a
                    minimal MQTT subscriber on a fresh $share group (batched and single-reading payloads), and the
                    same single-reading stream into a paho subscriber, the client library the bridge uses.
  pipeline-batched  batched payloads at an offered rate above capacity for warm-up + window seconds; one worker.
  raw-kafka         aiokafka consume (decode included) of the readings topic the previous phase filled, then
                    aiokafka produce (acks=all, the bridge's producer settings) of records of the same shape.
  raw-influx        the worker's own LineProtocol and InfluxWriter on records of that shape, no Kafka, no
                    detectors: how fast this machine's InfluxDB stores readings (the store agent's ceiling).
  pipeline-single   the same with one MQTT message per reading.
  pipeline-2w       batched, two workers in one consumer group.
  latency           10,000 readings/s batched, a limit-crossing probe every 0.2 s; publish -> alert record on the
                    `alerts` topic, and publish -> the control room's WeCom message at a local HTTP receiver; the
                    time to the alert split into hops by the Kafka CreateTime of the records the probe became.

Pipeline throughput is the rate at which readings became both *queryable* in InfluxDB (Flux count at the window's
start and end) and *evaluated* by the detector (the workers' `worker: stats` readings counter), whichever is
slower, over the window after the warm-up. CPU seconds per 10,000 readings come from /proc/<pid>/stat
(utime+stime) of the bridge and the workers, read when their stats lines appear, divided by the readings each
one handled between those lines. All clocks are this machine's wall clock.

Batched phases are offered 150,000 readings/s, far above what this 2-core machine sustains (offering 55,000
gave the same stored rate, so the excess does not distort it); the single-reading phase 4,000 messages/s, above
the bridge's ~2,000 and low enough that Mosquitto's per-session queue (200,000 messages) never overflows. The
table says when a phase did NOT saturate: the pipeline then kept up, and its capacity is above that figure.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import math
import os
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from hazardwatch import services  # noqa: E402
from hazardwatch.config import Settings, load_settings  # noqa: E402
from hazardwatch.influx import InfluxWriter, LineProtocol  # noqa: E402
from hazardwatch.model import ALERTS, DETECTIONS, READINGS, ReadingBatch  # noqa: E402
from hazardwatch.registry import load_registry  # noqa: E402
from hazardwatch.sandbox import Sandbox  # noqa: E402
from simulators.load import connect_packet, mqtt_str, mqtt_varint, percentile, split_packets  # noqa: E402
from tests.receivers import SECRETS, Receivers  # noqa: E402

GOAL_RATE = 50_000.0  # readings/s through the whole pipeline, batched payloads
GOAL_P99_S = 1.0  # publish -> alert record at 10,000 readings/s
GOAL_RATIO = 0.5  # pipeline / raw Kafka consume
PHASES = ("raw-mqtt", "pipeline-batched", "raw-kafka", "raw-influx", "pipeline-single", "pipeline-2w", "latency")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Faust's log format puts "[time] [pid] [WARNING] " in front of the worker's line; the bridge prints it bare.
STATS_GRACE_S = 25.0  # load kept on after a window until each process's next stats line (worker: every 10 s)
STATS_RE = re.compile(r"(worker|bridge): stats (\{.*\})\s*$")


@dataclass
class Plan:
    warmup_s: float = 15.0
    window_s: float = 60.0
    raw_s: float = 15.0
    batch: int = 100
    offer_batched: float = 150_000.0
    offer_single: float = 4_000.0
    latency_rate: float = 10_000.0
    latency_s: float = 60.0
    probe_every_s: float = 0.2
    drain_s: float = 20.0
    phases: tuple[str, ...] = PHASES
    worker_env: dict[str, str] = field(default_factory=dict)


QUICK = {"warmup_s": 6.0, "window_s": 15.0, "raw_s": 4.0, "latency_s": 15.0, "drain_s": 10.0}


# ---- small utilities ----------------------------------------------------------------------------------------
def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def human(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a" if x is None or math.isnan(x) else "inf"
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


def cpu_s(pid: int) -> float | None:
    """utime+stime (+ waited-for children) of a process, seconds; None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'; rest[0] is field 3.
    rest = raw[raw.rindex(")") + 2:].split()
    return sum(int(x) for x in rest[11:15]) / CLK_TCK


def machine_jiffies() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of all CPUs since boot; steal = time the hypervisor gave to other guests."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    steal = fields[7]
    total = sum(fields[:8])
    return total - idle - steal, total, steal


def service_pids(s: Settings) -> dict[str, int]:
    out = {}
    for name in ("mosquitto", "kafka", "influxdb"):
        try:
            out[name] = int((s.run_dir / f"{name}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            pass
    return out


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


# ---- observing the sandbox's processes -----------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    counters: dict[str, Any]
    cpu: float | None


class StatsTail:
    """Follows a bridge or worker log; every `stats` line is stamped with our clock and the process's CPU time."""

    def __init__(self, name: str, proc: subprocess.Popen, log: Path):
        self.name, self.proc, self.log = name, proc, log
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pos = 0
        buf = b""
        while not self._stop.is_set():
            try:
                with open(self.log, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                pos += len(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    m = STATS_RE.search(line.decode(errors="replace"))
                    if m:
                        self.samples.append(Sample(time.time(), orjson.loads(m.group(2)), cpu_s(self.proc.pid)))
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def latest(self, key: str) -> int:
        return int(self.samples[-1].counters.get(key, 0)) if self.samples else 0

    def at(self, key: str, t: float) -> float | None:
        """The counter at wall time t, linear between the stats lines either side of it (None if not bracketed).

        The bridge prints its line only between drain cycles, so lines are irregular; the worker's come every 10 s."""
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            if a.t <= t <= b.t:
                na, nb = float(a.counters.get(key, 0)), float(b.counters.get(key, 0))
                return na + (nb - na) * (t - a.t) / max(b.t - a.t, 1e-9)
        return None

    def wait_past(self, t: float, timeout_s: float) -> bool:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.samples and self.samples[-1].t >= t:
                return True
            time.sleep(0.2)
        return False


class LoadProc:
    """simulators/load.py in its own process (its own core and GIL), followed through its progress lines."""

    def __init__(self, sb: Sandbox, tmp: Path, *, rate: float | None, duration_s: float, batch: int,
                 probe_every_s: float = 0.0, probe_after_s: float = 5.0):
        self.out = tmp / f"load-{uuid.uuid4().hex[:6]}.json"
        args = [sys.executable, "-m", "simulators.load", "--rate", str(rate or 0), "--duration", str(duration_s),
                "--batch", str(batch), "--probe-every", str(probe_every_s), "--probe-after", str(probe_after_s),
                "--out", str(self.out)]
        self.proc = subprocess.Popen(args, cwd=ROOT, env=sb.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        sb.procs.append(self.proc)  # stopped with the sandbox's own processes, even when the bench is interrupted
        self.progress: list[tuple[float, int]] = []
        self.lines: list[str] = []
        self.started = threading.Event()
        self.cpu_last: float | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self.started.wait(30):
            raise RuntimeError("load generator did not start:\n" + "\n".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.cpu_last = cpu_s(self.proc.pid) or self.cpu_last
            if line.startswith("load: progress "):
                d = orjson.loads(line[len("load: progress "):])
                self.progress.append((float(d["t"]), int(d["readings"])))
                self.started.set()
            else:
                self.lines.append(line)
                if line.startswith("load: connected"):
                    self.started.set()

    def published_at(self, t: float) -> int:
        """Readings published by wall time t (linear between progress lines)."""
        if not self.progress:
            return 0
        ts = [p[0] for p in self.progress]
        i = bisect.bisect_right(ts, t)
        if i == 0:
            return 0
        if i == len(ts):
            return self.progress[-1][1]
        (t0, n0), (t1, n1) = self.progress[i - 1], self.progress[i]
        return int(n0 + (n1 - n0) * (t - t0) / max(t1 - t0, 1e-9))

    @property
    def t0(self) -> float:
        return self.progress[0][0] - 1.0 if self.progress else time.time()

    def cpu(self) -> float | None:
        return cpu_s(self.proc.pid)

    def wait(self, timeout_s: float) -> dict[str, Any]:
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(30)
        self._thread.join(5)
        if self.proc.returncode != 0 or not self.out.exists():
            raise RuntimeError(f"load generator failed (exit {self.proc.returncode}):\n" + "\n".join(self.lines[-30:]))
        return orjson.loads(self.out.read_bytes())


def influx_count(sb: Sandbox) -> tuple[float, int]:
    """(wall time at the query's midpoint, readings stored in the sandbox's bucket)."""
    q = (f'from(bucket: "{sb.s.influx_bucket}") |> range(start: -30d) '
         f'|> filter(fn: (r) => r._measurement == "reading" and r._field == "v") |> group() |> count()')
    t0 = time.time()
    rows = sb.flux(q)
    return (t0 + time.time()) / 2, int(rows[0]["_value"]) if rows else 0


@dataclass
class CpuSnap:
    t: float
    procs: dict[str, float | None]
    machine: tuple[int, int, int]


def cpu_snap(pids: dict[str, int]) -> CpuSnap:
    return CpuSnap(time.time(), {**{k: cpu_s(p) for k, p in pids.items()}, "bench": cpu_s(os.getpid())},
                   machine_jiffies())


def cpu_delta(a: CpuSnap, b: CpuSnap) -> dict[str, Any]:
    out: dict[str, Any] = {k: (b.procs[k] - a.procs[k]) if a.procs.get(k) is not None and b.procs.get(k) is not None
                           else None for k in a.procs}
    busy, total, steal = (b.machine[i] - a.machine[i] for i in range(3))
    out["machine_busy_pct"] = 100.0 * busy / total if total else None
    out["machine_steal_pct"] = 100.0 * steal / total if total else None
    out["machine_cpu_s"] = busy / CLK_TCK
    ours = sum(v for k, v in out.items() if k in a.procs and v is not None)
    # Everything else on the machine (other engineers' tests, kernel threads): the noise in this measurement.
    out["others_cpu_s"] = max(0.0, out["machine_cpu_s"] - ours)
    return out


# ---- sandboxes ------------------------------------------------------------------------------------------------
async def _drop_topics(s: Settings, run: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith((f"{run}.", f"hw-{run}-"))]
        if mine:
            await admin.delete_topics(mine)
        return len(mine)
    finally:
        await admin.close()


def purge_mqtt_session(s: Settings, client_id: str) -> None:
    """Take over our bridge's client id with a clean session, so Mosquitto drops that session and its queue now.

    A killed bridge's persistent session otherwise lives on for HW_MQTT_SESSION_EXPIRY_S (120 s in a sandbox),
    holding the backlog of an overloaded phase; Mosquitto re-saves it every autosave_interval (30 s), and each
    save stalls the broker for about a second, in the middle of the next phase's latency measurement."""
    sock = socket.create_connection((s.mqtt_host, s.ports.mqtt), timeout=10)
    try:
        sock.sendall(connect_packet(client_id, "hw-bridge", s.mqtt_password("hw-bridge"), 10))  # clean session
        buf = bytearray()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(first >> 4 == 2 for first, _ in split_packets(buf)):
            buf += sock.recv(64)
        sock.sendall(b"\xe0\x00")  # DISCONNECT: a clean session leaves nothing behind
    finally:
        sock.close()


@contextmanager
def sandbox(tmp: Path, name: str, **extra: str) -> Iterator[Sandbox]:
    """A fresh Sandbox; on the way out its processes stop, its bucket and (only its own) Kafka topics go."""
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    sb = Sandbox(d, HW_AUDIT_PATH=str(d / "audit.jsonl"), **extra)
    try:
        yield sb
    finally:
        # Our own bridge and workers, by pid: a graceful Faust shutdown takes up to 20 s per process and the
        # measurement is over, so nothing is lost by not waiting.
        for p in sb.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        try:
            purge_mqtt_session(sb.s, f"{sb.run}-bridge")
        except OSError as exc:
            say(f"  (could not clear the MQTT session of {sb.run}: {exc!r})")
        try:
            sb.close()
        finally:
            try:
                run_async(_drop_topics(sb.s, sb.run))
            except Exception as exc:  # a leftover scratch topic is untidy, not a reason to lose the results
                say(f"  (could not delete the Kafka topics of {sb.run}: {exc!r})")


# ---- phase 1: raw MQTT ----------------------------------------------------------------------------------------
class RawSubscriber:
    """The least a subscriber can do: MQTT 3.1.1, QoS 1, count messages and readings, acknowledge, nothing else."""

    def __init__(self, s: Settings, topic_filter: str):
        self.messages = 0
        self.readings = 0
        self._stop = threading.Event()
        self.sock = socket.create_connection((s.mqtt_host, s.ports.mqtt), timeout=15)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(f"hw-rawsub-{uuid.uuid4().hex[:6]}", "hw-bridge",
                                         s.mqtt_password("hw-bridge"), 60))
        body = struct.pack("!H", 1) + mqtt_str(topic_filter) + b"\x01"
        self.sock.sendall(b"\x82" + mqtt_varint(len(body)) + body)
        self._buf = bytearray()
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.ready.wait(15):
            raise RuntimeError("raw subscriber: no SUBACK from Mosquitto")

    def _run(self) -> None:
        acks = bytearray()
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if not r:
                continue
            data = self.sock.recv(1 << 20)
            if not data:
                return
            self._buf += data
            for first, body in split_packets(self._buf):
                kind = first >> 4
                if kind == 3:
                    n = struct.unpack_from("!H", body)[0]
                    qos = (first >> 1) & 3
                    payload_at = 2 + n + (2 if qos else 0)
                    if qos:
                        acks += b"\x40\x02" + body[2 + n:4 + n]
                    self.messages += 1
                    self.readings += body.count(b'"s":', payload_at) or 1
                elif kind == 9:
                    self.ready.set()
            if acks:
                self.sock.sendall(acks)
                acks.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class PahoSubscriber:
    """The same count in paho (what the bridge is built on), to show that client library's own ceiling."""

    def __init__(self, s: Settings, topic_filter: str):
        self.messages = 0
        self.readings = 0
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hw-pahosub-{uuid.uuid4().hex[:6]}",
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set("hw-bridge", s.mqtt_password("hw-bridge"))
        self.c.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message
        self.c.max_inflight_messages_set(1000)
        self.c.connect(s.mqtt_host, s.ports.mqtt)
        self.c.loop_start()
        if not self.ready.wait(15):
            raise RuntimeError("paho subscriber: no SUBACK from Mosquitto")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.messages += 1
        self.readings += msg.payload.count(b'"s":') or 1

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def raw_mqtt(plan: Plan, tmp: Path, batch: int, client: str) -> dict[str, Any]:
    label = f"raw MQTT {'batched' if batch else 'single'} ({client} subscriber)"
    say(f"phase: {label}: generator flat out for {plan.raw_s + 3:.0f} s")
    with sandbox(tmp, f"raw-mqtt-{batch}-{client}") as sb:
        flt = f"$share/{sb.run}-raw/{sb.s.mqtt_root}/#"
        sub: RawSubscriber | PahoSubscriber = RawSubscriber(sb.s, flt) if client == "raw" else PahoSubscriber(sb.s, flt)
        try:
            load = LoadProc(sb, tmp, rate=None, duration_s=plan.raw_s + 3, batch=batch)
            time.sleep(3)  # connections and the broker's buffers settle
            t_a, m_a, r_a = time.time(), sub.messages, sub.readings
            time.sleep(plan.raw_s)
            t_b, m_b, r_b = time.time(), sub.messages, sub.readings
            summary = load.wait(60)
            p_a, p_b = load.published_at(t_a), load.published_at(t_b)
        finally:
            sub.close()
    dt = t_b - t_a
    out = {"phase": label, "batch": batch, "client": client, "window_s": dt,
           "readings_per_s": (r_b - r_a) / dt, "messages_per_s": (m_b - m_a) / dt,
           "published_per_s": (p_b - p_a) / dt, "generator": summary}
    say(f"  {label}: received {human(out['readings_per_s'])} readings/s, {human(out['messages_per_s'])} msg/s "
        f"(published {human(out['published_per_s'])} readings/s)")
    return out


# ---- phase 2: raw Kafka -------------------------------------------------------------------------------------
async def _consume_all(s: Settings, topic: str, time_cap_s: float) -> dict[str, Any]:
    c = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        readings = records = nbytes = 0
        t0 = time.perf_counter()
        while remaining and time.perf_counter() - t0 < time_cap_s:
            batch = await c.getmany(*remaining, timeout_ms=1000, max_records=20_000)
            for tp, msgs in batch.items():
                for m in msgs:
                    records += 1
                    nbytes += len(m.value)
                    readings += len(ReadingBatch.decode(m.value))  # decoding is part of any real consumer
                if msgs and msgs[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        dt = time.perf_counter() - t0
    finally:
        await c.stop()
    return {"readings": readings, "records": records, "bytes": nbytes, "seconds": dt,
            "readings_per_s": readings / dt if dt else math.nan, "records_per_s": records / dt if dt else math.nan,
            "complete": not remaining}


async def _produce(s: Settings, topic: str, partitions: int, per_record: int, seconds: float) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    reg = load_registry(s.registry_path)
    rng = np.random.default_rng(3)
    pool: list[tuple[bytes, bytes]] = []
    now = int(time.time() * 1000)
    for i in range(64):  # records shaped like the bridge's: one source, columnar, `per_record` readings
        src = reg.sources[reg.source_ids[i % len(reg.source_ids)]]
        sensors = [src.sensors[k % len(src.sensors)] for k in range(per_record)]
        b = ReadingBatch(src.id, src.enterprise, sensors, now + np.arange(per_record, dtype=np.int64),
                         rng.uniform(0, 50, per_record).round(3), np.zeros(per_record, dtype=np.int8))
        pool.append((src.id.encode(), b.encode()))
    # The bridge's producer settings.
    p = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                         max_batch_size=1 << 20, max_request_size=4 << 20)
    await p.start()
    records = nbytes = 0
    try:
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < seconds:
            futs = []
            for _ in range(500):
                k, v = pool[i % len(pool)]
                i += 1
                futs.append(await p.send(topic, value=v, key=k))
                nbytes += len(v)
            await asyncio.gather(*futs)
            records += len(futs)
        dt = time.perf_counter() - t0
    finally:
        await p.stop()
    return {"records": records, "readings": records * per_record, "readings_per_record": per_record,
            "bytes": nbytes, "seconds": dt, "readings_per_s": records * per_record / dt, "records_per_s": records / dt}


def raw_kafka_consume(sb: Sandbox, cap_s: float) -> dict[str, Any]:
    say(f"phase: raw Kafka consume of {sb.s.topic(READINGS)} (aiokafka, decode included)")
    out = run_async(_consume_all(sb.s, sb.s.topic(READINGS), cap_s))
    say(f"  raw Kafka consume: {human(out['readings_per_s'])} readings/s ({out['records']} records, "
        f"{human(out['readings'])} readings in {out['seconds']:.1f} s)")
    return out


def raw_kafka_produce(plan: Plan, tmp: Path, per_record: int) -> dict[str, Any]:
    say(f"phase: raw Kafka produce, acks=all, {per_record} readings per record, {plan.raw_s:.0f} s")
    with sandbox(tmp, "raw-kafka-produce") as sb:
        out = run_async(_produce(sb.s, sb.s.topic("scratch"), sb.s.partitions, per_record, plan.raw_s))
    say(f"  raw Kafka produce: {human(out['readings_per_s'])} readings/s ({human(out['records_per_s'])} records/s)")
    return out


def _bridge_like_records(s: Settings, per_record: int, count: int, start_ms: int) -> list[bytes]:
    """Encoded ReadingBatch records as the bridge makes them: one source each, distinct (sensor, ts)."""
    reg = load_registry(s.registry_path)
    out = []
    next_ms = {sid: start_ms for sid in reg.source_ids}
    for i in range(count):
        src = reg.sources[reg.source_ids[i % len(reg.source_ids)]]
        n = len(src.sensors)
        sensors = [src.sensors[k % n] for k in range(per_record)]
        ts = next_ms[src.id] + np.arange(per_record, dtype=np.int64) // n
        next_ms[src.id] = int(ts[-1]) + 1
        out.append(ReadingBatch(src.id, src.enterprise, sensors, ts, np.full(per_record, 1.5),
                                np.zeros(per_record, dtype=np.int8)).encode())
    return out


async def _influx_writes(s: Settings, bodies: list[str], per_body: int, seconds: float) -> tuple[int, float]:
    w = InfluxWriter(s)
    await w.ensure_started()
    n = 0
    try:
        t0 = time.perf_counter()
        for body in bodies:  # one write at a time, awaited, as the store agent does
            await w.write(body, per_body)
            n += per_body
            if time.perf_counter() - t0 > seconds:
                break
        return n, time.perf_counter() - t0
    finally:
        await w.stop()


def raw_influx(plan: Plan, tmp: Path, per_record: int) -> dict[str, Any]:
    say(f"phase: raw InfluxDB write (the worker's LineProtocol and InfluxWriter, one request at a time), "
        f"{per_record} readings per request, up to {plan.raw_s:.0f} s")
    with sandbox(tmp, "raw-influx") as sb:
        reg = load_registry(sb.s.registry_path)
        lp = LineProtocol(reg)
        # Enough for the time at 150k readings/s (above what one writer gets), capped at ~2M readings (~220 MB of
        # line protocol held in memory); if it runs out early, the rate is over what was written.
        count = max(12, int(min(150_000 * plan.raw_s, 2_000_000) / per_record))
        records = _bridge_like_records(sb.s, per_record, count, int(time.time() * 1000) - 3_600_000)
        c0, t0 = time.process_time(), time.perf_counter()
        bodies = [lp.readings([ReadingBatch.decode(r)]) for r in records]
        build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        influx_pid = service_pids(sb.s).get("influxdb")
        cpu_a = cpu_s(influx_pid) if influx_pid else None
        written, dt = run_async(_influx_writes(sb.s, bodies, per_record, plan.raw_s))
        cpu_b = cpu_s(influx_pid) if influx_pid else None
        _, stored = influx_count(sb)
    out = {"readings_per_request": per_record, "written": written, "seconds": dt, "readings_per_s": written / dt,
           "stored_check": stored, "decode_and_line_protocol_per_s": len(records) * per_record / build_s,
           "decode_and_line_protocol_cpu_s_per_10k": build_cpu / (len(records) * per_record) * 1e4,
           "influxdb_cpu_s_per_10k": ((cpu_b - cpu_a) / written * 1e4) if cpu_a is not None and cpu_b is not None
           and written else None}
    say(f"  raw InfluxDB write: {human(out['readings_per_s'])} readings/s (InfluxDB "
        f"{out['influxdb_cpu_s_per_10k'] or math.nan:.3f} CPU-s/10k); decode + line protocol alone "
        f"{human(out['decode_and_line_protocol_per_s'])} readings/s on one core")
    return out


# ---- phases 3-5: the pipeline, sustained -----------------------------------------------------------------------
def pipeline(plan: Plan, tmp: Path, *, name: str, batch: int, workers: int, offer: float,
             after: Callable[[Sandbox], None] | None = None) -> dict[str, Any]:
    label = f"pipeline {'batched' if batch else 'single'}, {workers} worker{'s' if workers > 1 else ''}"
    say(f"phase: {label}: offered {human(offer)} readings/s, warm-up {plan.warmup_s:.0f} s + window "
        f"{plan.window_s:.0f} s")
    with sandbox(tmp, name) as sb:
        bridge = sb.bridge()
        ws = [sb.worker(**plan.worker_env) for _ in range(workers)]
        if workers > 1:
            time.sleep(8)  # the second worker's join triggers a rebalance; let the group settle before loading it
        tails = [StatsTail("bridge", bridge, bridge.log)] + [StatsTail(f"worker{i + 1}", w, w.log)  # type: ignore[attr-defined]
                                                             for i, w in enumerate(ws)]
        pids = {"bridge": bridge.pid, **{f"worker{i + 1}": w.pid for i, w in enumerate(ws)},
                **service_pids(sb.s)}
        try:
            # The load runs on past the window until every process has printed a stats line after its end, so
            # the counters at the window's edges are interpolated under load, not read after it stopped.
            load = LoadProc(sb, tmp, rate=offer, duration_s=plan.warmup_s + plan.window_s + STATS_GRACE_S,
                            batch=batch)
            pids["generator"] = load.proc.pid
            t_start = load.t0
            t_a = t_start + plan.warmup_s
            t_b = t_a + plan.window_s
            next_line = time.time() + 5
            snap_a = snap_b = None
            stored_a = stored_b = (0.0, 0)
            while load.proc.poll() is None:
                now = time.time()
                if snap_a is None and now >= t_a:
                    snap_a = cpu_snap(pids)
                    stored_a = influx_count(sb)
                elif snap_a is not None and snap_b is None and now >= t_b:
                    snap_b = cpu_snap(pids)
                    stored_b = influx_count(sb)
                if snap_b is not None and all(t.samples and t.samples[-1].t >= t_b for t in tails):
                    load.proc.terminate()  # everything needed is in; stop early
                    break
                if now >= next_line:
                    next_line += 5
                    pub = load.published_at(now)
                    ev = sum(t.latest("readings") for t in tails[1:])
                    say(f"  {label}: t={now - t_start:4.0f}s published {human(pub)} "
                        f"({human(pub / max(now - t_start, 1e-9))}/s) bridge {human(tails[0].latest('accepted'))} "
                        f"evaluated {human(ev)} backlog {human(pub - ev)}")
                time.sleep(0.1)
            summary = load.wait(60)
            stats_end = {t.name: t.samples[-1].counters if t.samples else {} for t in tails}
        finally:
            for t in tails:
                t.stop()
        if snap_a is None or snap_b is None:
            raise RuntimeError(f"{label}: the load generator stopped before the window ended")
        window = stored_b[0] - stored_a[0]
        stored_rate = (stored_b[1] - stored_a[1]) / window
        published_rate = (load.published_at(snap_b.t) - load.published_at(snap_a.t)) / (snap_b.t - snap_a.t)

        def counted(tail: StatsTail, key: str) -> tuple[float, float]:
            """(count, seconds) over the window: interpolated at its edges, or from the first/last stats line
            inside it when an edge is not bracketed (the first worker line comes only ~10 s after start)."""
            a, b = tail.at(key, snap_a.t), tail.at(key, snap_b.t)
            ta, tb = snap_a.t, snap_b.t
            inside = [x for x in tail.samples if snap_a.t <= x.t <= snap_b.t]
            if a is None and inside:
                a, ta = float(inside[0].counters.get(key, 0)), inside[0].t
            if b is None and inside:
                b, tb = float(inside[-1].counters.get(key, 0)), inside[-1].t
            if a is None or b is None or tb - ta < 1.0:
                return math.nan, math.nan
            return b - a, tb - ta

        dt = snap_b.t - snap_a.t
        per_worker = [counted(t, "readings") for t in tails[1:]]
        evaluated_rate = sum(n / sec for n, sec in per_worker)  # NaN when any worker's count is unknown
        bridged, bridge_s = counted(tails[0], "accepted")
        bridge_rate = bridged / bridge_s
        pipe = min(stored_rate, evaluated_rate) if math.isfinite(evaluated_rate) else stored_rate
        d = cpu_delta(snap_a, snap_b)
        worker_cpu = sum(d[f"worker{i + 1}"] or 0.0 for i in range(workers))
        cpu_bridge = d["bridge"] / (bridge_rate * dt) * 1e4 if bridge_rate > 0 else math.nan
        # The detector runs ahead of the InfluxDB writes (Faust buffers records for each agent separately), so the
        # workers' CPU is charged to the readings that made it all the way: conservative, never flattering.
        done = pipe * dt
        cpu_workers = worker_cpu / done * 1e4 if done else math.nan
        readings_window = stored_rate * window
        per10k = {k: (v / readings_window * 1e4 if v is not None and readings_window else None)
                  for k, v in d.items() if k not in ("machine_busy_pct", "machine_steal_pct")}
        others_cores = d["others_cpu_s"] / dt
        backlog_a = load.published_at(stored_a[0]) - stored_a[1]
        backlog_b = load.published_at(stored_b[0]) - stored_b[1]
        out = {
            "phase": label, "batch": batch, "workers": workers, "offered_per_s": offer,
            "published_per_s": published_rate, "bridge_per_s": bridge_rate, "stored_per_s": stored_rate,
            "evaluated_per_s": evaluated_rate, "pipeline_per_s": pipe, "window_s": window,
            "per_worker_evaluated_per_s": [n / sec for n, sec in per_worker],
            "backlog_start": backlog_a, "backlog_end": backlog_b,
            "saturated": backlog_b > backlog_a + 0.05 * pipe * window or backlog_b > 2 * pipe,
            "cpu_s_per_10k": {"bridge": cpu_bridge, "workers": cpu_workers, "total": cpu_bridge + cpu_workers},
            "cpu_window_s": d, "cpu_s_per_10k_stored_window": per10k,
            "machine_busy_pct": d.get("machine_busy_pct"), "machine_steal_pct": d.get("machine_steal_pct"),
            "others_cores": others_cores,
            "stats_end": stats_end, "generator": summary,
        }
        say(f"  {label}: stored {human(stored_rate)}/s, evaluated {human(evaluated_rate)}/s, bridge "
            f"{human(bridge_rate)}/s -> pipeline {human(pipe)} readings/s "
            f"({'saturated' if out['saturated'] else 'NOT saturated: kept up with the offered load'})")
        if after is not None:
            for p in sb.procs:  # processes down before the raw consume, so it gets the machine to itself
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
            after(sb)
    return out


# ---- phase 6: latency -----------------------------------------------------------------------------------------
class AlertTap:
    """Reads the sandbox's `alerts` and `detections` topics from the start. Each record is stamped with our wall
    clock on arrival and keeps Kafka's CreateTime (set by the producing worker on this machine's clock) in
    `_kafka_ms`, which splits the latency into stages."""

    def __init__(self, s: Settings):
        self.s = s
        self.records: list[tuple[float, dict[str, Any]]] = []  # alerts
        self.detections: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"alerts consumer did not start: {self.error!r}")

    async def _run(self) -> None:
        try:
            alerts, detections = self.s.topic(ALERTS), self.s.topic(DETECTIONS)
            c = AIOKafkaConsumer(bootstrap_servers=self.s.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                                 fetch_max_wait_ms=50)
            await c.start()
            try:
                tps = []
                for topic in (alerts, detections):
                    parts = c.partitions_for_topic(topic) or set()
                    if not parts:
                        await c._client.force_metadata_update()
                        parts = c.partitions_for_topic(topic) or set()
                    tps += [TopicPartition(topic, p) for p in sorted(parts)]
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                self._ready.set()
                while not self._stop.is_set():
                    batch = await c.getmany(timeout_ms=100)
                    t = time.time()
                    for tp, msgs in batch.items():
                        rows = [(t, {**orjson.loads(m.value), "_kafka_ms": m.timestamp}) for m in msgs]
                        (self.records if tp.topic == alerts else self.detections).extend(rows)
            finally:
                await c.stop()
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


async def _reading_record_times(s: Settings, keys: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Kafka CreateTime (ms) of the `readings` record that carried each (sensor, ts): when the bridge produced it."""
    topic = s.topic(READINGS)
    c = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                         max_partition_fetch_bytes=8 << 20)
    await c.start()
    out: dict[tuple[str, int], int] = {}
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or set())]
        if not tps:
            await c._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or set())]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await c.getmany(*remaining, timeout_ms=1000, max_records=5000)
            if not batch:
                break
            for tp, msgs in batch.items():
                for m in msgs:
                    d = orjson.loads(m.value)
                    for sensor, ts in zip(d["s"], d["ts"], strict=True):
                        if (sensor, ts) in keys:
                            out[(sensor, ts)] = m.timestamp
                if msgs and msgs[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
    finally:
        await c.stop()
    return out


def stage_latencies(probes: list[dict[str, Any]], reading_ms: dict[tuple[str, int], int],
                    detections: list[tuple[float, dict[str, Any]]],
                    alerts: list[tuple[float, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """p50/p99 of each hop, from the CreateTime of the records the probe became on its way (same clock)."""
    det = {}
    for _, d in detections:
        if d.get("rule") == "limit" and d.get("state") in ("raise", "realarm"):
            det.setdefault((d["sensor"], int(d["ts_ms"])), d["_kafka_ms"] / 1000)
    alr = {}
    for t, a in alerts:
        if a.get("rule") == "limit" and a.get("state") in ("raise", "realarm"):
            alr.setdefault((a["sensor"], int(a["ts_ms"])), (a["_kafka_ms"] / 1000, t))
    hops: dict[str, list[float]] = {"publish -> readings record (bridge)": [],
                                    "readings record -> detection (detect agent)": [],
                                    "detection -> alert record (alert agent)": [],
                                    "alert record -> our consumer": []}
    names = list(hops)
    for p in probes:
        if p.get("publish_wall") is None:
            continue
        k = (p["sensor"], int(p["ts_ms"]))
        if k not in reading_ms or k not in det or k not in alr:
            continue
        r, d, (a, got) = reading_ms[k] / 1000, det[k], alr[k]
        for name, v in zip(names, (r - p["publish_wall"], d - r, a - d, got - a), strict=True):
            hops[name].append(v)
        p["stages_s"] = [r - p["publish_wall"], d - r, a - d, got - a]
    return {name: {"n": len(v), "p50_s": percentile(v, 50), "p99_s": percentile(v, 99)} for name, v in hops.items()}


def _strings(x: Any) -> Iterator[str]:
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def match_probes(probes: list[dict[str, Any]], alerts: list[tuple[float, dict[str, Any]]],
                 deliveries: list[tuple[float, str, Any]]) -> dict[str, Any]:
    """Latency of each probe to its alert record (same sensor and event time) and to the first delivery whose
    text holds that record's English text (the page quotes the alert text verbatim)."""
    raised = {}
    for t, rec in alerts:
        if rec.get("rule") == "limit" and rec.get("state") in ("raise", "realarm"):
            raised.setdefault((rec["sensor"], int(rec["ts_ms"])), (t, rec))
    texts = [(t, path, "\n".join(_strings(body))) for t, path, body in deliveries]
    sent = [p for p in probes if p.get("publish_wall") is not None]
    to_alert: list[float] = []
    to_delivery: list[float] = []
    fresh_alert: list[float] = []
    rows = []
    for p in sent:
        hit = raised.get((p["sensor"], int(p["ts_ms"])))
        row = {"sensor": p["sensor"], "ts_ms": p["ts_ms"], "fresh": p["fresh"], "alert_s": None, "delivery_s": None,
               "channel": None}
        if hit is not None:
            t, rec = hit
            row["alert_s"] = t - p["publish_wall"]
            to_alert.append(row["alert_s"])
            if p["fresh"]:
                fresh_alert.append(row["alert_s"])
            needle = rec.get("text_en", "")
            for td, path, text in texts:
                if needle and needle in text:
                    row["delivery_s"] = td - p["publish_wall"]
                    row["channel"] = path
                    to_delivery.append(row["delivery_s"])
                    break
        rows.append(row)
    n = len(sent)
    probe_keys = {(p["sensor"], int(p["ts_ms"])) for p in probes}
    return {
        "probes_sent": n, "alerts_seen": len(to_alert), "deliveries_seen": len(to_delivery),
        "fresh_probes": sum(p["fresh"] for p in sent),
        "alert_p50_s": percentile(to_alert, 50, n - len(to_alert)),
        "alert_p99_s": percentile(to_alert, 99, n - len(to_alert)),
        "alert_max_s": max(to_alert) if len(to_alert) == n and n else math.inf,
        "alert_fresh_p50_s": percentile(fresh_alert, 50),
        "delivery_p50_s": percentile(to_delivery, 50, n - len(to_delivery)),
        "delivery_p99_s": percentile(to_delivery, 99, n - len(to_delivery)),
        "delivery_max_s": max(to_delivery) if len(to_delivery) == n and n else math.inf,
        "other_raise_records": sum(1 for _, rec in alerts if rec.get("state") in ("raise", "realarm")
                                   and (rec.get("sensor"), int(rec.get("ts_ms", 0))) not in probe_keys),
        "rows": rows,
    }


def latency(plan: Plan, tmp: Path) -> dict[str, Any]:
    say(f"phase: latency at {human(plan.latency_rate)} readings/s batched, a probe every {plan.probe_every_s} s "
        f"for {plan.latency_s:.0f} s")
    rx = Receivers()  # the integration tests' receivers: every channel of the example city, stamped on arrival
    cfg = tmp / "notify.yaml"
    cfg.write_text(rx.notify_yaml(), encoding="utf-8")
    warm = min(plan.warmup_s, 10.0)
    try:
        with sandbox(tmp, "latency", HW_NOTIFY_CONFIG=str(cfg), **SECRETS) as sb:
            bridge = sb.bridge()
            worker = sb.worker(**plan.worker_env)
            tails = [StatsTail("bridge", bridge, bridge.log), StatsTail("worker1", worker, worker.log)]  # type: ignore[attr-defined]
            tap = AlertTap(sb.s)
            try:
                load = LoadProc(sb, tmp, rate=plan.latency_rate, duration_s=warm + plan.latency_s,
                                batch=plan.batch, probe_every_s=plan.probe_every_s, probe_after_s=warm)
                t_start = load.t0
                while load.proc.poll() is None:
                    time.sleep(5)
                    now = time.time()
                    say(f"  latency: t={now - t_start:4.0f}s published {human(load.published_at(now))} "
                        f"evaluated {human(tails[1].latest('readings'))} alert records {len(tap.records)} "
                        f"deliveries {len(rx.timed())}")
                summary = load.wait(60)
                probes = summary["probes"]
                deadline = time.time() + plan.drain_s
                res = match_probes(probes, tap.records, rx.timed())
                while time.time() < deadline and (res["alerts_seen"] < res["probes_sent"]
                                                  or res["deliveries_seen"] < res["probes_sent"]):
                    time.sleep(1)
                    res = match_probes(probes, tap.records, rx.timed())
                stats_end = {t.name: t.samples[-1].counters if t.samples else {} for t in tails}
                keys = {(p["sensor"], int(p["ts_ms"])) for p in probes}
                res["stages"] = stage_latencies(probes, run_async(_reading_record_times(sb.s, keys)),
                                                tap.detections, tap.records)
                for row, p in zip(res["rows"], (p for p in probes if p.get("publish_wall") is not None),
                                  strict=True):
                    row.update(publish_wall=p["publish_wall"], stages_s=p.get("stages_s"))
            finally:
                tap.close()
                for t in tails:
                    t.stop()
    finally:
        rx.close()
    span = summary["published_until"] - summary["started"]
    res.update(phase="latency", rate_offered=plan.latency_rate, published_per_s=summary["readings"] / span,
               stats_end=stats_end, channels=sorted({r["channel"] for r in res["rows"] if r["channel"]}))
    say(f"  latency: {res['probes_sent']} probes, {res['alerts_seen']} alert records, {res['deliveries_seen']} "
        f"deliveries; publish->alert p50 {res['alert_p50_s'] * 1000:.0f} ms p99 {res['alert_p99_s'] * 1000:.0f} ms; "
        f"publish->delivery p50 {res['delivery_p50_s'] * 1000:.0f} ms p99 {res['delivery_p99_s'] * 1000:.0f} ms")
    return res


# ---- the report -------------------------------------------------------------------------------------------------
def ms(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "missing" if x == math.inf else "n/a"
    return f"{x * 1000:,.0f} ms"


def rate(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:,.0f}"


def ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
        return math.nan
    return a / b


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def report(r: dict[str, Any]) -> list[str]:
    L: list[str] = []
    add = L.append
    add("")
    add("=" * 100)
    add(f"hazardwatch end-to-end benchmark  {r['when']}  host {r['host']} ({r['cpus']} CPUs)  "
        f"load avg before {r['loadavg_before']}")
    add(f"registry: {r['sensors']} sensors in {r['sources']} sources; batch = {r['plan']['batch']} readings per "
        f"message; warm-up {r['plan']['warmup_s']:.0f} s discarded, window {r['plan']['window_s']:.0f} s")
    add("=" * 100)
    add("")
    add("Throughput (readings/s)")
    add(f"  {'phase':<44} {'offered':>9} {'published':>10} {'bridge':>9} {'stored':>9} {'evaluated':>10} "
        f"{'PIPELINE':>9}  saturated")
    for p in r["pipeline"]:
        add(f"  {p['phase']:<44} {rate(p['offered_per_s']):>9} {rate(p['published_per_s']):>10} "
            f"{rate(p['bridge_per_s']):>9} {rate(p['stored_per_s']):>9} {rate(p['evaluated_per_s']):>10} "
            f"{rate(p['pipeline_per_s']):>9}  {'yes' if p['saturated'] else 'NO (capacity >= this)'}")
    for p in r["raw_mqtt"]:
        add(f"  {p['phase']:<44} {'flat out':>9} {rate(p['published_per_s']):>10} {'':>9} {'':>9} {'':>10} "
            f"{rate(p['readings_per_s']):>9}  ({rate(p['messages_per_s'])} msg/s received)")
    if r.get("raw_kafka_produce"):
        k = r["raw_kafka_produce"]
        add(f"  {'raw Kafka produce (acks=all, ' + str(k['readings_per_record']) + ' readings/record)':<44} "
            f"{'':>9} {'':>10} {'':>9} {'':>9} {'':>10} {rate(k['readings_per_s']):>9}  "
            f"({rate(k['records_per_s'])} records/s)")
    if r.get("raw_kafka_consume"):
        k = r["raw_kafka_consume"]
        add(f"  {'raw Kafka consume of readings (decode incl.)':<44} {'':>9} {'':>10} {'':>9} {'':>9} {'':>10} "
            f"{rate(k['readings_per_s']):>9}  ({rate(k['records_per_s'])} records/s, "
            f"{k['readings'] / max(k['records'], 1):.0f} readings/record)")
    if r.get("raw_influx"):
        k = r["raw_influx"]
        add(f"  {'raw InfluxDB write (' + str(k['readings_per_request']) + ' readings/request)':<44} {'':>9} {'':>10} "
            f"{'':>9} {'':>9} {'':>10} {rate(k['readings_per_s']):>9}  (decode + line protocol alone "
            f"{rate(k['decode_and_line_protocol_per_s'])}/s on one core)")
    add("  pipeline = min(stored: Flux count of `reading` points in the bucket; evaluated: workers' detector counter)")
    add("")
    if r["pipeline"]:
        add("CPU seconds per 10,000 readings (utime+stime from /proc over the window; bridge per reading it accepted,")
        add("  workers per pipeline reading, i.e. evaluated and stored)")
        add(f"  {'phase':<44} {'bridge':>8} {'worker(s)':>10} {'total':>8} | {'generator':>9} {'mosquitto':>9} "
            f"{'kafka':>7} {'influxdb':>8} | machine ({r['cpus']} CPUs)")
        for p in r["pipeline"]:
            c, w = p["cpu_s_per_10k"], p["cpu_s_per_10k_stored_window"]

            def f(x: float | None) -> str:
                return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"
            add(f"  {p['phase']:<44} {f(c['bridge']):>8} {f(c['workers']):>10} {f(c['total']):>8} | "
                f"{f(w.get('generator')):>9} {f(w.get('mosquitto')):>9} {f(w.get('kafka')):>7} "
                f"{f(w.get('influxdb')):>8} | {p['machine_busy_pct'] or math.nan:.0f}% busy, "
                f"{p.get('machine_steal_pct') or 0:.0f}% stolen, others {p.get('others_cores', math.nan):.2f} cores")
        add("  (generator and services: per 10k stored readings over the window; the services are shared with others;")
        add("   'stolen': CPU time the hypervisor gave to other guests; 'others': CPU used by processes that are not")
        add("   this benchmark's or the services' (other engineers' tests, kernel): both are noise in these figures)")
        add("")
    if r.get("latency"):
        lt = r["latency"]
        add(f"Latency at {rate(lt['rate_offered'])} readings/s offered ({rate(lt['published_per_s'])} published), "
            f"batched, one probe every {r['plan']['probe_every_s']} s")
        add(f"  probes sent {lt['probes_sent']} ({lt['fresh_probes']} on a sensor's first alert, the rest re-alarms "
            f"after it returned to normal) / alert records seen {lt['alerts_seen']} / deliveries seen "
            f"{lt['deliveries_seen']} (via {', '.join(lt['channels']) or '-'})")
        add(f"  publish -> alert record on `alerts`:   p50 {ms(lt['alert_p50_s']):>9}   p99 {ms(lt['alert_p99_s']):>9}"
            f"   max {ms(lt['alert_max_s']):>9}   (first alerts only: p50 {ms(lt['alert_fresh_p50_s'])})")
        add(f"  publish -> notification received:     p50 {ms(lt['delivery_p50_s']):>9}   "
            f"p99 {ms(lt['delivery_p99_s']):>9}   max {ms(lt['delivery_max_s']):>9}")
        if lt.get("stages"):
            add("  where the time to the alert record goes (Kafka CreateTime of each record on the way, same clock):")
        for name, st in lt.get("stages", {}).items():
            add(f"    {name:<46} p50 {ms(st['p50_s']):>9}   p99 {ms(st['p99_s']):>9}   (n={st['n']})")
        add(f"  raise records not from a probe: {lt['other_raise_records']}  (a missing probe counts as infinitely "
            f"late in the percentiles)")
        add("")
    g = r["ratios"]
    add("Ratios (same run, same machine)")
    for key, text in (("pipeline_vs_raw_kafka_consume", "pipeline batched (1 worker) / raw Kafka consume"),
                      ("pipeline_vs_goal", "pipeline batched (best of 1/2 workers) / 50,000 goal"),
                      ("pipeline_vs_raw_mqtt", "pipeline batched (1 worker) / raw MQTT batched"),
                      ("raw_kafka_produce_vs_consume", "raw Kafka produce / raw Kafka consume"),
                      ("pipeline_vs_raw_influx", "pipeline batched (1 worker) / raw InfluxDB write"),
                      ("two_vs_one_worker", "pipeline batched 2 workers / 1 worker"),
                      ("single_vs_batched", "pipeline single-reading / batched"),
                      ("single_vs_raw_mqtt_paho", "pipeline single-reading / raw MQTT single (paho subscriber)"),
                      ("p99_alert_vs_goal", "p99 publish->alert / 1 s goal")):
        if key in g:
            add(f"  {text:<64} {g[key]:.3f}" if math.isfinite(g[key]) else f"  {text:<64} n/a")
    add("")
    add("Goals")
    for name, ok, detail in r["goals"]:
        add(f"  {verdict(ok):<8} {name:<60} {detail}")
    add("=" * 100)
    return L


def goals_and_ratios(r: dict[str, Any]) -> None:
    by = {(p["batch"] > 0, p["workers"]): p for p in r["pipeline"]}
    b1, b2, s1 = by.get((True, 1)), by.get((True, 2)), by.get((False, 1))
    raw_b = next((p for p in r["raw_mqtt"] if p["batch"] and p["client"] == "raw"), None)
    raw_sp = next((p for p in r["raw_mqtt"] if not p["batch"] and p["client"] == "paho"), None)
    kc, kp, lt = r.get("raw_kafka_consume"), r.get("raw_kafka_produce"), r.get("latency")
    g: dict[str, float] = {}
    best = max((p["pipeline_per_s"] for p in (b1, b2) if p), default=None)
    if b1 and kc:
        g["pipeline_vs_raw_kafka_consume"] = ratio(b1["pipeline_per_s"], kc["readings_per_s"])
    if best is not None:
        g["pipeline_vs_goal"] = best / GOAL_RATE
    if b1 and raw_b:
        g["pipeline_vs_raw_mqtt"] = ratio(b1["pipeline_per_s"], raw_b["readings_per_s"])
    if kc and kp:
        g["raw_kafka_produce_vs_consume"] = ratio(kp["readings_per_s"], kc["readings_per_s"])
    ri = r.get("raw_influx")
    if b1 and ri:
        g["pipeline_vs_raw_influx"] = ratio(b1["pipeline_per_s"], ri["readings_per_s"])
    if b1 and b2:
        g["two_vs_one_worker"] = ratio(b2["pipeline_per_s"], b1["pipeline_per_s"])
    if b1 and s1:
        g["single_vs_batched"] = ratio(s1["pipeline_per_s"], b1["pipeline_per_s"])
    if s1 and raw_sp:
        g["single_vs_raw_mqtt_paho"] = ratio(s1["pipeline_per_s"], raw_sp["readings_per_s"])
    if lt:
        g["p99_alert_vs_goal"] = lt["alert_p99_s"] / GOAL_P99_S
    r["ratios"] = g
    goals: list[tuple[str, bool | None, str]] = []
    if best is not None:
        which = "2 workers" if b2 and best == b2["pipeline_per_s"] else "1 worker"
        goals.append(("batched pipeline >= 50,000 readings/s sustained", best >= GOAL_RATE,
                      f"{best:,.0f} readings/s ({which})"))
    if lt:
        goals.append(("p99 publish->alert < 1 s at 10,000 readings/s",
                      lt["alert_p99_s"] < GOAL_P99_S and lt["alerts_seen"] == lt["probes_sent"],
                      f"p99 {ms(lt['alert_p99_s'])}, {lt['alerts_seen']}/{lt['probes_sent']} probes alerted"))
    if "pipeline_vs_raw_kafka_consume" in g:
        k = g["pipeline_vs_raw_kafka_consume"]
        goals.append(("pipeline >= 0.5 x raw Kafka consume (same run)", k >= GOAL_RATIO, f"{k:.3f}"))
    r["goals"] = goals


# ---- main -------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    doc = (__doc__ or "").splitlines()
    ap = argparse.ArgumentParser(description=doc[0], epilog="\n".join(doc[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter windows (about 3 minutes in all)")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write every figure (per-probe rows too) as JSON")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    ap.add_argument("--warmup", type=float, help="seconds discarded at the start of each sustained phase")
    ap.add_argument("--window", type=float, help="seconds measured in each sustained phase")
    ap.add_argument("--raw-seconds", type=float, help="seconds measured for each raw baseline")
    ap.add_argument("--batch", type=int, help="readings per batched MQTT message (default 100)")
    ap.add_argument("--offer-batched", type=float, help="readings/s offered in the batched phases (default 150000)")
    ap.add_argument("--offer-single", type=float, help="readings/s offered in the single-reading phase (default 4000)")
    ap.add_argument("--latency-seconds", type=float, help="seconds of probing in the latency phase")
    ap.add_argument("--worker-env", action="append", default=[], metavar="K=V",
                    help="extra environment for the workers (e.g. HW_BATCH_MAX=5000), to try a setting")
    ap.add_argument("--keep-logs", type=Path, metavar="DIR", help="keep the sandboxes' process logs here")
    args = ap.parse_args(argv)

    plan = Plan(**(QUICK if args.quick else {}))
    for attr, val in (("warmup_s", args.warmup), ("window_s", args.window), ("raw_s", args.raw_seconds),
                      ("batch", args.batch), ("offer_batched", args.offer_batched),
                      ("offer_single", args.offer_single), ("latency_s", args.latency_seconds)):
        if val is not None:
            setattr(plan, attr, val)
    plan.phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = set(plan.phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    plan.worker_env = dict(kv.split("=", 1) for kv in args.worker_env)
    if plan.batch <= 0:
        ap.error("--batch must be > 0 (the single-reading phase has its own payloads)")

    settings = load_settings()
    services.up(settings)
    reg = load_registry(settings.registry_path)
    r: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": socket.gethostname(), "cpus": os.cpu_count(),
        "loadavg_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]), "sensors": len(reg.sensors),
        "sources": len(reg.sources), "plan": plan.__dict__ | {"phases": list(plan.phases)}, "raw_mqtt": [],
        "pipeline": [], "raw_kafka_consume": None, "raw_kafka_produce": None, "raw_influx": None, "latency": None,
    }
    t_run = time.time()
    tmp_ctx = tempfile.TemporaryDirectory(prefix="hw-e2e-") if args.keep_logs is None else None
    tmp = Path(tmp_ctx.name) if tmp_ctx else args.keep_logs
    tmp.mkdir(parents=True, exist_ok=True)
    failed: str | None = None
    try:
        if "raw-mqtt" in plan.phases:
            r["raw_mqtt"].append(raw_mqtt(plan, tmp, plan.batch, "raw"))
            r["raw_mqtt"].append(raw_mqtt(plan, tmp, 0, "raw"))
            r["raw_mqtt"].append(raw_mqtt(plan, tmp, 0, "paho"))
        if "pipeline-batched" in plan.phases:
            def consume(sb: Sandbox) -> None:
                if "raw-kafka" in plan.phases:
                    r["raw_kafka_consume"] = raw_kafka_consume(sb, max(60.0, plan.window_s))
            r["pipeline"].append(pipeline(plan, tmp, name="pipeline-batched-1w", batch=plan.batch, workers=1,
                                          offer=plan.offer_batched, after=consume))
        if "raw-kafka" in plan.phases:
            kc = r["raw_kafka_consume"]
            per = round(kc["readings"] / kc["records"]) if kc and kc["records"] else 1000
            r["raw_kafka_produce"] = raw_kafka_produce(plan, tmp, per)
        if "raw-influx" in plan.phases:
            kc = r["raw_kafka_consume"]
            per = round(kc["readings"] / kc["records"]) if kc and kc["records"] else 10_000
            r["raw_influx"] = raw_influx(plan, tmp, min(per, 50_000))
        if "pipeline-single" in plan.phases:
            r["pipeline"].append(pipeline(plan, tmp, name="pipeline-single-1w", batch=0, workers=1,
                                          offer=plan.offer_single))
        if "pipeline-2w" in plan.phases:
            r["pipeline"].append(pipeline(plan, tmp, name="pipeline-batched-2w", batch=plan.batch, workers=2,
                                          offer=plan.offer_batched))
        if "latency" in plan.phases:
            r["latency"] = latency(plan, tmp)
    except Exception as exc:  # report what was measured; the logs say the rest
        failed = f"{type(exc).__name__}: {exc}"
        say(f"FAILED: {failed}")
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    r["seconds"] = time.time() - t_run
    r["failed"] = failed
    goals_and_ratios(r)
    for line in report(r):
        print(line)
    print(f"total {r['seconds']:.0f} s" + (f"; logs kept in {tmp}" if args.keep_logs else ""))
    if args.json:
        args.json.write_bytes(orjson.dumps(r, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                                           | orjson.OPT_NON_STR_KEYS, default=str))
        print(f"JSON written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
