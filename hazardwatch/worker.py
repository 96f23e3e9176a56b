"""The Faust worker: wires ingest's topic to the detectors, InfluxDB and the alert records.

Agents (all acknowledge a batch only after its outputs are durable):
- detect:  readings -> detector engine -> `detections`; state checkpointed per source in a Faust table and
           flushed before the ack, so a restarted worker resumes from exactly the state it acknowledged.
- store:   readings -> InfluxDB (points are idempotent, a replay is harmless).
- alert:   detections -> alert records on `alerts`, deduplicated against the alerts topic itself (the
           ledger), so a replayed detection never produces a second record.
- archive: alerts -> InfluxDB measurement `alert` for dashboards and the inspector's timeline.
- the alert stage (alerts/agents.py): lifecycle, escalation timers, notifications, flood watch, audit chain.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from alerts.agents import install as install_alert_stage
from alerts.records import alert_record
from detectors.engine import DetectorEngine
from hazardwatch import logs
from hazardwatch.clock import clock_from_env
from hazardwatch.config import Settings, ops_port
from hazardwatch.influx import InfluxWriter, LineProtocol
from hazardwatch.metrics import WorkerMetrics
from hazardwatch.model import ALERTS, DETECTIONS, READINGS, ReadingBatch
from hazardwatch.ops import Ops, start_ops
from hazardwatch.registry import load_registry
from hazardwatch.storage import alarm_bucket, ensure_buckets_exist
from hazardwatch.topics import ensure_topics

log = logs.get_logger("worker")


async def read_ledger(settings: Settings) -> set[str]:
    """Every record id already on the alerts topic. The topic is the notification log: what is there was sent."""
    topic = settings.topic(ALERTS)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    seen: set[str] = set()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return seen
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, msgs in batch.items():
                for m in msgs:
                    seen.add(orjson.loads(m.value)["record_id"])
                if msgs and msgs[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return seen


def fatal_on_error(fn: Callable[[faust.StreamT], Awaitable[None]]) -> Callable[[faust.StreamT], Awaitable[None]]:
    """An agent that fails must take the worker down: a half-alive worker stops alarming without a sound.

    Faust would log the crash and keep the process running with the agent dead; exiting lets the supervisor
    (systemd, Kubernetes, the demo) restart it, and unacknowledged readings are then processed again.
    """

    @functools.wraps(fn)
    async def run(stream: faust.StreamT) -> None:
        try:
            await fn(stream)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.critical(f"worker: FATAL in agent {fn.__name__}; exiting (code 70) so the supervisor restarts the "
                         f"worker", exc_info=True)  # the traceback goes with it, as one (JSON) record
            sys.stdout.flush()
            os._exit(70)

    return run


class ServiceWorker(faust.Worker):
    """Faust's worker without its terminal spinner: this runs under a supervisor whose log wants whole lines."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.spinner = None


def make_app(settings: Settings, metrics: WorkerMetrics | None = None, ops: Ops | None = None,
             loglevel: str = "warn") -> faust.App:
    registry = load_registry(settings.registry_path)
    m = metrics or WorkerMetrics()
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.home / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,  # table changelogs survive a broker like the rest
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=6.0,
        broker_rebalance_timeout=6.0,
        broker_heartbeat_interval=1.0,
        stream_buffer_maxsize=4096,
        web_enabled=False,
        producer_acks=-1,
        producer_max_request_size=4 << 20,
        consumer_max_fetch_size=4 << 20,
        # Faust's own loggers (rebalancing, recovery, commits) in the same format as ours: JSON in containers.
        logging_config=logs.dict_config("worker", _LEVELS[loglevel]),
        Worker=ServiceWorker,
    )
    readings = app.topic(settings.topic(READINGS), key_type=bytes, value_type=bytes,
                         value_serializer="raw", key_serializer="raw", partitions=settings.partitions)
    detections = app.topic(settings.topic(DETECTIONS), key_type=bytes, value_type=bytes,
                           value_serializer="raw", key_serializer="raw", partitions=settings.partitions)
    alerts = app.topic(settings.topic(ALERTS), key_type=bytes, value_type=bytes,
                       value_serializer="raw", key_serializer="raw", partitions=settings.partitions)
    # use_partitioner: the changelog partition follows the key (source id), the same hash the bridge used
    # for `readings`, whatever event happens to be current in a batch that spans partitions.
    schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    state_table = app.Table("detector-state", default=None, schema=schema, partitions=settings.partitions,
                            use_partitioner=True)

    engine = DetectorEngine(registry)
    loaded: set[str] = set()
    lp = LineProtocol(registry)
    writer = InfluxWriter(settings, m)
    alarms_bucket = alarm_bucket(settings)
    ledger: dict[str, Any] = {"ids": None, "assignment": None}
    stats = {"readings": 0, "detections": 0, "alerts": 0, "duplicates_refused": 0}

    async def publish_and_checkpoint(records: list[dict[str, Any]], sources: set[str]) -> None:
        """Detections out, then the touched sources' state, both durable before anything is acknowledged."""
        futs = [await detections.send(key=r["source"].encode(), value=orjson.dumps(r)) for r in records]
        if futs:
            await asyncio.gather(*futs)
        for src in sources:
            state_table[src] = engine.export_source(src)
        await app.producer.flush()  # checkpoint durable before the offsets can be committed
        stats["detections"] += len(records)
        for r in records:
            m.detections.labels(r["rule"]).inc()

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set, **kwargs: Any) -> None:
        # Another worker may own these sources next: reload their state from the table when they come back.
        loaded.clear()
        ledger["ids"] = None

    @app.agent(readings)
    @fatal_on_error
    async def detect(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(settings.batch_max, within=settings.batch_within_s):
            batches = [ReadingBatch.decode(e.value) for e in events]
            for b in batches:
                if b.source not in loaded:
                    saved = state_table.get(b.source)
                    engine.import_source(b.source, saved)
                    loaded.add(b.source)
            t0 = time.perf_counter()
            records = engine.process(batches)
            m.detector_seconds.observe(time.perf_counter() - t0)
            await publish_and_checkpoint(records, {b.source for b in batches})
            n = sum(len(b) for b in batches)
            stats["readings"] += n
            m.readings.inc(n)
            m.batch_readings.observe(n)
            for e in events:
                await stream.ack(e)

    @app.agent(readings)
    @fatal_on_error
    async def store(stream: faust.StreamT) -> None:
        await writer.ensure_started()
        async for events in stream.noack_take(settings.batch_max, within=settings.batch_within_s):
            batches = [ReadingBatch.decode(e.value) for e in events]
            await writer.write(lp.readings(batches), sum(len(b) for b in batches))
            for e in events:
                await stream.ack(e)

    @app.agent(detections)
    @fatal_on_error
    async def alert(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(500, within=0.05):
            assignment = frozenset(app.consumer.assignment())
            if ledger["ids"] is None or ledger["assignment"] != assignment:
                ledger["ids"] = await read_ledger(settings)
                ledger["assignment"] = assignment
            seen: set[str] = ledger["ids"]
            futs = []
            sent: list[dict[str, Any]] = []
            for e in events:
                rec = alert_record(orjson.loads(e.value), registry)
                if rec["record_id"] in seen:
                    stats["duplicates_refused"] += 1
                    m.duplicates_refused.inc()
                    continue
                seen.add(rec["record_id"])
                futs.append(await alerts.send(key=rec["source"].encode(), value=orjson.dumps(rec)))
                sent.append(rec)
            if futs:
                await asyncio.gather(*futs)
                stats["alerts"] += len(futs)
                for rec in sent:
                    m.alerts.labels(str(rec["level"]), rec["rule"]).inc()
            for e in events:
                await stream.ack(e)

    @app.agent(alerts)
    @fatal_on_error
    async def archive(stream: faust.StreamT) -> None:
        await writer.ensure_started()
        async for events in stream.noack_take(500, within=0.2):
            await writer.write(lp.alerts([orjson.loads(e.value) for e in events]), len(events), alarms_bucket, "alert")
            for e in events:
                await stream.ack(e)

    def owned_sources() -> list[str]:
        parts = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic(READINGS)}
        n = settings.partitions
        return [src for src in registry.sources if (murmur2(src.encode()) & 0x7FFFFFFF) % n in parts]

    now_ms = clock_from_env()

    @app.timer(settings.offline_tick_s)
    async def offline_tick() -> None:
        # A silent sensor sends nothing, so only a clock can notice it: judge every sensor this worker owns.
        sources = owned_sources()
        if not sources:
            return
        for src in sources:
            if src not in loaded:
                engine.import_source(src, state_table.get(src))
                loaded.add(src)
        records = engine.tick(now_ms(), sources)
        if records:
            await publish_and_checkpoint(records, {r["source"] for r in records})

    @app.timer(10.0)
    async def report() -> None:
        doc = {**stats, "not_evaluated": engine.skipped, "influx_retries": writer.retries}
        log.info(f"worker: stats {orjson.dumps(doc).decode()}", extra={"stats": doc})

    @app.timer(1.0)
    async def health() -> None:
        # The beat comes from the loop itself: a loop stuck in a long call stops it, and /healthz fails.
        if ops is None:
            return
        ops.beat()
        assigned = app.consumer.assignment()
        ops.ready("partitions", bool(assigned), "no partitions assigned yet (joining the consumer group)")
        ops.ready("tables", app.tables.recovery.completed.is_set(), "tables still recovering from changelogs")

    @app.timer(5.0)
    async def lag() -> None:
        # Lag per partition this worker owns: what Kafka holds minus what we committed. The highwater is the one
        # the fetcher last saw, so no extra round trip per scrape.
        consumer = app.consumer
        committed = consumer._committed_offset  # faust 0.15 keeps the last committed offset per partition here
        m.lag.clear()
        for tp in consumer.assignment():
            hw = consumer.highwater(tp)
            if hw is None:
                continue
            m.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - (committed.get(tp) or 0)))

    install_alert_stage(app, settings, registry, detections, fatal_on_error, stats, metrics=m, writer=writer,
                        lp=lp)

    @app.task
    async def announce() -> None:
        log.info(f"worker: started, consuming {settings.topic(READINGS)} with {len(registry.sensors)} sensors")

    return app


_LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


def run_worker(settings: Settings, loglevel: str = "warn") -> int:
    logs.setup("worker", _LEVELS[loglevel])
    asyncio.run(ensure_topics(settings))
    for change in ensure_buckets_exist(settings):
        log.info(f"worker: {change}")
    metrics = WorkerMetrics()
    ops = start_ops("worker", metrics.registry, settings.host, ops_port(9102), checks=("partitions", "tables"))
    app = make_app(settings, metrics, ops, loglevel)
    # In JSON mode every stdout line must be a JSON object: Faust's banner and spinner would break log parsers.
    quiet = ["--quiet"] if logs.log_format() == "json" else []
    sys.argv = ["hazardwatch-worker", *quiet, "worker", "--loglevel", loglevel, "--without-web"]
    app.main()
    return 0
