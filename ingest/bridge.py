"""The ingest bridge: MQTT (QoS 1, shared subscription, persistent session) -> Kafka `readings`.

A message is acknowledged to the MQTT broker only after everything it produced (accepted readings and
dead letters) is confirmed by Kafka, so a bridge killed at any moment loses nothing: the broker redelivers.
Unacknowledged QoS 1 messages are bounded by the broker's inflight window, which is our backpressure when
Kafka is slow. Readings are grouped per hazard source and sent as one columnar record, keyed by source.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter, defaultdict

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hazardwatch.config import Settings, ops_port
from hazardwatch.logs import get_logger
from hazardwatch.metrics import BridgeMetrics
from hazardwatch.model import DEAD, READINGS, ReadingBatch, dead_letter
from hazardwatch.ops import Ops, start_ops
from hazardwatch.registry import load_registry
from ingest.decode import Decoder

DRAIN_MAX = 2000  # MQTT messages per Kafka round trip
STATS_EVERY_S = 10.0
log = get_logger("bridge")


def merge(batches: list[ReadingBatch]) -> ReadingBatch:
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    return ReadingBatch(first.source, first.enterprise, [s for b in batches for s in b.sensors],
                        np.concatenate([b.ts_ms for b in batches]), np.concatenate([b.values for b in batches]),
                        np.concatenate([b.quality for b in batches]))


class Bridge:
    def __init__(self, settings: Settings, client_id: str, group: str, metrics: BridgeMetrics | None = None,
                 ops: Ops | None = None):
        self.s = settings
        self.metrics = metrics or BridgeMetrics()
        self.ops = ops
        self.registry = load_registry(settings.registry_path)
        self.decoder = Decoder(self.registry, settings)
        self.client_id = client_id
        self.group = group
        self.inbox: asyncio.Queue[tuple[str, bytes, int, int]] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.sent_records = 0

    # ---- MQTT side (paho's network thread) --------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if getattr(rc, "is_failure", False):
            log.error(f"bridge: MQTT connect refused: {rc}; check the hw-bridge password in "
                      f"{self.s.secrets_dir / 'mqtt' / 'hw-bridge'} and the broker's ACL")
            self._ready("mqtt", False, f"connect refused: {rc}")
            return
        client.subscribe(f"$share/{self.group}/{self.s.mqtt_root}/#", qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, rcs: list, props: object) -> None:
        self.loop.call_soon_threadsafe(self.subscribed.set)
        self._ready("mqtt", True)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, rc: object,
                       props: object) -> None:
        # paho reconnects by itself; until it has, this replica takes no share of the readings.
        self._ready("mqtt", False, f"disconnected: {rc}")

    def _ready(self, check: str, ok: bool, why: str = "") -> None:
        if self.ops is not None:
            self.ops.ready(check, ok, why)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.loop.call_soon_threadsafe(self.inbox.put_nowait, (msg.topic, msg.payload, msg.mid, msg.qos))

    def _mqtt(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                        manual_ack=True)
        c.username_pw_set("hw-bridge", self.s.mqtt_password("hw-bridge"))
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        c.max_inflight_messages_set(1000)
        props = Properties(PacketTypes.CONNECT)
        # Keep our queue while we are down. Replicas need stable client ids: an abandoned persistent session in
        # the share group keeps receiving its share until it expires.
        props.SessionExpiryInterval = self.s.mqtt_session_expiry_s
        c.connect(self.s.mqtt_host, self.s.ports.mqtt, keepalive=30, clean_start=False, properties=props)
        return c

    # ---- Kafka side -------------------------------------------------------------------------------------
    async def run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.s.kafka_bootstrap, acks="all", enable_idempotence=True,
                                    linger_ms=5, max_batch_size=1 << 20, max_request_size=4 << 20)
        await producer.start()
        self._ready("kafka", True)
        client = self._mqtt()
        client.loop_start()
        try:
            await asyncio.wait_for(self.subscribed.wait(), 30)
            log.info(f"bridge: subscribed to $share/{self.group}/{self.s.mqtt_root}/# as {self.client_id}; "
                     f"producing to {self.s.topic(READINGS)}")
            last_stats = time.monotonic()
            while not self.stopping.is_set():
                items = await self._drain()
                self.metrics.inbox.set(self.inbox.qsize())
                if items:
                    await self._forward(producer, items)
                    for _, _, mid, qos in items:
                        if qos > 0:
                            client.ack(mid, qos)
                if time.monotonic() - last_stats > STATS_EVERY_S:
                    last_stats = time.monotonic()
                    self._print_stats()
        finally:
            self._print_stats()
            client.disconnect()
            client.loop_stop()
            await producer.stop()

    async def _drain(self) -> list[tuple[str, bytes, int, int]]:
        try:
            first = await asyncio.wait_for(self.inbox.get(), 0.5)
        except TimeoutError:
            return []
        items = [first]
        while len(items) < DRAIN_MAX and not self.inbox.empty():
            items.append(self.inbox.get_nowait())
        return items

    async def _forward(self, producer: AIOKafkaProducer, items: list[tuple[str, bytes, int, int]]) -> None:
        now = time.time()
        per_source: dict[str, list[ReadingBatch]] = defaultdict(list)
        records: list[tuple[str, bytes | None, bytes]] = []
        rejected: Counter[str] = Counter()
        for topic, payload, _, _ in items:
            d = self.decoder.decode(topic, payload, now)
            if d.batch is not None:
                per_source[d.batch.source].append(d.batch)
            for r in d.rejects:
                rejected[r.reason] += 1
                records.append((self.s.topic(DEAD), topic.encode()[:255],
                                dead_letter(r.reason, r.detail, topic, r.raw, now)))
        accepted: Counter[str] = Counter()
        sizes = []
        for src, batches in per_source.items():
            merged = merge(batches)
            accepted[merged.enterprise] += len(merged)
            sizes.append(len(merged))
            records.append((self.s.topic(READINGS), src.encode(), merged.encode()))
        delay = 0.5
        while True:
            try:
                futs = [await producer.send(t, value=v, key=k) for t, k, v in records]
                await asyncio.gather(*futs)
                self.sent_records += len(records)
                # Counted once Kafka has them: a metric must never claim a reading that a crash then loses.
                m = self.metrics
                m.messages.inc(len(items))
                for ent, n in accepted.items():
                    m.readings_in.labels(ent).inc(n)
                for reason, n in rejected.items():
                    m.dead_letters.labels(reason).inc(n)
                for n in sizes:
                    m.batch_readings.observe(n)
                self._ready("kafka", True)
                return
            except Exception as exc:  # Kafka unavailable: hold the MQTT acks and retry; the broker keeps the rest
                self.metrics.kafka_retries.inc()
                self._ready("kafka", False, f"send failed: {type(exc).__name__}")
                log.warning(f"bridge: Kafka send failed ({exc!r}); retrying in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _print_stats(self) -> None:
        c = dict(self.decoder.counters)
        accepted = c.pop("accepted", 0)
        stats = {"accepted": accepted, "dead_letter": c, "kafka_records": self.sent_records}
        log.info("bridge: stats " + orjson.dumps(stats).decode(), extra={"stats": stats})


def run_bridge(settings: Settings, client_id: str = "hw-bridge-1") -> int:
    group = os.environ.get("HW_BRIDGE_GROUP", "hw-bridge")
    metrics = BridgeMetrics()
    ops = start_ops("bridge", metrics.registry, settings.host, ops_port(9101), checks=("mqtt", "kafka"))

    async def main() -> None:
        bridge = Bridge(settings, client_id, group, metrics, ops)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, bridge.stopping.set)
        beat = asyncio.create_task(ops.heartbeat())
        try:
            await bridge.run()
        finally:
            beat.cancel()
            ops.close()

    asyncio.run(main())
    return 0
