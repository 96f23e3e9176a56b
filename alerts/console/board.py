"""What the console shows: the latest snapshot of every alert, recent events, floods, and scoped live pushes.

Fed from the alert-events topic, which is read from the beginning on every start, so the board is rebuilt from
the log and needs no store of its own. Replayed events (same event_id) are dropped. Every push is filtered by the
subscriber's scope here, and the web layer checks it again before writing it out.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from alerts.console.users import User, can_see_alert, can_see_source
from alerts.model import NORMAL
from hazardwatch.registry import Registry

# Event fields a timeline needs. Addresses (phone numbers, e-mail) are left out: the names say who was paged.
_SUMMARY_KEYS = ("event_id", "kind", "action", "ts_ms", "actor", "reason", "from_state", "to_state", "alert_id",
                 "source", "enterprise", "district")


def summarise(event: dict[str, Any]) -> dict[str, Any]:
    out = {k: event.get(k) for k in _SUMMARY_KEYS}
    page = event.get("page") or {}
    if page:
        out["page"] = {"tier": page.get("tier"), "tier_name": page.get("tier_name"), "repeat": page.get("repeat"),
                       "purpose": page.get("purpose"),
                       "recipients": [r.get("name") for r in page.get("recipients") or [] if isinstance(r, dict)]}
    notify = event.get("notify") or {}
    if notify:
        out["notify"] = {k: notify.get(k) for k in ("channel", "recipient", "attempt", "ok", "status", "error",
                                                    "fallback_of")}
    return out


def _active_level(snap: dict[str, Any]) -> int | None:
    """A source's map colour counts active alerts, shelved or suppressed ones too (the hazard is real), but not
    out-of-service ones: their instrument is known to be broken, its value says nothing about the plant."""
    if not snap.get("active") or snap.get("out_of_service"):
        return None
    lvl = snap.get("level")
    return lvl if isinstance(lvl, int) else None


class _Subscriber:
    __slots__ = ("queue", "user")

    def __init__(self, user: User, queue: asyncio.Queue[dict[str, Any]]):
        self.user = user
        self.queue = queue


class AlertBoard:
    def __init__(self, registry: Registry, *, max_floods: int = 20, timeline_len: int = 50, max_closed: int = 2000,
                 max_seen: int = 200_000, queue_size: int = 1000):
        self.registry = registry
        self.max_closed = max_closed
        self.queue_size = queue_size
        self._alerts: dict[str, dict[str, Any]] = {}
        self._by_source: dict[str, set[str]] = {}
        self._timeline: dict[str, deque[dict[str, Any]]] = {}
        self._timeline_len = timeline_len
        self._floods: deque[dict[str, Any]] = deque(maxlen=max_floods)
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._max_seen = max_seen
        self._closed: deque[str] = deque()  # alert ids in the order they closed, oldest first
        self._subs: dict[int, _Subscriber] = {}

    # ---- feeding ---------------------------------------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> bool:
        """Take one alert-events message. False when it was a replay (seen event_id) or not an event at all."""
        if not isinstance(event, dict):
            return False
        eid = event.get("event_id")
        if isinstance(eid, str):
            if eid in self._seen:
                return False
            self._remember(eid)
        snap = event.get("alert") if isinstance(event.get("alert"), dict) else None
        alert_id = event.get("alert_id") or (snap or {}).get("alert_id")
        if snap is not None and snap.get("alert_id"):
            self._store(snap)
        summary = summarise(event)
        if alert_id:
            self._timeline.setdefault(alert_id, deque(maxlen=self._timeline_len)).append(summary)
        if event.get("kind") == "flood" and isinstance(event.get("flood"), dict):
            flood = {**event["flood"], "event_id": eid, "ts_ms": event.get("ts_ms"),
                     "source": event.get("source"), "district": event.get("district"),
                     "enterprise": event.get("enterprise") or event["flood"].get("position")}
            self._floods.append(flood)
            self._publish(flood, {"type": "flood", "flood": flood})
        else:
            self._publish(event, None, alert_id, summary)
        return True

    def extend(self, events: Iterable[dict[str, Any]]) -> int:
        return sum(self.apply(e) for e in events)

    def _remember(self, eid: str) -> None:
        self._seen.add(eid)
        self._seen_order.append(eid)
        # Bounded: a replay is always recent (a restart re-reads from where it was), so old ids can be forgotten.
        while len(self._seen_order) > self._max_seen:
            self._seen.discard(self._seen_order.popleft())

    def _store(self, snap: dict[str, Any]) -> None:
        aid = snap["alert_id"]
        old = self._alerts.get(aid)
        # The events topic has one total order, but a notifier may echo a snapshot older than a later command's.
        if old is not None and (snap.get("updated_ms") or 0) < (old.get("updated_ms") or 0):
            return
        self._alerts[aid] = snap
        if old is not None and old.get("source") != snap.get("source"):
            self._by_source.get(str(old.get("source")), set()).discard(aid)
        self._by_source.setdefault(str(snap.get("source")), set()).add(aid)
        if snap.get("state") == NORMAL and (old is None or old.get("state") != NORMAL):
            self._closed.append(aid)
            self._prune()

    def _prune(self) -> None:
        while len(self._closed) > self.max_closed:
            aid = self._closed.popleft()
            snap = self._alerts.get(aid)
            if snap is None or snap.get("state") != NORMAL:
                continue  # re-opened since it closed
            del self._alerts[aid]
            self._timeline.pop(aid, None)
            self._by_source.get(str(snap.get("source")), set()).discard(aid)

    # ---- reading ----------------------------------------------------------------------------------------
    def get(self, alert_id: str) -> dict[str, Any] | None:
        return self._alerts.get(alert_id)

    def timeline(self, alert_id: str) -> list[dict[str, Any]]:
        return list(self._timeline.get(alert_id, ()))

    def visible(self, user: User) -> list[dict[str, Any]]:
        rows = [a for a in self._alerts.values() if can_see_alert(user, self.registry, a)]
        rows.sort(key=lambda a: (a.get("state") == NORMAL, a.get("level") or 9, -(a.get("raised_ms") or 0)))
        return rows

    def floods(self, user: User) -> list[dict[str, Any]]:
        return [f for f in self._floods if can_see_alert(user, self.registry, f)]

    def source_level(self, source: str) -> int | None:
        alerts = (self._alerts.get(aid) for aid in self._by_source.get(source, ()))
        levels = [lvl for a in alerts if a is not None and (lvl := _active_level(a))]
        return min(levels) if levels else None  # 1 is the most severe

    def source_levels(self, user: User) -> dict[str, int | None]:
        return {sid: self.source_level(sid) for sid in self.registry.sources
                if can_see_source(user, self.registry, sid)}

    # ---- live pushes ------------------------------------------------------------------------------------
    def subscribe(self, user: User) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_size)
        self._subs[id(q)] = _Subscriber(user, q)
        return q

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subs.pop(id(queue), None)

    def close_all(self) -> None:
        """Tell every stream to end (server shutdown)."""
        for sub in list(self._subs.values()):
            self._offer(sub, {"type": "close"})

    def _publish(self, item: dict[str, Any], message: dict[str, Any] | None, alert_id: str | None = None,
                 summary: dict[str, Any] | None = None) -> None:
        if not self._subs:
            return
        if message is None:
            snap = self._alerts.get(alert_id) if alert_id else None
            source = (snap or item).get("source")
            message = {"type": "event", "event": summary, "alert": snap, "source": source,
                       "source_level": self.source_level(str(source))}
        for sub in list(self._subs.values()):
            if can_see_alert(sub.user, self.registry, item):
                self._offer(sub, message)

    def _offer(self, sub: _Subscriber, message: dict[str, Any]) -> None:
        try:
            sub.queue.put_nowait(message)
        except asyncio.QueueFull:
            # A stalled browser must not hold memory or slow the feed: drop its backlog, ask it to reload state.
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait({"type": "resync"})
