"""An isolated pipeline namespace on the shared local services, for tests and benchmarks.

Each Sandbox gets its own Kafka topic prefix, Faust app id, MQTT share group and InfluxDB bucket, so it
neither sees nor disturbs a demo (or another sandbox) running on the same Mosquitto, Kafka and InfluxDB.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaConsumer
from influxdb_client import InfluxDBClient
from paho.mqtt.enums import CallbackAPIVersion

from hazardwatch.config import load_settings
from hazardwatch.storage import ensure_buckets, layout
from hazardwatch.topics import ensure_topics


def _env(run: str, **extra: str) -> dict[str, str]:
    return {"HW_TOPIC_PREFIX": f"{run}.", "HW_APP_ID": f"hw-{run}", "HW_BRIDGE_GROUP": run,
            "HW_MQTT_ROOT": f"hwt/{run}",
            "HW_INFLUX_BUCKET": run, "HW_MQTT_SESSION_EXPIRY_S": "120",
            # Several bridges and workers share this machine: each picks a free ops port and logs it.
            "HW_OPS_PORT": "0", **extra}


class Sandbox:
    """One isolated pipeline namespace on the shared services, with helpers to drive and observe it."""

    def __init__(self, tmp: Path, retention_s: int = 86400, **extra: str):
        """retention_s: the bucket's retention (0 = forever); simulated days in the past need more than a day."""
        self.run = "t" + uuid.uuid4().hex[:8]
        self.env = {**os.environ, **_env(self.run, **extra)}
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        os.environ.update(_env(self.run, **extra))
        try:
            self.s = load_settings()
        finally:
            for k in _env(self.run, **extra):
                os.environ.pop(k, None)
        asyncio.run(ensure_topics(self.s))
        with self.influx() as c:
            ensure_buckets(self.s, c, update_retention=False, raw_retention_s=retention_s)

    # ---- processes --------------------------------------------------------------------------------------
    def start(self, what: str, *args: str, ready: str, env: dict[str, str] | None = None,
              timeout: float = 90) -> subprocess.Popen:
        log = self.tmp / f"{what}-{len(self.procs)}.log"
        p = subprocess.Popen([sys.executable, "-m", "hazardwatch.cli", what, *args], stdout=open(log, "wb"),
                             stderr=subprocess.STDOUT, env={**self.env, **(env or {})})
        p.log = log  # type: ignore[attr-defined]
        self.procs.append(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready in log.read_text(errors="replace"):
                return p
            if p.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{what} not ready ({ready!r}); log:\n{log.read_text(errors='replace')[-3000:]}")

    def bridge(self) -> subprocess.Popen:
        return self.start("bridge", "--client-id", f"{self.run}-bridge", ready="bridge: subscribed")

    def worker(self, **env: str) -> subprocess.Popen:
        p = self.start("worker", ready="worker: started", env=env)
        time.sleep(2)  # consumer group settles
        return p

    @staticmethod
    def ops_url(p: subprocess.Popen) -> str:
        """Where a bridge's or worker's /metrics, /healthz and /readyz are (it logged its randomly picked port)."""
        m = re.search(r"ops endpoints on (http://[\d.]+:\d+)", p.log.read_text(errors="replace"))  # type: ignore[attr-defined]
        if not m:
            raise AssertionError(f"no ops endpoint line in {p.log}")  # type: ignore[attr-defined]
        return m.group(1)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        with self.influx() as c:
            lay = layout(self.s)
            for name in (lay.raw, lay.stats, lay.alarms):
                b = c.buckets_api().find_bucket_by_name(name)
                if b:
                    c.buckets_api().delete_bucket(b)

    # ---- I/O helpers ------------------------------------------------------------------------------------
    def influx(self) -> InfluxDBClient:
        return InfluxDBClient(url=self.s.influx_url, token=self.s.influx_token(), org=self.s.influx_org)

    def flux(self, query: str) -> list[dict[str, Any]]:
        with self.influx() as c:
            tables = c.query_api().query(query)
        return [r.values for t in tables for r in t.records]

    def publisher(self, user: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.run}-{user}-{uuid.uuid4().hex[:4]}",
                        protocol=mqtt.MQTTv5)
        c.username_pw_set(user, self.s.mqtt_password(user))
        c.connect(self.s.mqtt_host, self.s.ports.mqtt)
        c.loop_start()
        return c

    def topic(self, rest: str) -> str:
        """This sandbox's MQTT topic for <enterprise>/<source>[/<sensor>]."""
        return f"{self.s.mqtt_root}/{rest}"

    def publish(self, client: mqtt.Client, rest: str, payload: bytes | dict) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        client.publish(self.topic(rest), body, qos=1).wait_for_publish(10)

    def read_topic(self, name: str, idle_s: float = 2.0) -> list[dict]:
        async def go() -> list[dict]:
            c = AIOKafkaConsumer(self.s.topic(name), bootstrap_servers=self.s.kafka_bootstrap, group_id=None,
                                 auto_offset_reset="earliest", isolation_level="read_committed")
            await c.start()
            out: list[dict] = []
            try:
                idle = 0.0
                while idle < idle_s:
                    batch = await c.getmany(timeout_ms=250)
                    msgs = [m for ms in batch.values() for m in ms]
                    idle = 0.0 if msgs else idle + 0.25
                    out += [orjson.loads(m.value) for m in msgs]
            finally:
                await c.stop()
            return out

        return asyncio.run(go())

    def wait_for(self, what: str, fn: Callable[[], Any], timeout: float = 60.0, every: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(every)
        logs = "\n".join(f"--- {p.log.name}\n" + p.log.read_text(errors="replace")[-2500:] for p in self.procs)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last={last!r}\n{logs}")


