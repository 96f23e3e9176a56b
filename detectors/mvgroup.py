"""detectors.multivariate in the streaming engine: rows assembled from the reading stream, model learned online.

A *multivariate group* is an ordered list of sensor slots of one hazard source (its columns) scored together by
detectors.multivariate. The engine hands over flat readings (slot, ts_ms, value, quality) in arrival order, any
sensors interleaved and cut into batches anywhere; this module turns them into rows, learns the model from the
first complete rows and scores the rest. Everything is a pure function of (state, readings), like the other
detectors, and the output does not depend on where the batches are cut.

Row assembly. Gateways publish one payload per scan with one timestamp, so a row is the group's readings that share
the exact same ts_ms. A row is complete when every member has a usable reading at that ts (quality not Q_BAD and a
finite value: a bad or missing reading never completes a row; the model has no notion of a partial row). A payload
may be split over two batches, so incomplete rows wait in a small pending buffer in the state. The rules, applied
reading by reading in arrival order (the batch only decides how many readings are applied at once):

* The first reading of a (ts, member) wins; a repeated one is ignored.
* A row is processed at the reading that completes it. Processed rows must have increasing ts (the moving mean and
  the rate columns assume time order), so a reading whose ts is not newer than the last processed row can never be
  used: it is dropped on arrival and counted in ``late``, and pending rows older than a newly processed row are
  dropped with it (an out-of-order complete row is therefore never processed).
* The buffer holds at most ``max_pending`` timestamps (64): when a further one arrives, the oldest ts is dropped,
  and a reading for a ts older than a full buffer's is dropped on arrival (counted in ``late``). A member that
  stops reporting therefore costs a bounded buffer, not a growing one. Timestamps dropped before they completed are
  counted in ``incomplete``.

Because the rules are per reading, completion order is a property of the reading sequence, not of the batches: a
batch is evaluated as the reading-by-reading rules would have left it, with array operations (first arrival per
(ts, member) cell, completion = the last member's first arrival, running maxima for the last processed ts and a
running order statistic for the buffer bound). tests/unit/test_mvgroup.py checks this against a per-reading
reference and checks that any batch cuts give the same events and the same state.

Learning. The first ``train_rows`` processed rows of a group are its normal-operation sample: they are kept in the
state and, when the buffer is full, detectors.multivariate.fit() calibrates the model on them (the SKAB protocol:
first 400 rows). Nothing is scored before that; the row after the last train row is the first scored one, from
mv.initial_state(), exactly as a batch fit on the same rows would continue. A group whose model is lost (new
layout, no checkpoint) learns again from its next rows: the model is only as good as the operation it was shown,
which is why the registry asks for a deliberate train_rows.

Output: one event per change of a group's alarm (raise / clear), with the raise's ts as since_ms on both so the
alert id of a clear matches its raise; optionally the score and alarm of every scored row (for evaluation).
Checkpoints per group (export_group / import_group) are plain JSON values and round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors import multivariate as mv
from hazardwatch.model import Q_BAD

if TYPE_CHECKING:
    from hazardwatch.registry import Registry

MAX_PENDING = 64
THRESHOLD = 1.0  # mv scores are in units of the raise level
RAISE, CLEAR = 1, 0
_MIN_TS = np.iinfo(np.int64).min  # "no row processed yet"; also "no buffer floor"
_NEVER = np.iinfo(np.int64).max  # a cell with no reading yet
_BLOCK = 256  # new timestamps per step of the running order statistic (only for batches that can overflow)


# ---- static configuration -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupSpec:
    """One group as the caller describes it; MVGroups.build validates a list of them."""

    id: str
    slots: tuple[int, ...]  # member slots, in column order
    config: mv.Config = field(default_factory=mv.Config)
    train_rows: int = 400
    level: int = 3  # warning level of its alarm, 1 (red) .. 4 (blue)
    source: str = ""


@dataclass(frozen=True, eq=False)
class MVGroups:
    """Static parameters of all groups; one slot belongs to at most one group (its column is then unambiguous)."""

    ids: tuple[str, ...]
    sources: tuple[str, ...]
    members: tuple[np.ndarray, ...]  # int64 slots per group, column order
    configs: tuple[mv.Config, ...]
    train_rows: tuple[int, ...]
    levels: tuple[int, ...]
    group_of_slot: np.ndarray  # int64 [slots]: -1 for a slot in no group
    column_of_slot: np.ndarray  # int64 [slots]: column within its group, -1 for none
    max_pending: int = MAX_PENDING

    @property
    def n_groups(self) -> int:
        return len(self.ids)

    def of_source(self, source: str) -> list[int]:
        """Indices of the groups of one hazard source, in registry order (the checkpoint unit is the source)."""
        return [gi for gi, s in enumerate(self.sources) if s == source]

    def layout(self, gi: int) -> str:
        """What a checkpoint of group gi must match to be resumed: its id, columns, train size and config."""
        return (f"{self.ids[gi]}|cols={len(self.members[gi])}|train_rows={self.train_rows[gi]}|"
                f"max_pending={self.max_pending}|{self.configs[gi]!r}")

    @classmethod
    def build(cls, n_slots: int, specs: Sequence[GroupSpec], max_pending: int = MAX_PENDING) -> MVGroups:
        """Validate the groups against each other and the slot count; a problem is a configuration error."""
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        gos = np.full(n_slots, -1, dtype=np.int64)
        col = np.full(n_slots, -1, dtype=np.int64)
        seen: set[str] = set()
        for gi, g in enumerate(specs):
            if g.id in seen:
                raise ValueError(f"duplicate multivariate group id {g.id!r}")
            seen.add(g.id)
            slots = np.asarray(g.slots, dtype=np.int64)
            if slots.ndim != 1 or len(slots) < 1 or len(set(slots.tolist())) != len(slots):
                raise ValueError(f"group {g.id}: slots must be a non-empty list without repeats")
            if slots.min() < 0 or slots.max() >= n_slots:
                raise ValueError(f"group {g.id}: slot out of range 0..{n_slots - 1}")
            taken = slots[gos[slots] >= 0]
            if len(taken):
                raise ValueError(f"group {g.id}: slot {int(taken[0])} already belongs to another group")
            if any(not 0 <= c < len(slots) for c in g.config.rate_columns):
                raise ValueError(f"group {g.id}: rate_columns out of range 0..{len(slots) - 1}")
            need = min_train_rows(g.config)
            if g.train_rows < need:
                raise ValueError(f"group {g.id}: train_rows {g.train_rows} < {need} needed by window and lag")
            if not 1 <= g.level <= 4:
                raise ValueError(f"group {g.id}: level {g.level} is not 1..4")
            gos[slots] = gi
            col[slots] = np.arange(len(slots))
        return cls(tuple(g.id for g in specs), tuple(g.source for g in specs),
                   tuple(np.asarray(g.slots, dtype=np.int64) for g in specs), tuple(g.config for g in specs),
                   tuple(int(g.train_rows) for g in specs), tuple(int(g.level) for g in specs), gos, col, max_pending)

    @classmethod
    def from_registry(cls, reg: Registry, max_pending: int = MAX_PENDING) -> MVGroups:
        """Every source's `multivariate:` groups, sources in registry order."""
        specs = []
        for src in reg.sources.values():
            for g in src.multivariate:
                cfg = mv.Config(rate_columns=tuple(g.sensors.index(s) for s in g.rate_sensors), window=g.window,
                                lag=g.lag, feature_quantile=g.feature_quantile, on_factor=g.on_factor,
                                off_ratio=g.off_ratio, hold=g.hold)
                specs.append(GroupSpec(g.id, tuple(reg.sensors[s].slot for s in g.sensors), cfg, g.train_rows,
                                       g.level, src.id))
        return cls.build(len(reg.sensor_ids), specs, max_pending)


def min_train_rows(config: mv.Config) -> int:
    """Fewest train rows mv.fit accepts with this window and lag."""
    return config.lag + config.window - 1 + 10


# ---- state --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class GroupState:
    layout: str  # MVGroups.layout(gi) the state belongs to; a checkpoint of another layout is not resumed
    last_ts: int  # ts of the last processed row (_MIN_TS before the first)
    pending_ts: np.ndarray  # int64 [p] ascending, p <= max_pending: incomplete rows
    pending_val: np.ndarray  # float64 [p, columns]: NaN where the member has not reported yet
    train: np.ndarray  # float64 [k, columns]: processed rows before the fit (empty after it)
    model: mv.Model | None  # None until train_rows rows have been seen
    mv_state: mv.State | None
    on: bool  # alarm active after the last scored row
    since_ms: int  # ts of the raise of the current (or last) alarm
    rows: int  # rows processed (train and scored)
    late: int  # usable readings dropped on arrival (ts not newer than the last row, or older than a full buffer)
    incomplete: int  # pending timestamps dropped before completing

    @classmethod
    def empty(cls, layout: str, columns: int) -> GroupState:
        return cls(layout, int(_MIN_TS), np.empty(0, dtype=np.int64), np.empty((0, columns)),
                   np.empty((0, columns)), None, None, False, 0, 0, 0, 0)

    @property
    def columns(self) -> int:
        return self.pending_val.shape[1]


@dataclass(frozen=True, eq=False)
class MVState:
    groups: tuple[GroupState, ...]

    @classmethod
    def empty(cls, groups: MVGroups) -> MVState:
        return cls(tuple(GroupState.empty(groups.layout(gi), len(groups.members[gi]))
                         for gi in range(groups.n_groups)))


# ---- output -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class MVRows:
    """Every scored row: the 0/1 alarm is the per-row prediction (e.g. for the SKAB protocol)."""

    group: np.ndarray  # int64
    ts_ms: np.ndarray  # int64
    score: np.ndarray  # float64, > 1 raises
    alarm: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.group)


@dataclass(frozen=True, eq=False)
class MVEvents:
    """One entry per alarm change, ordered by (ts, group)."""

    group: np.ndarray  # int64
    ts_ms: np.ndarray  # int64
    value: np.ndarray  # float64: the score at the change
    threshold: np.ndarray  # float64: 1.0
    since_ms: np.ndarray  # int64: ts of the raise this event belongs to
    kind: np.ndarray  # int8: RAISE / CLEAR
    rows: MVRows | None = None  # with evaluate_mv_groups(..., rows=True)

    def __len__(self) -> int:
        return len(self.group)


def _empty_rows() -> MVRows:
    return MVRows(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=bool))


def _events(parts: list[tuple[np.ndarray, ...]], rows: list[tuple[np.ndarray, ...]] | None) -> MVEvents:
    dtypes = (np.int64, np.int64, np.float64, np.float64, np.int64, np.int8)
    cols = [np.concatenate([p[i] for p in parts]).astype(dt) if parts else np.empty(0, dtype=dt)
            for i, dt in enumerate(dtypes)]
    order = np.lexsort((cols[0], cols[1]))
    out_rows = None
    if rows is not None:
        out_rows = _empty_rows() if not rows else MVRows(*(np.concatenate([r[i] for r in rows]) for i in range(4)))
    return MVEvents(*(c[order] for c in cols), rows=out_rows)


# ---- row assembly -------------------------------------------------------------------------------------------------

def _running_kth_largest(base: np.ndarray, seq: np.ndarray, k: int) -> np.ndarray:
    """k-th largest of base ∪ seq[:j + 1] for every j (_MIN_TS while fewer than k). All values distinct."""
    top = np.sort(base)[-k:]
    out = np.empty(len(seq), dtype=np.int64)
    # Blocks keep the work at block x (k + block) per block: only replays and long gaps get here, rarely more
    # than one block per batch.
    for lo in range(0, len(seq), _BLOCK):
        blk = seq[lo:lo + _BLOCK]
        b, t = len(blk), len(top)
        width = max(k, t + b)
        cand = np.full((b, width), _MIN_TS, dtype=np.int64)
        cand[:, :t] = top
        cand[:, t:t + b] = np.where(np.tri(b, dtype=bool), blk[None, :], _MIN_TS)
        out[lo:lo + b] = np.partition(cand, width - k, axis=1)[:, width - k]
        top = np.sort(np.concatenate([top, blk]))[-k:]
    return out


@dataclass(frozen=True)
class _Assembled:
    ts: np.ndarray  # int64 [r]: processed rows, ascending
    x: np.ndarray  # float64 [r, columns]
    last_ts: int
    pending_ts: np.ndarray
    pending_val: np.ndarray
    late: int
    incomplete: int


def _assemble(gs: GroupState, t: np.ndarray, c: np.ndarray, v: np.ndarray, cap: int) -> _Assembled:
    """Apply the per-reading rules of the module docstring to one group's usable readings (arrival order)."""
    m, n = gs.columns, len(t)
    p_ts, last = gs.pending_ts, gs.last_ts
    all_ts, inverse = np.unique(np.concatenate([p_ts, t]), return_inverse=True)
    n_ts = len(all_ts)
    pi, ri = inverse[:len(p_ts)], inverse[len(p_ts):]
    pending0 = np.zeros(n_ts, dtype=bool)
    pending0[pi] = True

    # First arrival per (ts, member) cell; pending cells arrived "before the batch" (-1).
    first = np.full((n_ts, m), _NEVER, dtype=np.int64)
    vals = np.full((n_ts, m), np.nan)
    first[pi] = np.where(np.isnan(gs.pending_val), _NEVER, -1)
    vals[pi] = gs.pending_val
    cell, at = np.unique(ri * m + c, return_index=True)
    r_c, c_c = cell // m, cell % m
    new = first[r_c, c_c] == _NEVER
    first[r_c[new], c_c[new]] = at[new]
    vals[r_c[new], c_c[new]] = v[at[new]]
    done_at = first.max(axis=1)  # the reading that completes each row; _NEVER if it is still incomplete

    # Buffer bound as a floor: a reading is usable only while fewer than cap newer timestamps have been seen, i.e.
    # its ts is above the (cap + 1)-th largest seen so far. Seen = pending + this batch: anything older that left
    # the buffer is either not newer than the last row or below cap pending ones, so it cannot change the answer.
    seen_rows, first_of_ts = np.unique(ri, return_index=True)
    fresh_at = np.full(n_ts, _NEVER, dtype=np.int64)
    fresh_at[seen_rows] = first_of_ts
    fresh = np.flatnonzero(~pending0)  # every one of them has a reading in this batch
    fresh = fresh[np.argsort(fresh_at[fresh], kind="stable")]
    fa = fresh_at[fresh]  # ascending reading index of each new timestamp's first reading
    if len(p_ts) + len(fresh) <= cap:
        floor_seq = np.full(len(fresh), _MIN_TS, dtype=np.int64)
    else:
        floor_seq = _running_kth_largest(p_ts, all_ts[fresh], cap + 1)

    def floor_at(k: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(fa, k, side="right") - 1
        return np.where(pos >= 0, floor_seq[np.maximum(pos, 0)], _MIN_TS) if len(fa) else np.full(len(k), _MIN_TS)

    # Completed rows in completion order; a row is processed if its completing reading was usable and its ts is
    # newer than every row processed before it (rows dropped for lateness are never newer, so a plain running
    # maximum over the usable completions gives the last processed ts).
    comp = np.flatnonzero(done_at < _NEVER)
    comp = comp[np.argsort(done_at[comp])]
    ck = done_at[comp]
    usable = all_ts[comp] > floor_at(ck)
    comp, ck = comp[usable], ck[usable]
    cts = all_ts[comp]
    prev = np.maximum.accumulate(np.concatenate([[last], cts]).astype(np.int64))[:len(cts)]
    keep = cts > prev
    rows, rows_k, rows_ts = comp[keep], ck[keep], cts[keep]
    new_last = int(rows_ts[-1]) if len(rows_ts) else last

    def last_before(k: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(rows_k, k, side="left") - 1
        return np.where(pos >= 0, rows_ts[np.maximum(pos, 0)], last) if len(rows_k) else np.full(len(k), last)

    k_all = np.arange(n)
    late = int(np.count_nonzero((t <= last_before(k_all)) | (t <= floor_at(k_all))))
    entered = np.zeros(n_ts, dtype=bool)  # new timestamps whose first reading was usable
    entered[fresh] = (all_ts[fresh] > last_before(fa)) & (all_ts[fresh] > floor_seq)
    floor_end = int(floor_seq[-1]) if len(floor_seq) else int(_MIN_TS)
    alive = (pending0 | entered) & (all_ts > new_last) & (all_ts > floor_end)
    incomplete = len(p_ts) + int(entered.sum()) - len(rows) - int(alive.sum())
    return _Assembled(rows_ts, vals[rows], new_last, all_ts[alive], vals[alive], late, incomplete)


# ---- learning and scoring -----------------------------------------------------------------------------------------

def _group_step(gs: GroupState, gi: int, groups: MVGroups, t: np.ndarray, c: np.ndarray, v: np.ndarray,
                want_rows: bool) -> tuple[GroupState, tuple[np.ndarray, ...] | None, tuple[np.ndarray, ...] | None]:
    a = _assemble(gs, t, c, v, groups.max_pending)
    ts, x = a.ts, a.x
    train, model, ms = gs.train, gs.model, gs.mv_state
    if model is None and len(ts):
        need = groups.train_rows[gi] - len(train)
        train = np.concatenate([train, x[:need]])
        ts, x = ts[need:], x[need:]
        if len(train) == groups.train_rows[gi]:
            model = mv.fit(train, groups.configs[gi])
            ms = mv.initial_state(model)
            train = np.empty((0, gs.columns))
    on, since = gs.on, gs.since_ms
    ev = rows = None
    if model is not None and ms is not None and len(ts):
        ms, score, alarm = mv.step(model, ms, x)
        prev = np.concatenate([[on], alarm[:-1]])
        change = np.flatnonzero(alarm != prev)
        idx = np.arange(len(ts))
        last_raise = np.maximum.accumulate(np.where(alarm & ~prev, idx, -1))
        since_row = np.where(last_raise >= 0, ts[np.maximum(last_raise, 0)], since)
        ev = (np.full(len(change), gi), ts[change], score[change], np.full(len(change), THRESHOLD),
              since_row[change], np.where(alarm[change], RAISE, CLEAR))
        on, since = bool(alarm[-1]), int(since_row[-1])
        if want_rows:
            rows = (np.full(len(ts), gi, dtype=np.int64), ts, score, alarm.astype(bool))
    new = GroupState(gs.layout, a.last_ts, a.pending_ts, a.pending_val, train, model, ms, on, since,
                     gs.rows + len(a.ts), gs.late + a.late, gs.incomplete + a.incomplete)
    return new, ev, rows


def evaluate_mv_groups(state: MVState, groups: MVGroups, slot: np.ndarray, ts: np.ndarray, val: np.ndarray,
                       q: np.ndarray, *, rows: bool = False) -> tuple[MVState, MVEvents]:
    """Readings in arrival order (any sensors, any batch cut) -> (new state, alarm changes [, scored rows])."""
    slot = np.asarray(slot, dtype=np.int64)
    g_of = groups.group_of_slot[slot]
    mine = g_of >= 0
    if not mine.any():  # the common case for most sources: one gather and out
        return state, _events([], [] if rows else None)
    val = np.asarray(val, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.int64)
    mine &= (np.asarray(q) != Q_BAD) & np.isfinite(val)
    idx = np.flatnonzero(mine)
    if not len(idx):  # only bad or non-finite readings: they change nothing
        return state, _events([], [] if rows else None)
    idx = idx[np.argsort(g_of[idx], kind="stable")]  # by group, arrival order kept within a group
    g_sorted = g_of[idx]
    starts = np.flatnonzero(np.concatenate([[True], g_sorted[1:] != g_sorted[:-1]]))
    ends = np.append(starts[1:], len(idx))
    new_groups = list(state.groups)
    ev_parts: list[tuple[np.ndarray, ...]] = []
    row_parts: list[tuple[np.ndarray, ...]] | None = [] if rows else None
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):  # groups are few: one iteration per group
        sel = idx[lo:hi]
        gi = int(g_sorted[lo])
        new_groups[gi], ev, rw = _group_step(state.groups[gi], gi, groups, ts[sel],
                                             groups.column_of_slot[slot[sel]], val[sel], rows)
        if ev is not None:
            ev_parts.append(ev)
        if rw is not None and row_parts is not None:
            row_parts.append(rw)
    return MVState(tuple(new_groups)), _events(ev_parts, row_parts)


# ---- checkpoints --------------------------------------------------------------------------------------------------

def _mv_state_dict(s: mv.State) -> dict[str, Any]:
    return {"rate_tail": s.rate_tail.tolist(), "u_tail": s.u_tail.tolist(), "on": bool(s.on), "below": int(s.below)}


def _mv_state_from(d: dict[str, Any], cfg: mv.Config, n_rate: int, n_cols: int) -> mv.State:
    return mv.State(np.asarray(d["rate_tail"], dtype=np.float64).reshape(cfg.lag, n_rate),
                    np.asarray(d["u_tail"], dtype=np.float64).reshape(cfg.window - 1, n_cols),
                    np.array(bool(d["on"])), np.array(int(d["below"]), dtype=np.int64))


def export_group(state: MVState, gi: int) -> dict[str, Any]:
    """Group gi's state as JSON values (lists, numbers, None for a member not yet reported); exact round trip."""
    gs = state.groups[gi]
    model = None
    if gs.model is not None:
        md = gs.model
        model = {"config": {**asdict(md.config), "rate_columns": list(md.config.rate_columns)},
                 "level_columns": md.level_columns.tolist(), "rate_columns": md.rate_columns.tolist(),
                 "center": md.center.tolist(), "std": md.std.tolist(), "spread": md.spread.tolist(),
                 "on_level": float(md.on_level), "start": _mv_state_dict(md.start)}
    return {
        "layout": gs.layout, "last_ts": int(gs.last_ts), "on": bool(gs.on), "since_ms": int(gs.since_ms),
        "rows": int(gs.rows), "late": int(gs.late), "incomplete": int(gs.incomplete),
        "pending_ts": gs.pending_ts.tolist(),
        # JSON has no NaN (orjson would write null anyway): a missing member is written as null explicitly.
        "pending_val": [[None if np.isnan(x) else x for x in r] for r in gs.pending_val.tolist()],
        "train": gs.train.tolist(), "model": model,
        "mv_state": None if gs.mv_state is None else _mv_state_dict(gs.mv_state),
    }


def import_group(state: MVState, gi: int, saved: dict[str, Any] | None) -> MVState:
    """Restore group gi from export_group(); a checkpoint of another layout (id, columns, config) is ignored, so
    the group learns afresh rather than scoring with a model of different columns or settings."""
    gs = state.groups[gi]
    if not saved or saved.get("layout") != gs.layout:
        return state
    m = gs.columns
    model = ms = None
    if saved["model"] is not None:
        d = saved["model"]
        cfg = mv.Config(**{**d["config"], "rate_columns": tuple(d["config"]["rate_columns"])})
        n_rate = len(d["rate_columns"])
        model = mv.Model(cfg, np.asarray(d["level_columns"], dtype=np.int64).reshape(-1),
                         np.asarray(d["rate_columns"], dtype=np.int64).reshape(-1),
                         np.asarray(d["center"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64),
                         np.asarray(d["spread"], dtype=np.float64), float(d["on_level"]),
                         _mv_state_from(d["start"], cfg, n_rate, m))
        ms = _mv_state_from(saved["mv_state"], cfg, n_rate, m)
    pending_val = np.array([[np.nan if x is None else x for x in r] for r in saved["pending_val"]],
                           dtype=np.float64).reshape(-1, m)
    new = replace(gs, last_ts=int(saved["last_ts"]), on=bool(saved["on"]), since_ms=int(saved["since_ms"]),
                  rows=int(saved["rows"]), late=int(saved["late"]), incomplete=int(saved["incomplete"]),
                  pending_ts=np.asarray(saved["pending_ts"], dtype=np.int64).reshape(-1), pending_val=pending_val,
                  train=np.asarray(saved["train"], dtype=np.float64).reshape(-1, m), model=model, mv_state=ms)
    groups = list(state.groups)
    groups[gi] = new
    return MVState(tuple(groups))


def state_nbytes(state: MVState) -> int:
    """Bytes of array state (train buffers dominate before the fit: train_rows x columns x 8)."""
    total = 0
    for gs in state.groups:
        total += sum(getattr(gs, f.name).nbytes for f in fields(gs) if isinstance(getattr(gs, f.name), np.ndarray))
        if gs.mv_state is not None:
            total += gs.mv_state.rate_tail.nbytes + gs.mv_state.u_tail.nbytes
    return total


__all__ = ["CLEAR", "MAX_PENDING", "RAISE", "THRESHOLD", "GroupSpec", "GroupState", "MVEvents", "MVGroups",
           "MVRows", "MVState", "evaluate_mv_groups", "export_group", "import_group", "min_train_rows",
           "state_nbytes"]
