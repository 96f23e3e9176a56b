"""The alert manager: detections and people's commands in, ISA-18.2 lifecycle and escalation events out.

Pure logic with the clock passed in (``now_ms``) so every transition and escalation is testable to the
millisecond; the Faust worker supplies the wall clock, keeps each source's state in a table (so timers
survive restarts and rebalances) and publishes the events. Every event has a deterministic id: after a
restart the same detection, tick or command produces the same ids, and the notifier, the audit log and the
console drop what they have already seen, so nobody is paged twice.

State is per hazard source (the Kafka key), a JSON-able dict:
``{"alerts": {alert_id: snapshot}, "keys": {alert key: alert_id}, "suppressed": None | {...}, "recent": [ids]}``.
Closed alerts leave the state; their history lives in the audit log.
"""

from __future__ import annotations

import copy
from typing import Any

from alerts import escalation as esc_rules
from alerts.model import (
    ACKED,
    COMMANDS,
    LATCHED,
    NORMAL,
    RTN_UNACK,
    SOURCE_COMMANDS,
    TIERS,
    UNACK,
    alert_key,
    category_of,
    event_id,
    page_id,
)
from alerts.records import alert_record
from hazardwatch.duty import LevelPolicy
from hazardwatch.registry import LEVEL_NAMES, Registry

_RECENT = 512  # detection ids remembered per source: a replay after a crash is recognised, not re-applied


def _state_of(active: bool, acked: bool, latched: bool) -> str:
    if active:
        return ACKED if acked else UNACK
    if not acked:
        return RTN_UNACK
    return LATCHED if latched else NORMAL


class AlertManager:
    def __init__(self, registry: Registry):
        self.reg = registry
        self.policy = registry.duty.policy
        self.sources: dict[str, dict[str, Any]] = {}

    # ---- state ------------------------------------------------------------------------------------------
    def import_source(self, source: str, saved: dict[str, Any] | None) -> None:
        self.sources[source] = copy.deepcopy(saved) if saved else {"alerts": {}, "keys": {}, "suppressed": None,
                                                                    "recent": []}

    def export_source(self, source: str) -> dict[str, Any]:
        return copy.deepcopy(self._src(source))

    def _src(self, source: str) -> dict[str, Any]:
        if source not in self.sources:
            self.import_source(source, None)
        return self.sources[source]

    def open_alerts(self, source: str | None = None) -> list[dict[str, Any]]:
        srcs = [source] if source else list(self.sources)
        return [a for s in srcs for a in self._src(s)["alerts"].values()]

    def level_policy(self, alert: dict[str, Any]) -> LevelPolicy:
        return self.policy.for_alert(alert["level"], self.reg.sources[alert["source"]].grade)

    # ---- detections -------------------------------------------------------------------------------------
    def on_detection(self, det: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        st = self._src(det["source"])
        if det["id"] in st["recent"]:
            return []
        st["recent"] = [*st["recent"][-(_RECENT - 1):], det["id"]]
        rec = alert_record(det, self.reg)
        key = alert_key(det)
        aid = st["keys"].get(key)
        alert = st["alerts"].get(aid) if aid else None
        sub = det.get("limit") or ""
        eid = event_id("detection", det["id"])
        if det["state"] in ("raise", "realarm"):
            cond = {"level": int(det["level"]), "value": det["value"], "threshold": det["threshold"],
                    "since_ms": det.get("since_ms", det["ts_ms"])}
            if alert is None:
                return self._open(st, key, det, rec, cond, sub, eid, now_ms)
            return self._reactivate_or_update(alert, det, rec, cond, sub, eid, now_ms)
        if alert is None:
            return []  # a clear for an alert closed by a person (reset) or never opened here: nothing to do
        return self._condition_gone(st, alert, det, rec, sub, eid, now_ms)

    def _open(self, st: dict[str, Any], key: str, det: dict[str, Any], rec: dict[str, Any], cond: dict[str, Any],
              sub: str, eid: str, now_ms: int) -> list[dict[str, Any]]:
        src = self.reg.sources[det["source"]]
        aid = det["alert_id"]
        alert: dict[str, Any] = {
            "alert_id": aid, "key": key, "source": det["source"], "enterprise": src.enterprise,
            "district": self.reg.enterprises[src.enterprise].district, "sensor": det.get("group") or det["sensor"],
            "rule": det["rule"], "category": category_of(det), "level": int(det["level"]),
            "max_level": int(det["level"]), "state": UNACK, "active": True, "acked": False,
            "latching": self._latches(det), "conditions": {sub: cond},
            "shelved": None, "suppressed": st["suppressed"], "out_of_service": None,
            "raised_ms": now_ms, "updated_ms": now_ms, "rtn_ms": None, "closed_ms": None, "acked_ms": None,
            "acked_by": None, "comments": 0, "escalation": esc_rules.new_state(), **self._texts(det, rec),
        }
        st["alerts"][aid] = alert
        st["keys"][key] = aid
        paged = self._page_now(alert, now_ms, "raise")  # first, so the transition's snapshot shows the schedule
        return [self._event("transition", "raise", alert, now_ms, eid, reason=rec["text_en"], from_state=NORMAL),
                *paged]

    def _reactivate_or_update(self, alert: dict[str, Any], det: dict[str, Any], rec: dict[str, Any],
                              cond: dict[str, Any], sub: str, eid: str, now_ms: int) -> list[dict[str, Any]]:
        before = alert["state"]
        was_active, old_level = alert["active"], alert["level"]
        alert["conditions"][sub] = cond
        alert["level"] = min(c["level"] for c in alert["conditions"].values())
        alert["max_level"] = min(alert["max_level"], alert["level"])
        alert["latching"] = alert["latching"] or det["state"] == "realarm"
        alert.update(active=True, updated_ms=now_ms, rtn_ms=None, **self._texts(det, rec))
        if not was_active:
            action = "realarm"
        elif alert["level"] < old_level:
            action = "upgrade"
        else:
            alert["state"] = _state_of(True, alert["acked"], alert["latching"])
            esc_rules.refresh_next(alert, self.level_policy(alert))
            return [self._event("transition", "condition", alert, now_ms, eid, reason=rec["text_en"],
                                from_state=before)]
        # A new excursion or a more severe one must be acknowledged again (ISA-18.2 re-alarm).
        alert.update(acked=False, state=UNACK, acked_by=None, acked_ms=None)
        alert["escalation"]["reescalate_ms"] = None
        paged = self._page_now(alert, now_ms, action)
        return [self._event("transition", action, alert, now_ms, eid, reason=rec["text_en"], from_state=before),
                *paged]

    def _condition_gone(self, st: dict[str, Any], alert: dict[str, Any], det: dict[str, Any], rec: dict[str, Any],
                        sub: str, eid: str, now_ms: int) -> list[dict[str, Any]]:
        before = alert["state"]
        alert["conditions"].pop(sub, None)
        alert["latching"] = alert["latching"] or det["state"] == "rtn"
        alert["updated_ms"] = now_ms
        if alert["conditions"]:
            old = alert["level"]
            alert["level"] = min(c["level"] for c in alert["conditions"].values())
            esc_rules.refresh_next(alert, self.level_policy(alert))
            action = "downgrade" if alert["level"] != old else "condition"
            return [self._event("transition", action, alert, now_ms, eid, reason=rec["text_en"], from_state=before)]
        alert.update(active=False, rtn_ms=now_ms, state=_state_of(False, alert["acked"], alert["latching"]),
                     last_text_zh=rec["text_zh"], last_text_en=rec["text_en"])
        alert["escalation"].update(next_ms=None, reescalate_ms=None, stopped="returned to normal")
        action = "rtn" if alert["state"] in (RTN_UNACK, LATCHED) else "clear"
        out = [self._event("transition", action, alert, now_ms, eid, reason=rec["text_en"], from_state=before)]
        out += self._cleared_notice(alert, rec, now_ms)
        if alert["state"] == NORMAL:
            out.append(self._close(st, alert, now_ms, "returned to normal after acknowledgement"))
        return out

    def _latches(self, det: dict[str, Any]) -> bool:
        if det["state"] in ("realarm", "rtn"):
            return True
        if det["rule"] != "limit" or det["sensor"] not in self.reg.sensors:
            return False
        return any(lim.name == det.get("limit") and lim.latching for lim in self.reg.sensors[det["sensor"]].limits)

    def _texts(self, det: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
        return {"value": det["value"], "threshold": det["threshold"], "unit": det.get("unit", ""),
                "clause": det.get("clause", ""), "ts_ms": det["ts_ms"], "text_zh": rec["text_zh"],
                "text_en": rec["text_en"], "rule_version": det.get("detector_version", "")}

    def _close(self, st: dict[str, Any], alert: dict[str, Any], now_ms: int, why: str) -> dict[str, Any]:
        before = alert["state"]
        alert.update(state=NORMAL, closed_ms=now_ms)
        alert["escalation"].update(next_ms=None, reescalate_ms=None, stopped=alert["escalation"]["stopped"] or why)
        st["alerts"].pop(alert["alert_id"], None)
        if st["keys"].get(alert["key"]) == alert["alert_id"]:
            del st["keys"][alert["key"]]
        return self._event("transition", "close", alert, now_ms, event_id("close", alert["alert_id"]), reason=why,
                           from_state=before)

    # ---- commands ---------------------------------------------------------------------------------------
    def on_command(self, cmd: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        """Apply a person's command. A refused command is itself an event: the log shows who tried what."""
        action = cmd.get("action")
        source = cmd.get("source", "")
        eid = event_id("command", cmd.get("command_id", ""))
        st = self._src(source)
        if cmd.get("command_id") in st["recent"]:
            return []
        st["recent"] = [*st["recent"][-(_RECENT - 1):], cmd.get("command_id")]
        if action not in COMMANDS:
            return [self._rejected(cmd, now_ms, eid, f"unknown command {action!r}")]
        if source not in self.reg.sources:
            return [self._rejected(cmd, now_ms, eid, f"unknown hazard source {source!r}")]
        if action in SOURCE_COMMANDS:
            return self._source_command(st, cmd, now_ms, eid)
        alert = st["alerts"].get(cmd.get("alert_id") or "")
        if alert is None:
            return [self._rejected(cmd, now_ms, eid, "no open alert with this id at this source (closed already?)")]
        handler = getattr(self, f"_cmd_{action}")
        return handler(st, alert, cmd, now_ms, eid)

    def _rejected(self, cmd: dict[str, Any], now_ms: int, eid: str, why: str,
                  alert: dict[str, Any] | None = None) -> dict[str, Any]:
        ev = self._event("rejected", str(cmd.get("action")), alert, now_ms, eid, actor=str(cmd.get("user", "?")),
                         reason=why, source=cmd.get("source", ""))
        ev["alert_id"] = cmd.get("alert_id")
        ev["command"] = {k: cmd.get(k) for k in ("command_id", "action", "alert_id", "user", "role", "reason")}
        return ev

    def _cmd_event(self, action: str, alert: dict[str, Any], cmd: dict[str, Any], now_ms: int, eid: str,
                   before: str) -> dict[str, Any]:
        alert["updated_ms"] = now_ms
        ev = self._event("command", action, alert, now_ms, eid, actor=cmd["user"],
                         reason=str(cmd.get("reason") or ""), from_state=before)
        ev["command"] = {k: cmd.get(k) for k in ("command_id", "user", "role", "reason", "duration_s",
                                                 "authorised_by")}
        return ev

    def _cmd_ack(self, st: dict, alert: dict, cmd: dict, now_ms: int, eid: str) -> list[dict[str, Any]]:
        before = alert["state"]
        if before not in (UNACK, RTN_UNACK):
            return [self._rejected(cmd, now_ms, eid, f"cannot acknowledge: the alert is {before}", alert)]
        alert.update(acked=True, acked_by=cmd["user"], acked_ms=now_ms,
                     state=_state_of(alert["active"], True, alert["latching"]))
        esc = alert["escalation"]
        if alert["active"]:
            esc["reescalate_ms"] = now_ms + int(self.level_policy(alert).reescalate_s * 1000)
        esc["stopped"] = f"acknowledged by {cmd['user']}"
        esc_rules.refresh_next(alert, self.level_policy(alert))
        out = [self._cmd_event("ack", alert, cmd, now_ms, eid, before)]
        if alert["state"] == NORMAL:
            out.append(self._close(st, alert, now_ms, f"acknowledged by {cmd['user']} after returning to normal"))
        return out

    def _cmd_reset(self, st: dict, alert: dict, cmd: dict, now_ms: int, eid: str) -> list[dict[str, Any]]:
        before = alert["state"]
        if alert["active"]:
            return [self._rejected(cmd, now_ms, eid, "cannot reset: the condition is still present; reset only "
                                   "after the value has returned to normal", alert)]
        if not alert["latching"]:
            return [self._rejected(cmd, now_ms, eid, "this alert does not latch; acknowledge it instead", alert)]
        alert.update(acked=True, acked_by=alert["acked_by"] or cmd["user"], acked_ms=alert["acked_ms"] or now_ms)
        ev = self._cmd_event("reset", alert, cmd, now_ms, eid, before)
        return [ev, self._close(st, alert, now_ms, f"reset by {cmd['user']}")]

    def _cmd_comment(self, st: dict, alert: dict, cmd: dict, now_ms: int, eid: str) -> list[dict[str, Any]]:
        if not str(cmd.get("reason") or "").strip():
            return [self._rejected(cmd, now_ms, eid, "a comment needs text", alert)]
        alert["comments"] += 1
        return [self._cmd_event("comment", alert, cmd, now_ms, eid, alert["state"])]

    def _cmd_shelve(self, st: dict, alert: dict, cmd: dict, now_ms: int, eid: str) -> list[dict[str, Any]]:
        dur = cmd.get("duration_s")
        limit = self.policy.max_shelve_s
        if alert["level"] == 1:
            # Shelving is for nuisance alarms; a red alert is never hidden by one person (take it out of
            # service with a second person's authorisation instead).
            return [self._rejected(cmd, now_ms, eid, "a level 1 (red) alert cannot be shelved; use out of "
                                   "service with authorisation", alert)]
        if not isinstance(dur, int | float) or isinstance(dur, bool) or not 60 <= dur <= limit:
            return [self._rejected(cmd, now_ms, eid, f"shelve duration must be 60..{limit:.0f} s", alert)]
        if not str(cmd.get("reason") or "").strip():
            return [self._rejected(cmd, now_ms, eid, "shelving needs a reason", alert)]
        alert["shelved"] = {"by": cmd["user"], "until_ms": now_ms + int(dur * 1000), "reason": cmd["reason"],
                            "at_ms": now_ms}
        alert["escalation"]["next_ms"] = None
        return [self._cmd_event("shelve", alert, cmd, now_ms, eid, alert["state"])]

    def _cmd_unshelve(self, st: dict, alert: dict, cmd: dict, now_ms: int, eid: str) -> list[dict[str, Any]]:
        if not alert["shelved"]:
            return [self._rejected(cmd, now_ms, eid, "the alert is not shelved", alert)]
        alert["shelved"] = None
        return [self._cmd_event("unshelve", alert, cmd, now_ms, eid, alert["state"]),
                *self._resume(alert, now_ms, "unshelve")]

    def _cmd_oos(self, st: dict, alert: dict, cmd: dict, now_ms: int, eid: str) -> list[dict[str, Any]]:
        auth = str(cmd.get("authorised_by") or "").strip()
        if not auth or auth == cmd["user"]:
            return [self._rejected(cmd, now_ms, eid, "out of service needs authorisation by a second person "
                                   "(authorised_by)", alert)]
        if not str(cmd.get("reason") or "").strip():
            return [self._rejected(cmd, now_ms, eid, "out of service needs a reason (work order)", alert)]
        alert["out_of_service"] = {"by": cmd["user"], "authorised_by": auth, "reason": cmd["reason"],
                                   "at_ms": now_ms}
        alert["escalation"]["next_ms"] = None
        return [self._cmd_event("oos", alert, cmd, now_ms, eid, alert["state"])]

    def _cmd_return_to_service(self, st: dict, alert: dict, cmd: dict, now_ms: int, eid: str) -> list[dict]:
        if not alert["out_of_service"]:
            return [self._rejected(cmd, now_ms, eid, "the alert is not out of service", alert)]
        alert["out_of_service"] = None
        return [self._cmd_event("return_to_service", alert, cmd, now_ms, eid, alert["state"]),
                *self._resume(alert, now_ms, "return_to_service")]

    def _cmd_escalate(self, st: dict, alert: dict, cmd: dict, now_ms: int, eid: str) -> list[dict[str, Any]]:
        esc = alert["escalation"]
        if esc["tier"] >= len(TIERS) - 1:
            return [self._rejected(cmd, now_ms, eid, "already at the municipal command centre", alert)]
        ev = self._cmd_event("escalate", alert, cmd, now_ms, eid, alert["state"])
        tier = esc["tier"] + 1
        esc_rules.enter_tier(esc, tier, now_ms, now_ms)
        esc_rules.refresh_next(alert, self.level_policy(alert))
        why = (f"由 {cmd['user']} 手动升级：{cmd.get('reason') or ''}", f"escalated by {cmd['user']}: "
               f"{cmd.get('reason') or ''}")
        return [ev, self._page(alert, tier, 0, "alert", now_ms, "manual_escalate", why)]

    def _source_command(self, st: dict[str, Any], cmd: dict[str, Any], now_ms: int, eid: str) -> list[dict]:
        action = cmd["action"]
        if action == "suppress":
            if not str(cmd.get("reason") or "").strip():
                return [self._rejected(cmd, now_ms, eid, "maintenance suppression needs a reason (work order)")]
            st["suppressed"] = {"by": cmd["user"], "reason": cmd["reason"], "at_ms": now_ms}
        elif not st["suppressed"]:
            return [self._rejected(cmd, now_ms, eid, "the source is not suppressed")]
        else:
            st["suppressed"] = None
        out = [self._event("command", action, None, now_ms, eid, actor=cmd["user"], reason=str(cmd.get("reason")
                                                                                                  or ""),
                           source=cmd["source"])]
        for n, alert in enumerate(list(st["alerts"].values())):
            alert["suppressed"] = st["suppressed"]
            alert["updated_ms"] = now_ms
            sub_eid = event_id("command", cmd["command_id"], n)
            out.append(self._event("command", action, alert, now_ms, sub_eid, actor=cmd["user"],
                                   reason=str(cmd.get("reason") or "")))
            if action == "unsuppress":
                out += self._resume(alert, now_ms, "unsuppress")
            else:
                alert["escalation"]["next_ms"] = None
        return out

    # ---- clock --------------------------------------------------------------------------------------------
    def tick(self, now_ms: int, sources: list[str] | None = None) -> list[dict[str, Any]]:
        """Everything the clock makes due: auto-unshelve, repeats, escalations, re-escalations."""
        out: list[dict[str, Any]] = []
        for src in sources if sources is not None else list(self.sources):
            for alert in list(self._src(src)["alerts"].values()):
                out += self._tick_alert(alert, now_ms)
        return out

    def _tick_alert(self, alert: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        shelf = alert["shelved"]
        if shelf and shelf["until_ms"] <= now_ms:
            alert["shelved"] = None
            alert["updated_ms"] = now_ms
            out.append(self._event("command", "auto_unshelve", alert, now_ms,
                                   event_id("unshelve", alert["alert_id"], shelf["at_ms"]),
                                   reason=f"shelved by {shelf['by']} until {shelf['until_ms']}: time is up"))
            out += self._resume(alert, now_ms, "auto_unshelve")
        lp = self.level_policy(alert)
        for _ in range(len(TIERS) * 2 + 2):  # each step raises the tier or moves the next one past now
            step = esc_rules.next_step(alert, lp, now_ms)
            if step is None or step.due_ms > now_ms:
                break
            out += self._apply_step(alert, step, now_ms, lp)
            lp = self.level_policy(alert)
        esc_rules.refresh_next(alert, lp)
        return out

    def _apply_step(self, alert: dict[str, Any], step: esc_rules.Step, now_ms: int,
                    lp: LevelPolicy) -> list[dict[str, Any]]:
        esc = alert["escalation"]
        alert["updated_ms"] = now_ms
        if step.kind == esc_rules.REPEAT:
            esc["repeat"] += 1
            esc["last_page_ms"] = now_ms
            mins = lp.repeat_s / 60
            why = (f"{mins:g} 分钟内未确认，重复通知", f"not acknowledged within {mins:g} min; paging again")
            return [self._page(alert, esc["tier"], esc["repeat"], "alert", now_ms, "repeat", why)]
        if step.kind == esc_rules.ESCALATE:
            prev = esc["tier"]
            esc_rules.enter_tier(esc, prev + 1, step.due_ms, now_ms)
            zh_prev, en_prev = esc_rules.describe(prev)
            mins = lp.deadlines_s[prev] / 60
            why = (f"{zh_prev} {mins:g} 分钟内未确认，已升级", f"{en_prev} did not acknowledge within {mins:g} min; "
                   "escalated")
            return [self._page(alert, prev + 1, 0, "alert", now_ms, "escalate", why)]
        # Re-escalation: acknowledged but the condition is still there after the allowed time.
        before = alert["state"]
        ack_by = alert["acked_by"]
        alert.update(acked=False, state=UNACK, acked_ms=None, acked_by=None)
        esc["reescalate_ms"] = None
        tier = min(max(esc["tier"], 0) + 1, len(TIERS) - 1)
        esc_rules.enter_tier(esc, tier, now_ms, now_ms)
        mins = lp.reescalate_s / 60
        why = (f"{ack_by} 确认后 {mins:g} 分钟仍未消除，重新升级", f"acknowledged by {ack_by} but still active after "
               f"{mins:g} min; re-escalated")
        ev = self._event("transition", "reescalate", alert, now_ms, event_id("reescalate", alert["alert_id"],
                                                                              step.due_ms),
                         reason=why[1], from_state=before)
        return [ev, self._page(alert, tier, 0, "alert", now_ms, "reescalate", why)]

    # ---- paging ------------------------------------------------------------------------------------------
    def _page_now(self, alert: dict[str, Any], now_ms: int, cause: str) -> list[dict[str, Any]]:
        """Page on a raise, re-alarm or upgrade: tier 0 first, or the tier already reached, again."""
        if esc_rules.paging_blocked(alert):
            alert["escalation"]["stopped"] = esc_rules.paging_blocked(alert)
            return []
        esc = alert["escalation"]
        if esc["tier"] < 0:
            esc_rules.enter_tier(esc, 0, now_ms, now_ms)
            ev = self._page(alert, 0, 0, "alert", now_ms, "notify", ("新报警", "new alert"))
        else:
            esc.update(repeat=esc["repeat"] + 1, last_page_ms=now_ms, tier_since_ms=now_ms, stopped=None)
            why = {"realarm": ("报警再次触发", "the condition came back"),
                   "upgrade": ("报警升级为更高级别", "the alert rose to a more severe level")}.get(cause,
                                                                                                (cause, cause))
            ev = self._page(alert, esc["tier"], esc["repeat"], "alert", now_ms, cause, why)
        esc_rules.refresh_next(alert, self.level_policy(alert))
        return [ev]

    def _resume(self, alert: dict[str, Any], now_ms: int, cause: str) -> list[dict[str, Any]]:
        """Paging allowed again (unshelved, maintenance over, back in service): an unacknowledged alert pages."""
        if esc_rules.paging_blocked(alert):
            return []
        alert["escalation"]["stopped"] = None
        if alert["state"] != UNACK:
            esc_rules.refresh_next(alert, self.level_policy(alert))
            return []
        return self._page_now(alert, now_ms, cause)

    def _cleared_notice(self, alert: dict[str, Any], rec: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        """Everyone whose phone rang hears that it is over (the control room sees it on the console anyway)."""
        esc = alert["escalation"]
        if esc_rules.paging_blocked(alert) or esc["tier"] < 1:
            return []
        why = ("报警已恢复正常", "the alert returned to normal")
        return [self._page(alert, t, 0, "cleared", now_ms, "cleared_notice", why, text=(rec["text_zh"],
                                                                                         rec["text_en"]))
                for t in esc["paged"] if t >= 1]

    def _page(self, alert: dict[str, Any], tier: int, repeat: int, purpose: str, now_ms: int, action: str,
              why: tuple[str, str], text: tuple[str, str] | None = None) -> dict[str, Any]:
        contacts = self.reg.duty.tier(tier, alert["source"], alert["enterprise"], alert["district"])
        _, colour_zh, lvl_en, colour_en = LEVEL_NAMES[alert["level"]]
        tier_zh, tier_en = esc_rules.describe(tier)
        if purpose == "cleared":
            title_zh, title_en = "【预警解除】", "[CLEARED]"
        else:
            title_zh, title_en = f"【{colour_zh}预警】", f"[{colour_en.upper()} {lvl_en}]"
        body_zh, body_en = text or (alert["text_zh"], alert["text_en"])
        pid = page_id(alert["alert_id"], tier, repeat, purpose)
        page = {"page_id": pid, "alert_id": alert["alert_id"], "tier": tier, "tier_name": TIERS[tier],
                "repeat": repeat, "purpose": purpose, "level": alert["level"], "colour": colour_en,
                "title_zh": title_zh, "title_en": title_en,
                "text_zh": f"{body_zh}（通知：{tier_zh}；{why[0]}）",
                "text_en": f"{body_en} (to: {tier_en}; {why[1]})",
                "recipients": [c.as_recipient() for c in contacts],
                "mentions": [c.phone for c in contacts if c.phone]}
        ev = self._event("page", action, alert, now_ms, event_id("page", pid), reason=why[1])
        ev["page"] = page
        return ev

    # ---- events -------------------------------------------------------------------------------------------
    def _event(self, kind: str, action: str, alert: dict[str, Any] | None, now_ms: int, eid: str,
               actor: str = "system", reason: str = "", from_state: str | None = None,
               source: str | None = None) -> dict[str, Any]:
        src = alert["source"] if alert else source or ""
        ent = self.reg.sources[src].enterprise if src in self.reg.sources else ""
        return {"event_id": eid, "kind": kind, "action": action, "ts_ms": now_ms, "actor": actor, "reason": reason,
                "rule_version": alert.get("rule_version", "") if alert else "", "source": src, "enterprise": ent,
                "district": self.reg.enterprises[ent].district if ent else "",
                "alert_id": alert["alert_id"] if alert else None,
                "alert": copy.deepcopy(alert) if alert else None, "from_state": from_state,
                "to_state": alert["state"] if alert else None, "page": None, "notify": None, "flood": None}
