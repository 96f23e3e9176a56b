"""The console process: the web app wired to Kafka (events in, commands out) and InfluxDB (trends).

Kept thin on purpose: all decisions live in users.py, board.py and app.py, which are tested without servers.
The board is rebuilt by reading alert-events from the beginning on every start (no consumer group, nothing
committed), so the console holds no state that a restart could lose.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from alerts.console.app import make_app
from alerts.console.board import AlertBoard
from alerts.console.users import load_users, users_path
from alerts.model import ALERT_COMMANDS, ALERT_EVENTS
from hazardwatch.config import ConfigError, Settings
from hazardwatch.logs import get_logger
from hazardwatch.metrics import ConsoleMetrics
from hazardwatch.ops import Ops
from hazardwatch.registry import Registry

log = get_logger("console")

MAX_TREND_POINTS = 600  # about one per pixel of the chart
SEND_TIMEOUT_S = 10.0


def now_ms() -> int:
    return int(time.time() * 1000)


def secure_cookies_for(host: str) -> bool:
    """HW_CONSOLE_SECURE_COOKIES=0/1 decides; otherwise Secure unless bound to loopback (TLS proxy in front)."""
    raw = os.environ.get("HW_CONSOLE_SECURE_COOKIES", "")
    if raw in ("0", "1"):
        return raw == "1"
    if raw:
        raise ConfigError(f"HW_CONSOLE_SECURE_COOKIES={raw!r}: use 1 (behind HTTPS) or 0 (plain HTTP, loopback only)")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: assume it is reached through HTTPS


def _flux_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flux_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def trend_query(bucket: str, sensor: str, start_ms: int, stop_ms: int, period_s: float) -> str:
    """Flux for one sensor's readings; averaged into windows when the raw points would be far too many."""
    flux = (f"from(bucket: {_flux_str(bucket)})\n"
            f"  |> range(start: {_flux_time(start_ms)}, stop: {_flux_time(stop_ms)})\n"
            '  |> filter(fn: (r) => r._measurement == "reading" and r._field == "v"'
            f" and r.sensor == {_flux_str(sensor)})\n")
    span_s = (stop_ms - start_ms) / 1000
    if span_s / max(period_s, 0.001) > MAX_TREND_POINTS:
        flux += f"  |> aggregateWindow(every: {math.ceil(span_s / MAX_TREND_POINTS)}s, fn: mean, createEmpty: false)\n"
    return flux + '  |> keep(columns: ["_time", "_value"])'


async def run_console(settings: Settings, registry: Registry, host: str, port: int) -> None:
    users = load_users(users_path(settings.home), registry)
    board = AlertBoard(registry)
    secure = secure_cookies_for(host)
    consumer = AIOKafkaConsumer(settings.topic(ALERT_EVENTS), bootstrap_servers=settings.kafka_bootstrap,
                                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    influx = InfluxDBClientAsync(url=settings.influx_url, token=settings.influx_token(), org=settings.influx_org,
                                 timeout=20_000)

    async def send_command(cmd: dict[str, Any]) -> None:
        # Keyed by source: the command lands on the partition of that source's detections.
        await asyncio.wait_for(producer.send_and_wait(settings.topic(ALERT_COMMANDS), orjson.dumps(cmd),
                                                      key=str(cmd["source"]).encode()), SEND_TIMEOUT_S)

    async def trend(sensor: str, start_ms: int, stop_ms: int) -> list[tuple[int, float]]:
        flux = trend_query(settings.influx_bucket, sensor, start_ms, stop_ms, registry.sensors[sensor].period_s)
        tables = await influx.query_api().query(flux, org=settings.influx_org)
        points = [(int(r.get_time().timestamp() * 1000), float(r.get_value()))
                  for table in tables for r in table.records if r.get_value() is not None]
        points.sort()
        return points

    async def feed() -> None:
        async for msg in consumer:
            try:
                board.apply(orjson.loads(msg.value))
            except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
                log.warning(f"console: skipped event at offset {msg.offset}: {type(exc).__name__}: {exc}")

    metrics = ConsoleMetrics()
    ops = Ops("console", metrics.registry, checks=("kafka",))
    await producer.start()
    await consumer.start()
    ops.ready("kafka", True)
    feeder = asyncio.create_task(feed(), name="console-feed")
    beat = asyncio.create_task(ops.heartbeat(), name="console-heartbeat")
    runner = web.AppRunner(make_app(registry, users, board, send_command, trend, now_ms, secure, ops=ops,
                                    metrics=metrics), shutdown_timeout=5)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info(f"console: listening on http://{host}:{port}" + ("" if not secure else " (Secure cookies: serve "
                                                                   "via HTTPS)"))
        await feeder  # runs until cancelled, or fails loudly if the event feed breaks
    finally:
        ops.ready("kafka", False, "event feed stopped")
        beat.cancel()
        feeder.cancel()
        await runner.cleanup()
        await consumer.stop()
        await producer.stop()
        await influx.close()
