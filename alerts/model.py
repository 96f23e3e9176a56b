"""The shapes the alert stage agrees on: alert snapshots, lifecycle events, commands and pages.

Everything here is plain JSON-able dicts and constants, so the manager, the notifier, the audit log and the
duty console can each be read, tested and replaced on their own. Times are epoch milliseconds from the
injected clock (``now_ms``), never read from the wall inside the alert logic.

Topics (all JSON):
- ``alert-commands`` (keyed by source, same partitions as ``detections``): what people ask for (ack, shelve..).
- ``alert-events`` (one partition: one total order for the audit chain): every transition, command, page and
  notification attempt, each with a deterministic ``event_id`` so a replay is recognised and dropped.
"""

from __future__ import annotations

from typing import Any

from hazardwatch.model import ALERT_COMMANDS as ALERT_COMMANDS  # the topic names live with the other topics
from hazardwatch.model import ALERT_EVENTS as ALERT_EVENTS
from hazardwatch.model import stable_id

# ISA-18.2 alarm states (IEC 62682 5.3). Shelved, suppressed and out-of-service are overlays on these:
# the alert is still evaluated and recorded, but nobody is paged and it leaves the main queue.
UNACK = "UNACK"  # active, unacknowledged
ACKED = "ACKED"  # active, acknowledged
RTN_UNACK = "RTN_UNACK"  # returned to normal, not yet acknowledged
LATCHED = "LATCHED"  # returned to normal and acknowledged, held until a person resets it
NORMAL = "NORMAL"  # closed
OPEN_STATES = (UNACK, ACKED, RTN_UNACK, LATCHED)

STATE_NAMES = {
    UNACK: ("报警未确认", "active, unacknowledged"),
    ACKED: ("报警已确认", "active, acknowledged"),
    RTN_UNACK: ("已恢复未确认", "returned to normal, unacknowledged"),
    LATCHED: ("已恢复待复位", "returned to normal, latched until reset"),
    NORMAL: ("已关闭", "normal"),
}

CATEGORIES = {
    "process": ("工艺报警", "process"),
    "sensor_health": ("仪表故障", "sensor health"),
    "communication": ("通信中断", "communication"),
}

# Commands a person may give, and the permission each needs (the console checks, the manager re-checks).
COMMANDS = {
    "ack": "ack", "comment": "comment", "shelve": "shelve", "unshelve": "shelve", "reset": "ack",
    "escalate": "ack", "suppress": "maintain", "unsuppress": "maintain", "oos": "maintain",
    "return_to_service": "maintain",
}
SOURCE_COMMANDS = ("suppress", "unsuppress")  # act on every alert of a source, and on future ones

# The escalation chain (domain.md section 6): each tier is paged when the one below misses its deadline.
TIERS = ("control_room", "responsible", "district", "city")
TIER_NAMES = {
    "control_room": ("企业中控室", "enterprise control room"),
    "responsible": ("包保责任人", "responsible persons"),
    "district": ("区县应急管理局", "district emergency bureau"),
    "city": ("市应急指挥中心", "municipal command centre"),
}


def alert_key(det: dict[str, Any]) -> str:
    """One active alert per source, rule and sensor group: H and HH on one gauge are one alert."""
    rule = det["rule"] if det["rule"] != "vote" else f"vote.{det.get('limit', '')}"
    return f"{det['source']}|{rule}|{det.get('group') or det['sensor']}"


def category_of(det: dict[str, Any]) -> str:
    if det["rule"] == "offline":
        return "communication"
    if det["rule"] == "vote" and det.get("limit") == "degraded":
        return "sensor_health"
    return det.get("category") if det.get("category") in CATEGORIES else "process"


def event_id(*parts: Any) -> str:
    return stable_id("event", *parts)


def page_id(alert_id: str, tier: int, repeat: int, purpose: str) -> str:
    return stable_id("page", alert_id, tier, repeat, purpose)


def delivery_id(page: str, recipient: str, channel: str) -> str:
    return stable_id("delivery", page, recipient, channel)
