"""When the next escalation step of an alert is due, and what it is. Pure: the alert and the clock go in.

An unacknowledged alert re-pages its current tier every ``repeat_s`` and, when the tier's deadline passes,
pages the next tier (up to the level's top tier). Deadlines count from the *scheduled* start of a tier, not
from when a worker happened to run, so a worker that was down for a minute pages the next tier at once on
restart instead of restarting the clock. An acknowledged alert that is still active after ``reescalate_s``
becomes unacknowledged again and goes one tier up: an acknowledgement is a promise to act, not a mute button.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.model import ACKED, TIER_NAMES, TIERS, UNACK
from hazardwatch.duty import LevelPolicy

ESCALATE, REPEAT, REESCALATE = "escalate", "repeat", "reescalate"


@dataclass(frozen=True)
class Step:
    due_ms: int
    kind: str  # escalate | repeat | reescalate


def new_state() -> dict[str, Any]:
    return {"tier": -1, "tier_name": "", "tier_since_ms": None, "last_page_ms": None, "repeat": 0,
            "next_ms": None, "reescalate_ms": None, "stopped": None, "paged": []}


def paging_blocked(alert: dict[str, Any]) -> str | None:
    """Why nobody may be paged for this alert now (ISA-18.2: shelved, suppressed by design, out of service)."""
    if alert.get("out_of_service"):
        return "out_of_service"
    if alert.get("suppressed"):
        return "suppressed"
    if alert.get("shelved"):
        return "shelved"
    return None


def next_step(alert: dict[str, Any], lp: LevelPolicy, now_ms: int = 0) -> Step | None:
    """The next due step. With ``now_ms``, an overdue escalation wins over an overdue repeat of a lower tier
    (after a worker was down, page upwards at once instead of re-paging the tier that did not answer)."""
    esc = alert["escalation"]
    if paging_blocked(alert) or esc["tier"] < 0:
        return None
    if alert["state"] == UNACK:
        repeat = Step(int(esc["last_page_ms"] + lp.repeat_s * 1000), REPEAT)
        tier = esc["tier"]
        if tier < lp.top_tier and tier < len(lp.deadlines_s):
            up = Step(int(esc["tier_since_ms"] + lp.deadlines_s[tier] * 1000), ESCALATE)
            if up.due_ms <= max(repeat.due_ms, now_ms):  # a tie pages upwards, not the tier not answering
                return up
        return repeat
    if alert["state"] == ACKED and esc["reescalate_ms"] is not None:
        return Step(int(esc["reescalate_ms"]), REESCALATE)
    return None


def enter_tier(esc: dict[str, Any], tier: int, since_ms: int, now_ms: int) -> None:
    esc.update(tier=tier, tier_name=TIERS[tier], tier_since_ms=since_ms, last_page_ms=now_ms, repeat=0,
               stopped=None)
    if tier not in esc["paged"]:
        esc["paged"] = sorted({*esc["paged"], tier})


def refresh_next(alert: dict[str, Any], lp: LevelPolicy) -> None:
    """Keep ``next_ms`` (what the console counts down to) in step with the state."""
    step = next_step(alert, lp)
    alert["escalation"]["next_ms"] = step.due_ms if step else None


def describe(tier: int) -> tuple[str, str]:
    return TIER_NAMES[TIERS[tier]]
