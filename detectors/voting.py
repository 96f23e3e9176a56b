"""Multi-detector voting (k-out-of-n confirmation) for gas detection, vectorised over groups and snapshots.

GB 16808-2025 (in force 2026-08-01) adds confirmation of a gas alarm by two or more detectors. A voting group is
a set of detector slots with a k-out-of-n spec (1oo2, 2oo3, ...); the group is *confirmed* when at least k of
its voters are in alarm.

Degraded voting rule (hazardwatch's choice, conservative; verify with the site's safety case):
- A voter is *healthy* when it is online and its reading is trustworthy. An unhealthy voter's alarm flag is
  ignored (it cannot be trusted either way) and the voter instead counts as a vote *for* alarm, the fail-safe
  default of safety voting (IEC 61511 practice): 2oo3 with one voter offline behaves as 1oo2, so a single
  remaining detector in alarm confirms. Missing a real release is worse than an early confirmation, and a
  detector that cannot see must not be assumed to see clean air.
- At least one healthy voter must actually be in alarm: offline voters alone never confirm a gas release (a
  network outage is not a leak). The outage itself is reported by the two conditions below, which are alarms
  in their own right (a sensor that stops reporting is itself an alarm).
- Equivalently: k_eff = max(1, k - n_offline) and confirmed = n_alarm >= k_eff, with n_alarm counted over
  healthy voters only.
- *degraded*: at least one voter is unhealthy (n_healthy < n).
- *unavailable*: fewer than two healthy voters remain (n_healthy < 2), so no confirmation by two detectors is
  possible any more; a single remaining detector in alarm still confirms on its own (1oo1), by the rule above.

Confirmation here is a computed condition that clears when the votes drop; the GB 16808 latch (alarm stays
until a person resets it) belongs to the alarm layer, as for limit alarms.

Input is one snapshot (alarm[slots], healthy[slots]) or a sequence of them (alarm[times, slots]) with a
timestamp per snapshot. Snapshots not newer than the last one evaluated for a group are ignored for that group,
so the events are the same however a sequence of snapshots is cut into calls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CLAUSE_GB16808 = "GB 16808-2025 (confirmation by two or more detectors; in force 2026-08-01)"
DEGRADED_RULE = ("hazardwatch degraded voting: an unhealthy voter counts as a vote for alarm, k_eff = max(1, k - "
                 "offline); unavailable when fewer than 2 healthy voters (conservative; verify with site)")
# Kinds of condition a group raises and clears.
CONFIRMED, DEGRADED, UNAVAILABLE = 0, 1, 2
KIND_NAMES = ("confirmed", "degraded", "unavailable")
_MIN_TS = np.iinfo(np.int64).min
_KOON = re.compile(r"^\s*(\d+)\s*oo\s*(\d+)\s*$", re.IGNORECASE)


def parse_koon(spec: str) -> tuple[int, int]:
    """'2oo3' -> (2, 3). Raises ValueError for anything that is not 1 <= k <= n."""
    m = _KOON.match(spec)
    if not m:
        raise ValueError(f"voting spec {spec!r} is not of the form 'KooN', e.g. '2oo3'")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise ValueError(f"voting spec {spec!r}: need 1 <= k <= n")
    return k, n


@dataclass(frozen=True)
class VotingGroups:
    """Static configuration: which slot votes in which group, and each group's k-out-of-n."""

    group_of_slot: np.ndarray  # int64 [slots], -1 for a slot that votes nowhere
    k: np.ndarray  # int64 [groups]
    n: np.ndarray  # int64 [groups]: configured voters, equal to the slots assigned to the group
    clause: tuple[str, ...]  # per group: where its k comes from

    @property
    def n_groups(self) -> int:
        return len(self.k)

    @classmethod
    def build(cls, group_of_slot: np.ndarray | Sequence[int], specs: Sequence[str],
              clause: str | Sequence[str] = CLAUSE_GB16808) -> VotingGroups:
        """Validate that each group has exactly n member slots; a mismatch is a configuration error."""
        gos = np.asarray(group_of_slot, dtype=np.int64)
        kn = np.array([parse_koon(s) for s in specs], dtype=np.int64).reshape(-1, 2)
        n_groups = len(kn)
        if gos.size and (gos.min() < -1 or gos.max() >= n_groups):
            raise ValueError("group_of_slot refers to a group without a voting spec")
        members = np.bincount(gos[gos >= 0], minlength=n_groups)
        bad = np.flatnonzero(members != kn[:, 1])
        if bad.size:
            g = int(bad[0])
            raise ValueError(f"voting group {g} is {specs[g]} but has {int(members[g])} member slots")
        clauses = (clause,) * n_groups if isinstance(clause, str) else tuple(clause)
        if len(clauses) != n_groups:
            raise ValueError("one clause per voting group")
        return cls(gos, kn[:, 0].copy(), kn[:, 1].copy(), clauses)


@dataclass(frozen=True)
class VotingState:
    active: np.ndarray  # bool [groups, 3]: confirmed, degraded, unavailable
    since_ms: np.ndarray  # int64 [groups, 3]: when the active condition was raised (part of its id)
    last_ts_ms: np.ndarray  # int64 [groups]: newest snapshot evaluated

    @classmethod
    def empty(cls, n_groups: int) -> VotingState:
        return cls(np.zeros((n_groups, 3), dtype=bool), np.zeros((n_groups, 3), dtype=np.int64),
                   np.full(n_groups, _MIN_TS, dtype=np.int64))


@dataclass(frozen=True)
class VotingStatus:
    """Per snapshot and group ([times, groups], or [groups] for a single snapshot)."""

    group: np.ndarray  # int64 [groups]
    confirmed: np.ndarray
    degraded: np.ndarray
    unavailable: np.ndarray
    n_alarm: np.ndarray  # healthy voters in alarm
    n_healthy: np.ndarray
    k_eff: np.ndarray  # votes needed after degradation
    evaluated: np.ndarray  # False where the snapshot was not newer than the group's last one (status carried)


@dataclass(frozen=True)
class VotingEvents:
    """One row per transition. raised=True: the condition became active; False: it cleared."""

    group: np.ndarray
    kind: np.ndarray  # CONFIRMED / DEGRADED / UNAVAILABLE
    raised: np.ndarray
    ts_ms: np.ndarray
    n_alarm: np.ndarray
    n_healthy: np.ndarray
    k_eff: np.ndarray
    since_ms: np.ndarray  # raise time of the condition this event belongs to

    def __len__(self) -> int:
        return len(self.group)


def evaluate_voting(state: VotingState, groups: VotingGroups, alarm: np.ndarray, healthy: np.ndarray,
                    ts_ms: np.ndarray | int) -> tuple[VotingState, VotingStatus, VotingEvents]:
    """Return (new state, status per snapshot and group, transition events in time order).

    alarm, healthy: bool [slots] with a scalar ts_ms, or bool [times, slots] with ts_ms [times] ascending.
    """
    single = np.ndim(alarm) == 1
    alarm2 = np.atleast_2d(np.asarray(alarm, dtype=bool))
    healthy2 = np.atleast_2d(np.asarray(healthy, dtype=bool))
    ts = np.atleast_1d(np.asarray(ts_ms, dtype=np.int64))
    n_t, n_slots = alarm2.shape
    if healthy2.shape != alarm2.shape or ts.shape != (n_t,) or n_slots != len(groups.group_of_slot):
        raise ValueError("alarm, healthy and ts_ms must agree with each other and with group_of_slot")
    n_g = groups.n_groups

    # Counts per (snapshot, group) in one bincount over a flattened (time, group) key.
    member = groups.group_of_slot >= 0
    g_of = groups.group_of_slot[member]
    key = (np.arange(n_t)[:, None] * n_g + g_of[None, :]).ravel()
    h = healthy2[:, member]
    n_alarm = np.bincount(key, weights=(alarm2[:, member] & h).ravel(), minlength=n_t * n_g)
    n_healthy = np.bincount(key, weights=h.ravel(), minlength=n_t * n_g)
    n_alarm = n_alarm.reshape(n_t, n_g).astype(np.int64)
    n_healthy = n_healthy.reshape(n_t, n_g).astype(np.int64)
    k_eff = np.maximum(1, groups.k[None, :] - (groups.n[None, :] - n_healthy))
    raw = np.stack([n_alarm >= k_eff, n_healthy < groups.n[None, :], n_healthy < 2], axis=-1)  # [t, g, 3]

    # A snapshot counts for a group only if newer than everything evaluated before it; otherwise the group's
    # previous status is carried (forward fill), so repeated or late snapshots cannot flip anything.
    prev_max = np.maximum.accumulate(np.r_[_MIN_TS, ts[:-1]])
    valid = (ts > prev_max)[:, None] & (ts[:, None] > state.last_ts_ms[None, :])  # [t, g]
    t_idx = np.arange(n_t)[:, None]
    g_idx = np.arange(n_g)[None, :]
    last_valid = np.maximum.accumulate(np.where(valid, t_idx, -1), axis=0)
    active = np.where((last_valid >= 0)[..., None], raw[np.maximum(last_valid, 0), g_idx],
                      state.active[None, :, :])
    prev = np.concatenate([state.active[None], active[:-1]], axis=0)
    raised = active & ~prev
    cleared = prev & ~active

    last_raise = np.maximum.accumulate(np.where(raised, t_idx[..., None], -1), axis=0)
    since = np.where(last_raise >= 0, ts[np.maximum(last_raise, 0)], state.since_ms[None])

    ev_t, ev_g, ev_k = np.nonzero(raised | cleared)  # row-major: time order, then group, then kind
    events = VotingEvents(
        group=ev_g.astype(np.int64), kind=ev_k.astype(np.int8), raised=raised[ev_t, ev_g, ev_k], ts_ms=ts[ev_t],
        n_alarm=n_alarm[ev_t, ev_g], n_healthy=n_healthy[ev_t, ev_g], k_eff=k_eff[ev_t, ev_g],
        since_ms=since[ev_t, ev_g, ev_k],
    )
    any_valid = last_valid[-1] >= 0
    new_last = np.where(any_valid, ts[np.maximum(last_valid[-1], 0)], state.last_ts_ms)
    new_state = VotingState(active[-1].copy(), since[-1].copy(), new_last)

    def out(a: np.ndarray) -> np.ndarray:
        return a[0] if single else a

    status = VotingStatus(
        group=np.arange(n_g, dtype=np.int64), confirmed=out(active[..., CONFIRMED]),
        degraded=out(active[..., DEGRADED]), unavailable=out(active[..., UNAVAILABLE]), n_alarm=out(n_alarm),
        n_healthy=out(n_healthy), k_eff=out(k_eff), evaluated=out(valid),
    )
    return new_state, status, events


def describe_event(groups: VotingGroups, events: VotingEvents, i: int) -> str:
    """One line for an alert text: what changed, the vote count, and where the rule comes from."""
    g, kind, up = int(events.group[i]), int(events.kind[i]), bool(events.raised[i])
    spec = f"{int(groups.k[g])}oo{int(groups.n[g])}"
    counts = (f"{int(events.n_alarm[i])} of {int(events.n_healthy[i])} healthy voters in alarm, "
              f"{int(events.k_eff[i])} needed")
    # A confirmation reached with fewer real votes than k rests on the degraded rule too: say so.
    if kind == CONFIRMED:
        clause = groups.clause[g] + ("; " + DEGRADED_RULE if int(events.k_eff[i]) < int(groups.k[g]) else "")
    else:
        clause = DEGRADED_RULE
    return f"group {g} ({spec}) {KIND_NAMES[kind]} {'raised' if up else 'cleared'}: {counts} [{clause}]"
