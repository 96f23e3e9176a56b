"""End-to-end throughput: MQTT -> bridge -> Kafka -> Faust worker -> InfluxDB, on the local services.

    .venv/bin/python bench/pipeline_throughput.py [--readings 200000] [--batch 200]

Publishes N readings for the example registry's sensors in batch payloads as fast as one process can, and
measures how long until every one is queryable in InfluxDB (Flux count). In the same run it measures two
baselines on the same machine: MQTT publish alone (the publisher's own ceiling), and a raw Kafka consume of
the `readings` topic the pipeline filled, so the figures can be read as ratios on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer

from hazardwatch import services
from hazardwatch.config import load_settings
from hazardwatch.registry import load_registry
from hazardwatch.sandbox import Sandbox


def payloads(n: int, batch: int, t0: float) -> list[tuple[str, str, bytes]]:
    """(enterprise user, topic, payload) with distinct (sensor, ts) so nothing is a duplicate."""
    reg = load_registry(load_settings().registry_path)
    by_source = {sid: list(src.sensors) for sid, src in reg.sources.items()}
    out = []
    made = 0
    k = 0
    rng = np.random.default_rng(1)
    while made < n:
        for sid, sensors in by_source.items():
            src = reg.sources[sid]
            user = reg.enterprises[src.enterprise].mqtt_user
            m = min(batch, n - made)
            if m <= 0:
                break
            rows = [{"s": sensors[i % len(sensors)], "v": round(float(rng.uniform(20, 30)), 3),
                     "ts": round(t0 + (k * batch + i // len(sensors)) * 0.001 + (i % len(sensors)) * 1e-6, 6)}
                    for i in range(m)]
            out.append((user, f"{src.enterprise}/{sid}", orjson.dumps({"readings": rows})))
            made += m
        k += 1
    return out


def raw_consume(sb: Sandbox, expected_records: int) -> tuple[int, int, float]:
    async def go() -> tuple[int, int, float]:
        c = AIOKafkaConsumer(sb.s.topic("readings"), bootstrap_servers=sb.s.kafka_bootstrap, group_id=None,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20)
        await c.start()
        n = records = 0
        t = time.perf_counter()
        try:
            while records < expected_records:
                batch = await c.getmany(timeout_ms=1000, max_records=10000)
                if not batch:
                    break
                for msgs in batch.values():
                    for m in msgs:
                        records += 1
                        n += len(orjson.loads(m.value)["s"])  # decoding is part of any real consumer
        finally:
            await c.stop()
        return n, records, time.perf_counter() - t

    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=200, help="readings per MQTT message")
    args = ap.parse_args()
    services.up(load_settings())
    with tempfile.TemporaryDirectory() as tmp:
        sb = Sandbox(Path(tmp), HW_BATCH_MAX="5000")
        try:
            sb.bridge()
            sb.worker()
            t0 = time.time() - 3000
            msgs = payloads(args.readings, args.batch, t0)
            clients = {u: sb.publisher(u) for u in {m[0] for m in msgs}}
            print(f"publishing {args.readings} readings in {len(msgs)} MQTT messages of up to {args.batch}", flush=True)
            start = time.perf_counter()
            infos = [clients[u].publish(sb.topic(t), p, qos=1) for u, t, p in msgs]
            for i in infos:
                i.wait_for_publish(120)
            published_s = time.perf_counter() - start
            print(f"  MQTT publish (QoS 1, acknowledged by the broker): {args.readings / published_s:,.0f} readings/s",
                  flush=True)
            q = (f'from(bucket: "{sb.s.influx_bucket}") |> range(start: -2h) '
                 f'|> filter(fn: (r) => r._measurement == "reading" and r._field == "v") |> group() |> count()')
            last_print = time.perf_counter()
            while True:
                rows = sb.flux(q)
                stored = int(rows[0]["_value"]) if rows else 0
                if stored >= args.readings:
                    break
                if time.perf_counter() - last_print > 5:
                    last_print = time.perf_counter()
                    print(f"  ... {stored:,} stored after {time.perf_counter() - start:.0f}s", flush=True)
                if time.perf_counter() - start > 900:
                    print(f"gave up: {stored} of {args.readings} stored after 900 s", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            e2e_s = time.perf_counter() - start
            for c in clients.values():
                c.disconnect()
            records = len(sb.read_topic("readings", idle_s=1.0))
            n, recs, raw_s = raw_consume(sb, records)
        finally:
            sb.close()
    pipe = args.readings / e2e_s
    raw = n / raw_s
    print(f"\nreadings: {args.readings:,} in batches of {args.batch}")
    print(f"end to end MQTT -> bridge -> Kafka -> Faust -> InfluxDB: {pipe:,.0f} readings/s ({e2e_s:.1f} s)")
    print(f"raw Kafka consume of the same readings topic ({recs} records): {raw:,.0f} readings/s")
    print(f"pipeline / raw Kafka consume: {pipe / raw:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
