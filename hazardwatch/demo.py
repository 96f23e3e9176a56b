"""`hazardwatch demo`: start everything, simulate the example city, inject limit crossings, print alerts.

What a new user sees on the first run: services come up (built once, cached after), the bridge and the worker
start, ~300 sensors report, three sensors are driven over their limits (a gasoline tank overfilling, methane
at a coal face, chlorine in the store), and the alerts appear on the terminal in Chinese and English, then a
summary read back from Kafka and InfluxDB proves the readings were stored.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from alerts.tail import format_alert, tail_alerts
from hazardwatch import services
from hazardwatch.config import Settings
from hazardwatch.topics import ensure_topics
from simulators.publisher import run_simulator

INJECTIONS = ["S01-T03-LT=93.5", "S10-F1-CH4-T1=1.62", "S06-GT04=2.6"]


def _start(settings: Settings, name: str, args: list[str]) -> subprocess.Popen:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.logs_dir / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "hazardwatch.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=os.environ.copy())


def _log_since(path: Path, offset: int) -> str:
    # Logs are appended across runs: read only what this run wrote.
    return path.read_bytes()[offset:].decode(errors="replace") if path.exists() else ""


def count_readings_in_influx(settings: Settings, since_s: float) -> int:
    from influxdb_client import InfluxDBClient

    flux = (f'from(bucket: "{settings.influx_bucket}") |> range(start: {int(since_s) - 1}) '
            f'|> filter(fn: (r) => r._measurement == "reading" and r._field == "v") '
            f'|> group() |> count()')
    with InfluxDBClient(url=settings.influx_url, token=settings.influx_token(), org=settings.influx_org) as c:
        tables = c.query_api().query(flux)
    return sum(int(rec.get_value()) for t in tables for rec in t.records)


def run_demo(settings: Settings, duration: float = 75.0, keep_services: bool = True) -> int:
    t_start = time.monotonic()
    services.log("demo: starting Mosquitto, Kafka and InfluxDB (first run installs and builds them)")
    services.up(settings)
    for line in asyncio.run(ensure_topics(settings)):
        services.log(f"kafka topic {line}")
    procs: list[subprocess.Popen] = []
    try:
        offsets = {}
        for name in ("bridge", "worker"):
            p = settings.logs_dir / f"{name}.log"
            offsets[name] = p.stat().st_size if p.exists() else 0
        procs.append(_start(settings, "bridge", ["bridge", "--client-id", "hw-bridge-demo"]))
        procs.append(_start(settings, "worker", ["worker"]))
        deadline = time.monotonic() + 90
        for name, needle, proc in (("bridge", "bridge: subscribed", procs[0]), ("worker", "worker: started", procs[1])):
            log = settings.logs_dir / f"{name}.log"
            while time.monotonic() < deadline:
                if needle in _log_since(log, offsets[name]):
                    break
                if proc.poll() is not None:
                    raise services.ServiceError(f"{name} exited with {proc.returncode}; see {log}")
                time.sleep(0.3)
            else:
                raise services.ServiceError(f"{name} did not start within 90s; see {log}")
            services.log(f"demo: {name} running (log: {log})")
        time.sleep(3)  # let the worker's consumer group settle before the first readings

        alerts: list[dict] = []
        stop = threading.Event()

        def show(rec: dict) -> None:
            alerts.append(rec)
            # The terminal shows what a duty officer acts on; communication and drift notices (e.g. sensors
            # that were silent between demo runs) are counted in the summary instead.
            if rec["category"] == "process" or rec["rule"] == "stuck":
                print(format_alert(rec, sys.stdout.isatty()), flush=True)

        async def tail() -> None:
            ev = asyncio.Event()

            async def watch() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.2)
                await asyncio.sleep(5)  # alerts still in flight after the simulator stops
                ev.set()

            await asyncio.gather(tail_alerts(settings, on_record=show, stop=ev), watch())

        tailer = threading.Thread(target=lambda: asyncio.run(tail()), daemon=True)
        tailer.start()
        time.sleep(2)
        wall0 = time.time()
        services.log(f"demo: simulating {duration:.0f}s of the example city; injecting {', '.join(INJECTIONS)} "
                     "after 10s. Alerts follow / 预警信息如下:")
        last = [time.monotonic()]

        def progress(n: int) -> None:
            if time.monotonic() - last[0] >= 15:
                last[0] = time.monotonic()
                services.log(f"demo: {n} readings published, {len(alerts)} alert records so far")

        published = run_simulator(settings, rate=1.0, duration=duration, inject=INJECTIONS, inject_after=10.0,
                                  on_tick=progress)
        stop.set()
        tailer.join(timeout=30)
        time.sleep(2)
        stored = count_readings_in_influx(settings, wall0)
        raised = sum(1 for a in alerts if a["state"] == "raise")
        services.log(f"demo: done in {time.monotonic() - t_start:.0f}s: {published} readings published, "
                     f"{stored} read back from InfluxDB by a Flux query, {raised} alerts raised, "
                     f"{len(alerts) - raised} cleared")
        by_rule: dict[str, int] = {}
        for a in alerts:
            by_rule[f"{a['rule']}/{a['state']}"] = by_rule.get(f"{a['rule']}/{a['state']}", 0) + 1
        services.log("demo: alert records by rule / 按规则统计: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items())))
        if raised == 0:
            print("demo: no alert arrived; check the worker log at "
                  f"{settings.logs_dir / 'worker.log'}", file=sys.stderr)
            return 1
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if not keep_services:
            services.down(settings)
        else:
            services.log("demo: services left running; stop them with `hazardwatch services down`")
