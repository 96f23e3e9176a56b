"""Init container: wait until every Kafka topic hazardwatch uses exists, without ever creating one.

On Kubernetes the Strimzi Topic Operator creates the topics from the KafkaTopic resources (3 replicas,
min.insync.replicas 2). `hazardwatch topics` and the worker's start-up would otherwise create any missing topic
themselves, with replication factor 1, and whoever comes first wins: the Topic Operator cannot change a
replication factor afterwards. So the init Job and the workers run this first; it only lists topics.

Run with the hazardwatch image's Python: `python /opt/hazardwatch/wait_for_topics.py` (settings from HW_*).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from hazardwatch.config import Settings, load_settings
from hazardwatch.model import topic_specs

EVERY_S = 5.0


def wanted(settings: Settings) -> set[str]:
    """The topics of topic_specs() plus Faust's leader topic (declared as a KafkaTopic too)."""
    return set(topic_specs(settings)) | {f"{settings.app_id}-__assignor-__leader"}


async def wait(want: set[str], list_topics: Callable[[], Awaitable[set[str]]], every_s: float = EVERY_S,
               say: Callable[[str], None] = print) -> None:
    """Poll until `want` is a subset of what Kafka lists; Kafka being down is just another reason to wait."""
    while True:
        try:
            missing = want - await list_topics()
        except Exception as exc:  # not reachable yet: the brokers may still be starting
            say(f"wait-for-topics: Kafka not answering yet ({type(exc).__name__}: {exc})")
        else:
            if not missing:
                say(f"wait-for-topics: all {len(want)} topics exist")
                return
            say(f"wait-for-topics: waiting for the Topic Operator to create {', '.join(sorted(missing))}")
        await asyncio.sleep(every_s)


def main() -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    s = load_settings()

    async def list_topics() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    asyncio.run(wait(wanted(s), list_topics, say=lambda m: print(m, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
