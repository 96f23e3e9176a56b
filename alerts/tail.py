"""Print alert records as they arrive on the alerts topic: the duty officer's terminal view."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from hazardwatch.config import Settings
from hazardwatch.model import ALERTS

_ANSI = {"red": "\033[1;31m", "orange": "\033[1;33m", "yellow": "\033[33m", "blue": "\033[34m"}


def format_alert(rec: dict[str, Any], colour: bool = False) -> str:
    text = f"{rec['text_zh']}\n    {rec['text_en']}"
    if colour and rec["state"] == "raise":
        return f"{_ANSI.get(rec['colour'], '')}{text}\033[0m"
    return text


async def tail_alerts(settings: Settings, from_beginning: bool = False, limit: int = 0, timeout: float = 0.0,
                      on_record: Callable[[dict[str, Any]], None] | None = None,
                      stop: asyncio.Event | None = None) -> int:
    """Print (or hand to on_record) each alert record. Returns how many were seen."""
    consumer = AIOKafkaConsumer(settings.topic(ALERTS), bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                isolation_level="read_committed")
    await consumer.start()
    seen = 0
    idle = 0.0
    colour = sys.stdout.isatty()
    try:
        while not (stop and stop.is_set()):
            batch = await consumer.getmany(timeout_ms=500)
            msgs = [m for ms in batch.values() for m in ms]
            if not msgs:
                idle += 0.5
                if timeout and idle >= timeout:
                    break
                continue
            idle = 0.0
            for m in sorted(msgs, key=lambda m: m.timestamp):
                rec = orjson.loads(m.value)
                seen += 1
                if on_record:
                    on_record(rec)
                else:
                    print(format_alert(rec, colour), flush=True)
                if limit and seen >= limit:
                    return seen
    finally:
        await consumer.stop()
    return seen

