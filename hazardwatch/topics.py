"""Create every Kafka topic explicitly with its partition count (never rely on auto-creation)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hazardwatch.config import Settings
from hazardwatch.model import topic_specs


async def ensure_topics(settings: Settings) -> list[str]:
    """Idempotent. A topic that exists with another partition count is an error with the fix, not a shrug."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000)
    await admin.start()
    out = []
    try:
        specs = topic_specs(settings)
        existing = set(await admin.list_topics())
        rf = settings.replication_factor
        missing = [NewTopic(name, p, rf, topic_configs=cfg) for name, (p, cfg) in specs.items() if name not in existing]
        if missing:
            await admin.create_topics(missing)
            out += [f"created {t.name} ({t.num_partitions} partitions)" for t in missing]
        present = [n for n in specs if n in existing]
        if present:
            for desc in await admin.describe_topics(present):
                name, parts = desc["topic"], len(desc["partitions"])
                want = specs[name][0]
                if parts != want:
                    raise RuntimeError(f"Kafka topic {name} has {parts} partitions but HW_PARTITIONS wants {want}; "
                                       f"set HW_PARTITIONS={parts} or delete the topic (losing its data)")
                out.append(f"exists  {name} ({parts} partitions)")
    finally:
        await admin.close()
    return out
