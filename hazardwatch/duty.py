"""Who is paged, through what, and how long each tier has to acknowledge: the duty roster and escalation policy.

Read from the registry YAML (keys `city.duty`, `districts[].duty`, `enterprises[].control_room`,
`hazard_sources[].responsible[].notify`, `escalation`), validated like the rest of the registry. The
defaults follow domain.md section 6: a red alert nobody acknowledges reaches the municipal command centre
within 15 minutes (the provinces' phone-notice rule); blue alerts stay inside the enterprise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHANNELS = ("webhook", "email", "sms", "wecom", "dingtalk")
TIER_KEYS = ("control_room", "responsible", "district", "city")


@dataclass(frozen=True)
class Contact:
    name: str
    role: str
    channels: tuple[tuple[str, str], ...]  # (channel, address), first is primary; order is the fallback order
    phone: str = ""

    def as_recipient(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "channels": dict(self.channels)}


@dataclass(frozen=True)
class LevelPolicy:
    """Escalation timing for one warning level (seconds)."""

    deadlines_s: tuple[float, ...]  # time each tier has to acknowledge before the next tier is paged
    repeat_s: float  # re-page the current tier this often until acknowledged
    reescalate_s: float  # acknowledged but still active this long -> unacknowledged again, next tier paged
    top_tier: int  # the highest tier this level ever reaches automatically (index into TIER_KEYS)


# Red: control room 1 min, responsible persons 4 min, district 8 min -> the city is paged 13 min after the
# alert if nobody acknowledged (inside the 15-minute phone-notice rule). Blue never leaves the enterprise.
DEFAULT_LEVELS: dict[int, LevelPolicy] = {
    1: LevelPolicy((60.0, 240.0, 480.0), 60.0, 1800.0, 3),
    2: LevelPolicy((300.0, 600.0, 1200.0), 120.0, 3600.0, 3),
    3: LevelPolicy((600.0, 1800.0), 300.0, 4 * 3600.0, 2),
    4: LevelPolicy((1800.0,), 900.0, 24 * 3600.0, 1),
}
MAX_SHELVE_S = 8 * 3600.0  # a shift: a shelved alert comes back to the next shift's screen by itself


@dataclass(frozen=True)
class EscalationPolicy:
    levels: dict[int, LevelPolicy] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    by_grade: dict[int, dict[int, LevelPolicy]] = field(default_factory=dict)  # hazard grade 1..4 overrides
    max_shelve_s: float = MAX_SHELVE_S

    def for_alert(self, level: int, grade: int) -> LevelPolicy:
        return self.by_grade.get(grade, {}).get(level) or self.levels[level]


@dataclass(frozen=True)
class DutyRoster:
    city: tuple[Contact, ...] = ()
    districts: dict[str, tuple[Contact, ...]] = field(default_factory=dict)
    control_rooms: dict[str, tuple[Contact, ...]] = field(default_factory=dict)
    responsible: dict[str, tuple[Contact, ...]] = field(default_factory=dict)  # by hazard source
    policy: EscalationPolicy = field(default_factory=EscalationPolicy)

    def tier(self, tier: int, source: str, enterprise: str, district: str) -> tuple[Contact, ...]:
        key = TIER_KEYS[tier]
        if key == "control_room":
            return self.control_rooms.get(enterprise, ())
        if key == "responsible":
            return self.responsible.get(source, ())
        if key == "district":
            return self.districts.get(district, ())
        return self.city


def parse_contact(c: Any, node: Any, where: str) -> Contact | None:
    """One person or duty desk. `notify` maps channel -> address in fallback order; a bare phone means SMS."""
    if not isinstance(node, dict):
        c.fail(node, "name", where, "must be a mapping with name, role and phone or notify")
        return None
    name, role = c.req(node, "name", where, str), c.req(node, "role", where, str)
    phone = c.opt(node, "phone", where, str, "")
    email = c.opt(node, "email", where, str, "")
    notify = node.get("notify")
    channels: list[tuple[str, str]] = []
    if notify is None:
        channels = [(ch, addr) for ch, addr in (("sms", phone), ("email", email)) if addr]
    elif not isinstance(notify, dict):
        c.fail(node, "notify", f"{where}.notify", "must map channel to address, e.g. {sms: '+86-139...', "
               "wecom: E01}")
    else:
        for ch, addr in notify.items():
            if ch not in CHANNELS:
                c.fail(notify, str(ch), f"{where}.notify.{ch}", f"unknown channel {ch!r}; use one of {list(CHANNELS)}")
            elif not isinstance(addr, str) or not addr.strip():
                c.fail(notify, str(ch), f"{where}.notify.{ch}", "needs an address (phone, e-mail, robot or "
                       "endpoint name from notify.yaml)")
            else:
                channels.append((ch, addr))
    if name is None or role is None:
        return None
    if not channels:
        c.fail(node, "notify", where, f"{name} cannot be reached: give phone, email or notify: {{channel: address}}")
        return None
    return Contact(name, role, tuple(channels), phone or dict(channels).get("sms", ""))


def parse_contacts(c: Any, parent: Any, key: str, where: str) -> tuple[Contact, ...]:
    items = parent.get(key) if isinstance(parent, dict) else None
    if items is None:
        return ()
    if not isinstance(items, list):
        c.fail(parent, key, f"{where}.{key}", "must be a list of contacts (name, role, phone / notify)")
        return ()
    out = [parse_contact(c, x, f"{where}.{key}[{i}]") for i, x in enumerate(items)]
    return tuple(x for x in out if x is not None)


def _level_policy(c: Any, node: Any, where: str, base: LevelPolicy) -> LevelPolicy | None:
    if not isinstance(node, dict):
        c.fail(node, "deadlines_s", where, "must be a mapping with deadlines_s, repeat_s, reescalate_s, top_tier")
        return None
    known = {"deadlines_s", "repeat_s", "reescalate_s", "top_tier"}
    for k in node:
        if k not in known:
            c.fail(node, str(k), f"{where}.{k}", f"unknown key; use {sorted(known)}")
    deadlines = node.get("deadlines_s", list(base.deadlines_s))
    top = node.get("top_tier", TIER_KEYS[base.top_tier])
    repeat = c.opt(node, "repeat_s", where, float, base.repeat_s)
    reesc = c.opt(node, "reescalate_s", where, float, base.reescalate_s)
    if top not in TIER_KEYS:
        c.fail(node, "top_tier", f"{where}.top_tier", f"{top!r} is not a tier; use one of {list(TIER_KEYS)}")
        return None
    top_i = TIER_KEYS.index(top)
    if (not isinstance(deadlines, list) or len(deadlines) != top_i
            or not all(isinstance(d, int | float) and not isinstance(d, bool) and d > 0 for d in deadlines)):
        c.fail(node, "deadlines_s", f"{where}.deadlines_s", f"give {top_i} positive deadlines in seconds, one per tier "
               f"below {top} ({', '.join(TIER_KEYS[:top_i])})")
        return None
    if repeat is None or reesc is None or repeat <= 0 or reesc <= 0:
        c.fail(node, "repeat_s", where, "repeat_s and reescalate_s must be positive seconds")
        return None
    return LevelPolicy(tuple(float(d) for d in deadlines), repeat, reesc, top_i)


def _levels(c: Any, node: Any, where: str, base: dict[int, LevelPolicy]) -> dict[int, LevelPolicy]:
    out = dict(base)
    if node is None:
        return out
    if not isinstance(node, dict):
        c.fail(node, "levels", where, "must map a level 1..4 to its timing")
        return out
    for lvl, spec in node.items():
        if lvl not in (1, 2, 3, 4):
            c.fail(node, str(lvl), f"{where}.{lvl}", "levels are 1 (一级 red) .. 4 (四级 blue)")
            continue
        lp = _level_policy(c, spec, f"{where}.{lvl}", base[lvl])
        if lp is not None:
            out[lvl] = lp
    return out


def parse_policy(c: Any, doc: Any) -> EscalationPolicy:
    node = doc.get("escalation") if isinstance(doc, dict) else None
    if node is None:
        return EscalationPolicy()
    if not isinstance(node, dict):
        c.fail(doc, "escalation", "escalation", "must be a mapping with levels, grades, max_shelve_s")
        return EscalationPolicy()
    levels = _levels(c, node.get("levels"), "escalation.levels", DEFAULT_LEVELS)
    by_grade: dict[int, dict[int, LevelPolicy]] = {}
    grades = node.get("grades") or {}
    if not isinstance(grades, dict):
        c.fail(node, "grades", "escalation.grades", "must map a hazard grade 1..4 to {levels: ...}")
        grades = {}
    for g, spec in grades.items():
        if g not in (1, 2, 3, 4) or not isinstance(spec, dict):
            c.fail(grades, str(g), f"escalation.grades.{g}", "use a hazard grade 1..4 mapping to {levels: ...}")
            continue
        by_grade[g] = _levels(c, spec.get("levels"), f"escalation.grades.{g}.levels", levels)
    max_shelve = c.opt(node, "max_shelve_s", "escalation", float, MAX_SHELVE_S)
    if max_shelve is None or not 60 <= max_shelve <= 7 * 86400:
        c.fail(node, "max_shelve_s", "escalation.max_shelve_s", "must be between 60 s and 7 days")
        max_shelve = MAX_SHELVE_S
    return EscalationPolicy(levels, by_grade, max_shelve)
