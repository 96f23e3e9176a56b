"""Records that cross stage boundaries, and the Kafka topics that carry them.

Stages agree on these shapes and nothing else. All records are JSON (orjson) so an operator can read any
topic with a console consumer during an incident.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from hazardwatch.config import Settings

# Topic name -> purpose. Partition counts come from settings so every topic keyed by source has the same
# count (Faust refuses a table changelog whose partition count differs from its source topic).
READINGS = "readings"
DEAD = "readings.dead"
DETECTIONS = "detections"
ALERTS = "alerts"
ALERT_COMMANDS = "alert-commands"  # people's acknowledgements etc., keyed by source like detections
ALERT_EVENTS = "alert-events"  # one partition: the total order the audit chain is built from
KEYED_BY_SOURCE = (READINGS, DETECTIONS, ALERTS, ALERT_COMMANDS)

# Quality codes carried with each reading (OPC-style, collapsed to three).
Q_GOOD, Q_UNCERTAIN, Q_BAD = 0, 1, 2

DETECTOR_VERSION = "detectors-3"


def topic_specs(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """Every topic the system uses: name -> (partitions, config). Created explicitly, never auto-created."""
    week = str(7 * 86400 * 1000)
    year = str(366 * 86400 * 1000)
    p = settings.partitions
    return {
        settings.topic(READINGS): (p, {"retention.ms": week}),
        settings.topic(DEAD): (1, {"retention.ms": str(30 * 86400 * 1000)}),
        settings.topic(DETECTIONS): (p, {"retention.ms": week}),
        # Alerts are the record nobody may later deny: keep them a year (domain.md: alarm records >= 1 year).
        settings.topic(ALERTS): (p, {"retention.ms": year}),
        settings.topic(ALERT_COMMANDS): (p, {"retention.ms": year}),
        settings.topic(ALERT_EVENTS): (1, {"retention.ms": str(2 * 366 * 86400 * 1000)}),
        # Faust's table changelogs: each must match the partitions of its table's source topic.
        f"{settings.app_id}-detector-state-changelog": (p, {"cleanup.policy": "compact"}),
        f"{settings.app_id}-alert-state-changelog": (p, {"cleanup.policy": "compact"}),
        f"{settings.app_id}-notify-log-changelog": (1, {"cleanup.policy": "compact"}),
        f"{settings.app_id}-flood-watch-changelog": (1, {"cleanup.policy": "compact"}),
    }


@dataclass
class ReadingBatch:
    """Readings of one hazard source, columnar. One Kafka record carries many readings."""

    source: str
    enterprise: str
    sensors: list[str]
    ts_ms: np.ndarray  # int64 epoch milliseconds (event time)
    values: np.ndarray  # float64, in the registry's unit
    quality: np.ndarray  # int8

    def __len__(self) -> int:
        return len(self.sensors)

    def encode(self) -> bytes:
        return orjson.dumps({"src": self.source, "ent": self.enterprise, "s": self.sensors,
                             "ts": self.ts_ms, "v": self.values, "q": self.quality},
                            option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def decode(cls, raw: bytes) -> ReadingBatch:
        d = orjson.loads(raw)
        return cls(d["src"], d["ent"], d["s"], np.asarray(d["ts"], dtype=np.int64),
                   np.asarray(d["v"], dtype=np.float64), np.asarray(d["q"], dtype=np.int8))


def dead_letter(reason: str, detail: str, topic: str, raw: bytes, received_at: float) -> bytes:
    """A rejected input: the raw bytes (as text where possible) and why, so nothing disappears silently."""
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = raw.hex(), "hex"
    if len(text) > 65536:  # keep the dead-letter record itself bounded; the size is in the detail
        text = text[:65536]
        detail += f" (raw truncated from {len(raw)} bytes)"
    return orjson.dumps({"reason": reason, "detail": detail, "topic": topic, "raw": text,
                         "raw_encoding": encoding, "received_at": received_at})


def stable_id(*parts: Any) -> str:
    """Deterministic id: the same detection replayed after a restart gets the same id, so it never pages twice."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]
