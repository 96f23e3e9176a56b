"""Load generator for the end-to-end benchmark: many readings per second over each enterprise's own MQTT login.

    .venv/bin/python -m simulators.load --rate 10000 --duration 60 --batch 100 --probe-every 0.2 --out run.json

Every hazard source of the registry reports in *rounds*: each of its sensors once, all with the round's
timestamp (epoch ms, strictly increasing per source), so no (sensor, ts) pair ever repeats and the bridge
refuses nothing as a duplicate. Background values are each sensor's normal operating value, constant, so the
detectors stay quiet and the only alerts are the probes'. Payloads are cut from the round stream:
``--batch N`` sends ``hw/<ent>/<source>`` messages of N readings ({"readings": [{"s","v","ts"}, ...]}),
``--batch 0`` one ``hw/<ent>/<source>/<sensor>`` message per reading ({"v","ts"}).

Pacing: ``--rate R`` publishes R readings/s on average (whole rounds, so every sensor reports equally often);
``--rate 0`` publishes flat out, held back only by the QoS 1 window of each connection.

Latency probes (``--probe-every S``): every S seconds one sensor's value in its next round is set above its high
limit; the next round brings it back, so the alert clears and the sensor can be probed again later. Probe
sensors are taken round-robin from the sensors with a plain high limit (no latching, no rate or trend rule, no
voting or dam roll-up), so each probe makes exactly one new raise. The wall time just before the MQTT publish
of the message that carries it is recorded with its (sensor, ts), which is how the alert is found again.

Progress goes to stdout as ``load: progress {json}`` once a second and ``load: done {json}`` at the end; the
full result (probes included) is written with ``--out``.
"""

from __future__ import annotations

import argparse
import math
import select
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hazardwatch.config import Settings, load_settings
from hazardwatch.registry import Registry, Sensor, load_registry
from simulators.publisher import normal_value

# Sensor kinds whose high limit a probe may cross: one plain limit alarm, nothing else reacts to a one-round spike
# (gas detectors latch and vote, levels have rate and trend rules, tailings points feed the dam roll-up).
PROBE_KINDS = ("pressure", "temperature", "methane", "carbon_monoxide")
# A probed sensor is not probed again sooner than this, so its previous alert has certainly returned to normal.
PROBE_REUSE_S = 5.0


# ---- pure parts ---------------------------------------------------------------------------------------------
def fmt_ts(ms: int) -> bytes:
    """Epoch milliseconds as exact epoch seconds (no float rounding: the decoder rounds s*1000 back to ms)."""
    return f"{ms // 1000}.{ms % 1000:03d}".encode()


def fmt_value(v: float) -> bytes:
    return orjson.dumps(float(v))


def next_ts(now_ms: int, last_ms: int) -> int:
    """The round's timestamp: the wall clock, but never equal to or before the previous round's."""
    return now_ms if now_ms > last_ms else last_ms + 1


def batch_payload(items: Sequence[bytes]) -> bytes:
    return b'{"readings":[' + b",".join(items) + b"]}"


def rounds_due(rate: float | None, elapsed_s: float, per_round: int, done: int) -> int:
    """Rounds to publish now so that `done` rounds of `per_round` readings keep up with `rate` readings/s.

    Round k (counting from 1) is due at k * per_round / rate seconds. None means flat out: always one more."""
    if rate is None:
        return 1
    return max(0, math.floor(rate * max(elapsed_s, 0.0) / per_round) - done)


def seconds_until_due(rate: float, elapsed_s: float, per_round: int, done: int) -> float:
    """How long until the next round (number done + 1) is due."""
    return max(0.0, (done + 1) * per_round / rate - elapsed_s)


def percentile(values: Sequence[float], q: float, missing: int = 0) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default).

    `missing` counts samples that never arrived; they rank above every value, so a lost alert cannot hide: when
    the percentile falls among them the answer is +inf."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not in 0..100")
    n = len(values) + missing
    if n == 0:
        return math.nan
    xs = sorted(values)
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    if hi >= len(xs):
        return math.inf if pos > len(xs) - 1 else xs[-1]
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class ProbeSpec:
    sensor: str
    source: str
    value: float  # above the high limit's set value, below the next limit and inside the instrument range
    limit: str


def probe_value(sensor: Sensor) -> tuple[float, str] | None:
    """A value that crosses the sensor's lowest high limit (H, or HH when there is no H) and nothing above it."""
    highs = sorted((lim for lim in sensor.limits if lim.name in ("H", "HH")), key=lambda lim: lim.value)
    if not highs or any(lim.latching or lim.on_delay_s > 0 for lim in highs):
        return None
    first = highs[0]
    top = highs[1].value if len(highs) > 1 else sensor.range[1]
    v = first.value + 0.25 * (top - first.value)
    if not (first.value < v < top and sensor.range[0] <= v <= sensor.range[1]):
        return None
    return round(v, 3), first.name


def probe_candidates(registry: Registry) -> list[ProbeSpec]:
    """Sensors a probe may use, interleaved across sources so consecutive probes hit different partitions."""
    related = {r for s in registry.sensors.values() for r in s.related}
    grouped = {g for src in registry.sources.values() for grp in (*src.voting, *src.multivariate)
               for g in grp.sensors}
    per_source: list[list[ProbeSpec]] = []
    for src in registry.sources.values():
        if src.kind == "tailings_dam":
            continue
        specs = []
        for sid in src.sensors:
            s = registry.sensors[sid]
            if (s.kind not in PROBE_KINDS or s.rate or s.trend or s.related or sid in related or sid in grouped):
                continue
            pv = probe_value(s)
            if pv is not None:
                specs.append(ProbeSpec(sid, src.id, pv[0], pv[1]))
        if specs:
            per_source.append(specs)
    out: list[ProbeSpec] = []
    for i in range(max((len(x) for x in per_source), default=0)):
        out += [x[i] for x in per_source if i < len(x)]
    return out


@dataclass(frozen=True)
class Message:
    enterprise: str
    topic: str
    payload: bytes
    readings: int
    probes: tuple[int, ...] = ()  # indexes into the run's probe list carried by this message


class SourceStream:
    """One hazard source's readings, round after round, cut into MQTT messages.

    batch > 0: messages of exactly `batch` consecutive readings on hw/<ent>/<source> (a partial tail waits for the
    next round unless flushed); batch == 0: one message per reading on hw/<ent>/<source>/<sensor>."""

    def __init__(self, root: str, source: str, enterprise: str, sensors: Sequence[str], values: Sequence[float],
                 batch: int):
        if batch < 0:
            raise ValueError("batch must be >= 0 (0 = one message per reading)")
        self.source, self.enterprise, self.batch = source, enterprise, batch
        self.sensors = list(sensors)
        self.index = {s: i for i, s in enumerate(self.sensors)}
        self.values = [fmt_value(v) for v in values]
        self.topic = f"{root}/{enterprise}/{source}"
        self.sensor_topics = [f"{self.topic}/{s}" for s in self.sensors]
        self._head = [b'{"s":' + orjson.dumps(s) + b',"v":' for s in self.sensors]
        self.last_ms = 0
        self.rounds = 0
        self._pending: list[bytes] = []
        self._pending_probes: list[tuple[int, int]] = []  # (position in _pending, probe index)

    def __len__(self) -> int:
        return len(self.sensors)

    def add_round(self, now_ms: int, probe: tuple[str, float, int] | None = None) -> int:
        """Append one reading per sensor at one timestamp; probe = (sensor, value, probe index). Returns the ts."""
        ts = next_ts(now_ms, self.last_ms)
        self.last_ms = ts
        self.rounds += 1
        values = self.values
        if probe is not None:
            at = self.index[probe[0]]
            values = list(values)
            values[at] = fmt_value(probe[1])
            self._pending_probes.append((len(self._pending) + at, probe[2]))
        tail = b',"ts":' + fmt_ts(ts) + b"}"
        if self.batch:
            self._pending += [h + v + tail for h, v in zip(self._head, values, strict=True)]
        else:
            self._pending += [b'{"v":' + v + tail for v in values]
        return ts

    def take(self, flush: bool = False) -> list[Message]:
        """Messages that are complete (all pending readings when flushing)."""
        out: list[Message] = []
        if not self._pending:
            return out
        if self.batch == 0:
            # One message per reading; the position in the round gives the sensor.
            probes = dict(self._pending_probes)
            n = len(self.sensors)
            base = self.rounds * n - len(self._pending)  # global reading number of _pending[0]
            for i, body in enumerate(self._pending):
                k = (base + i) % n
                out.append(Message(self.enterprise, self.sensor_topics[k], body, 1,
                                   (probes[i],) if i in probes else ()))
            self._pending.clear()
            self._pending_probes.clear()
            return out
        start = 0
        while len(self._pending) - start >= self.batch or (flush and start < len(self._pending)):
            end = min(start + self.batch, len(self._pending))
            probes = tuple(p for pos, p in self._pending_probes if start <= pos < end)
            out.append(Message(self.enterprise, self.topic, batch_payload(self._pending[start:end]), end - start,
                               probes))
            start = end
        if start:
            del self._pending[:start]
            self._pending_probes = [(pos - start, p) for pos, p in self._pending_probes if pos >= start]
        return out


@dataclass
class Probe:
    sensor: str
    source: str
    value: float
    ts_ms: int
    fresh: bool  # the sensor's first probe in this run (later ones re-alarm an alert that returned to normal)
    publish_wall: float | None = None


@dataclass
class ProbePlan:
    """Which sensor the next probe uses and when it is due."""

    candidates: list[ProbeSpec]
    every_s: float
    start_s: float  # seconds after the run starts
    next_s: float = field(init=False)
    _i: int = 0
    _last_used: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.next_s = self.start_s

    def due(self, elapsed_s: float) -> ProbeSpec | None:
        if self.every_s <= 0 or not self.candidates or elapsed_s < self.next_s:
            return None
        for _ in range(len(self.candidates)):
            spec = self.candidates[self._i % len(self.candidates)]
            self._i += 1
            last = self._last_used.get(spec.sensor)
            if last is None or elapsed_s - last >= PROBE_REUSE_S:
                self._last_used[spec.sensor] = elapsed_s
                # Scheduled times, not "now + every": a late loop catches up instead of drifting.
                self.next_s = max(self.next_s + self.every_s, elapsed_s - self.every_s)
                return spec
        self.next_s = elapsed_s + self.every_s  # every candidate busy: skip this slot
        return None


# ---- MQTT side ----------------------------------------------------------------------------------------------
def mqtt_str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def mqtt_varint(n: int) -> bytes:
    """MQTT 'remaining length': 7 bits per byte, high bit = more bytes follow."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, user: str, password: str, keepalive_s: int) -> bytes:
    # Protocol "MQTT" level 4 (3.1.1); flags: user name, password, clean session.
    body = mqtt_str("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keepalive_s)
    body += mqtt_str(client_id) + mqtt_str(user) + mqtt_str(password)
    return b"\x10" + mqtt_varint(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH, QoS 1, topic already length-prefixed (mqtt_str)."""
    return b"\x32" + mqtt_varint(len(topic) + 2 + len(payload)) + topic + struct.pack("!H", packet_id) + payload


def split_packets(buf: bytearray) -> list[tuple[int, bytes]]:
    """Complete packets at the start of `buf` as (first byte, body), removed from it; a partial tail stays."""
    out = []
    pos = 0
    while pos + 2 <= len(buf):
        n, mult, i = 0, 1, pos + 1
        while i < len(buf):
            b = buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        else:
            break
        if i + n > len(buf):
            break
        out.append((buf[pos], bytes(buf[i:i + n])))
        pos = i + n
    del buf[:pos]
    return out


class Gateway:
    """One enterprise's MQTT connection (its own user and password), QoS 1, with a bounded window.

    A minimal MQTT 3.1.1 publisher instead of paho: paho spends ~125 us of CPU per publish (packet objects,
    properties, a callback per PUBACK), so on this 2-core machine the generator alone would take a core at 8,000
    messages/s and starve the pipeline it measures. Here a publish is a few byte concatenations, writes are
    coalesced per round, and PUBACKs are counted, not dispatched. The window bounds unacknowledged messages, so
    flat-out mode waits for the broker instead of queueing without limit."""

    KEEPALIVE_S = 60

    def __init__(self, settings: Settings, user: str, window: int, tag: str):
        self.user = user
        self.window = window
        self.outstanding = 0
        self.acked = 0
        self._next_id = 0
        self._out = bytearray()
        self._in = bytearray()
        self._topics: dict[str, bytes] = {}
        self._last_io = time.monotonic()
        self.sock = socket.create_connection((settings.mqtt_host, settings.ports.mqtt), timeout=15)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_id = f"{tag}-{user}-{uuid.uuid4().hex[:6]}"
        self.sock.sendall(connect_packet(client_id, user, settings.mqtt_password(user), self.KEEPALIVE_S))
        while True:
            for first, body in self._read(block=True):
                if first >> 4 == 2:  # CONNACK
                    if len(body) < 2 or body[1] != 0:
                        raise RuntimeError(f"MQTT connect refused for {user}: CONNACK code "
                                           f"{body[1] if len(body) > 1 else '?'} (4 = bad password, 5 = not allowed)")
                    self.sock.setblocking(False)
                    return

    def _read(self, block: bool = False, timeout_s: float = 0.0) -> list[tuple[int, bytes]]:
        if block or timeout_s > 0:
            ready, _, _ = select.select([self.sock], [], [], 15 if block else timeout_s)
            if not ready:
                if block:
                    raise RuntimeError(f"MQTT broker did not answer {self.user} within 15 s")
                return []
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return []
        if not data:
            raise ConnectionError(f"MQTT broker closed the connection of {self.user}")
        self._in += data
        return split_packets(self._in)

    def service(self, timeout_s: float = 0.0) -> None:
        """Send what is buffered, count PUBACKs, keep the connection alive."""
        self.flush()
        for first, _ in self._read(timeout_s=timeout_s):
            if first >> 4 == 4:  # PUBACK
                self.outstanding -= 1
                self.acked += 1
        if time.monotonic() - self._last_io > self.KEEPALIVE_S / 2:
            self._out += b"\xc0\x00"  # PINGREQ; the PINGRESP is read and ignored above
            self.flush()

    def flush(self) -> None:
        if self._out:
            self.sock.setblocking(True)  # the kernel buffer being full is our backpressure
            try:
                self.sock.sendall(self._out)
            finally:
                self.sock.setblocking(False)
            self._out.clear()
            self._last_io = time.monotonic()

    def publish(self, topic: str, payload: bytes, stop: threading.Event, now: bool = False) -> float | None:
        """Queue one QoS 1 message; `now` sends at once. Returns the wall time it was handed to the kernel (or
        queued), or None when stopped while waiting for the window."""
        while self.outstanding >= self.window:
            if stop.is_set():
                return None
            self.service(0.01)
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = mqtt_str(topic)
        self._next_id = self._next_id % 65535 + 1
        self._out += publish_packet(t, self._next_id, payload)
        self.outstanding += 1
        if now or len(self._out) > 1 << 16:
            wall = time.time()
            self.flush()
            return wall
        return time.time()

    def drain(self, timeout_s: float) -> None:
        """Wait until every QoS 1 message is acknowledged by the broker (or the timeout passes)."""
        deadline = time.monotonic() + timeout_s
        while self.outstanding > 0 and time.monotonic() < deadline:
            self.service(0.05)

    def close(self) -> None:
        try:
            self._out += b"\xe0\x00"  # DISCONNECT
            self.flush()
        finally:
            self.sock.close()


# ---- the run ------------------------------------------------------------------------------------------------
@dataclass
class LoadConfig:
    rate: float | None = 10_000.0  # readings/s; None = flat out
    duration_s: float = 60.0
    batch: int = 100  # readings per message; 0 = one message per reading
    probe_every_s: float = 0.0  # 0 = no probes
    probe_after_s: float = 5.0
    window: int = 500  # unacknowledged QoS 1 messages per connection (Mosquitto's receive maximum is 1000)
    progress_s: float = 1.0


@dataclass
class LoadResult:
    config: dict[str, Any]
    started: float = 0.0  # wall time of the first publish
    ended: float = 0.0  # wall time after the last publish was acknowledged
    published_until: float = 0.0  # wall time of the last publish call
    readings: int = 0
    messages: int = 0
    rounds: int = 0
    probes: list[Probe] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        span = max(self.published_until - self.started, 1e-9)
        return {"readings": self.readings, "messages": self.messages, "rounds": self.rounds,
                "started": self.started, "published_until": self.published_until, "ended": self.ended,
                "readings_per_s": self.readings / span, "messages_per_s": self.messages / span,
                "probes": len(self.probes)}


def build_streams(registry: Registry, root: str, batch: int) -> list[SourceStream]:
    return [SourceStream(root, src.id, src.enterprise, src.sensors,
                         [normal_value(registry.sensors[s]) for s in src.sensors], batch)
            for src in registry.sources.values()]


class LoadGenerator:
    def __init__(self, settings: Settings, config: LoadConfig, registry: Registry | None = None,
                 emit: Callable[..., None] = print):
        self.s = settings
        self.cfg = config
        self.reg = registry or load_registry(settings.registry_path)
        self.emit = emit
        self.stop = threading.Event()
        self.streams = build_streams(self.reg, settings.mqtt_root, config.batch)
        self.per_round = sum(len(st) for st in self.streams)
        self.gateways: dict[str, Gateway] = {}

    def connect(self) -> None:
        tag = f"hw-load-{self.s.mqtt_root.rsplit('/', 1)[-1]}"
        for ent in self.reg.enterprises.values():
            self.gateways[ent.id] = Gateway(self.s, ent.mqtt_user, self.cfg.window, tag)

    def close(self) -> None:
        for g in self.gateways.values():
            g.close()

    def run(self) -> LoadResult:
        cfg = self.cfg
        res = LoadResult(config=asdict(cfg))
        plan = ProbePlan(probe_candidates(self.reg), cfg.probe_every_s, cfg.probe_after_s)
        if cfg.probe_every_s > 0 and not plan.candidates:
            raise RuntimeError("no sensor in the registry can carry a latency probe")
        t0 = time.perf_counter()
        res.started = time.time()
        next_progress = t0 + cfg.progress_s
        done_rounds = 0
        while not self.stop.is_set():
            now = time.perf_counter()
            elapsed = now - t0
            if elapsed >= cfg.duration_s:
                break
            if now >= next_progress:
                next_progress += cfg.progress_s
                self._progress(res)
            due = rounds_due(cfg.rate, elapsed, self.per_round, done_rounds)
            if due == 0:
                assert cfg.rate is not None
                # At least 5 ms: a few rounds per wake-up cost far less CPU than a wake-up per round.
                wait = max(seconds_until_due(cfg.rate, elapsed, self.per_round, done_rounds), 0.005)
                self._service(min(wait, max(0.0, next_progress - now), 0.05))
                continue
            for _ in range(min(due, 50)):  # bounded so progress and the clock are looked at between bursts
                self._round(res, plan, elapsed)
                done_rounds += 1
                if not self._publish_ready(res, flush=False):
                    break
        self._publish_ready(res, flush=True)
        res.published_until = time.time()
        for g in self.gateways.values():
            g.drain(30)
        res.ended = time.time()
        res.rounds = done_rounds
        self._progress(res)
        return res

    def _service(self, wait_s: float) -> None:
        """Idle time: one select over every connection (acknowledgements, keepalive) for up to wait_s."""
        for g in self.gateways.values():
            g.flush()
        socks = {g.sock: g for g in self.gateways.values()}
        ready, _, _ = select.select(list(socks), [], [], wait_s)
        for sock in ready:
            socks[sock].service(0.0)

    def _round(self, res: LoadResult, plan: ProbePlan, elapsed: float) -> None:
        now_ms = time.time_ns() // 1_000_000
        spec = plan.due(elapsed)
        for st in self.streams:
            probe = None
            if spec is not None and spec.source == st.source:
                probe = (spec.sensor, spec.value, len(res.probes))
                res.probes.append(Probe(spec.sensor, spec.source, spec.value, 0,
                                        fresh=sum(p.sensor == spec.sensor for p in res.probes) == 0))
            ts = st.add_round(now_ms, probe)
            if probe is not None:
                res.probes[probe[2]].ts_ms = ts

    def _publish_ready(self, res: LoadResult, flush: bool) -> bool:
        self._service(0.0)
        for st in self.streams:
            gw = self.gateways[st.enterprise]
            for m in st.take(flush):
                wall = gw.publish(m.topic, m.payload, self.stop, now=bool(m.probes))
                if wall is None:
                    return False
                for i in m.probes:
                    res.probes[i].publish_wall = wall
                res.messages += 1
                res.readings += m.readings
        for g in self.gateways.values():
            g.flush()
        return True

    def _progress(self, res: LoadResult) -> None:
        self.emit("load: progress " + orjson.dumps({"t": time.time(), "readings": res.readings,
                                                    "messages": res.messages, "probes": len(res.probes)}).decode(),
                  flush=True)


def write_result(path: Path, res: LoadResult) -> None:
    path.write_bytes(orjson.dumps({**res.summary(), "config": res.config,
                                   "probes": [asdict(p) for p in res.probes]}, option=orjson.OPT_INDENT_2))


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.load", description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=10_000, help="readings/s (0 = flat out)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of publishing")
    ap.add_argument("--batch", type=int, default=100, help="readings per message (0 = one message per reading)")
    ap.add_argument("--probe-every", type=float, default=0.0, help="seconds between latency probes (0 = none)")
    ap.add_argument("--probe-after", type=float, default=5.0, help="first probe this many seconds in")
    ap.add_argument("--window", type=int, default=500, help="unacknowledged QoS 1 messages per connection")
    ap.add_argument("--out", type=Path, help="write the result (probes included) as JSON")
    args = ap.parse_args(list(argv) if argv is not None else None)
    cfg = LoadConfig(rate=args.rate or None, duration_s=args.duration, batch=args.batch,
                     probe_every_s=args.probe_every, probe_after_s=args.probe_after, window=args.window)
    gen = LoadGenerator(load_settings(), cfg)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: gen.stop.set())
    gen.connect()
    print(f"load: connected {len(gen.gateways)} gateways, {gen.per_round} sensors per round, "
          f"rate={'flat out' if cfg.rate is None else f'{cfg.rate:g}/s'} batch={cfg.batch}", flush=True)
    try:
        res = gen.run()
    finally:
        gen.close()
    if args.out:
        write_result(args.out, res)
    print("load: done " + orjson.dumps(res.summary()).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
