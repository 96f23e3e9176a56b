"""The audit log: an append-only, hash-chained, fsync'd JSON Lines file of every alert event.

Each line is one record of one ``alert-events`` event (transition, command, page, notify, rejected, flood)::

    {"seq": 0, "prev": "000..0", "at_ms": .., "event_id": .., "kind": .., "action": .., "actor": .., "reason": ..,
     "rule_version": .., "alert_id": .., "source": .., "enterprise": .., "event": {...}, "hash": "<sha256 hex>"}

``hash`` is SHA-256 over the canonical JSON (orjson, sorted keys) of the record without ``hash``, and ``prev`` is
the previous record's hash, so editing, deleting or reordering any record breaks the chain at that record.
Cutting records off the end leaves a valid chain, so a head anchor (``<path>.head``: seq and hash of the last
record, replaced atomically after each append) witnesses the tail. The chain proves the file is internally
consistent; it cannot stop someone who rewrites the whole file and the anchor. The external witnesses for that
are the ``alert-events`` topic and the backups: compare the head hash with them at each shift handover.

Crash safety: records are written, flushed and fsync'd before the anchor moves, so after a crash the anchor is
never ahead of the file. A torn last line (a partial write with no newline) is reported when the log is opened,
never silently dropped: ``repair_torn_tail(path)`` moves the torn bytes aside to ``<path>.torn-<UTC time>``
for the record, after which the writer resumes (the lost event is still on the topic and will be replayed).

Commands: ``python -m alerts.audit verify PATH`` (exit 0 intact, 1 tampered or damaged),
``python -m alerts.audit repair-torn PATH`` and ``python -m alerts.audit reanchor PATH``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

GENESIS = "0" * 64
_NEXT = ("restore the file from the backup or rebuild it from the Kafka alert-events topic "
         "(重新从备份或 alert-events 主题恢复)")


class AuditError(RuntimeError):
    """The audit log cannot be opened for writing; the message says why and what to do."""


class TornTailError(AuditError):
    """The log ends in a partial record (a crash mid-write)."""


def canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def record_hash(rec: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in rec.items() if k != "hash"})).hexdigest()


def make_record(event: dict[str, Any], seq: int, prev: str) -> dict[str, Any]:
    """The record of one event; the event is normalised through JSON so the hash survives a round trip."""
    ev = orjson.loads(orjson.dumps(event))
    notify = ev.get("notify") or {}
    rec = {"seq": seq, "prev": prev, "at_ms": ev.get("ts_ms"), "event_id": ev["event_id"], "kind": ev.get("kind"),
           "action": ev.get("action"), "actor": ev.get("actor"), "reason": ev.get("reason"),
           "rule_version": ev.get("rule_version"), "alert_id": ev.get("alert_id") or notify.get("alert_id"),
           "source": ev.get("source"), "enterprise": ev.get("enterprise"), "event": ev}
    rec["hash"] = record_hash(rec)
    return rec


# ---- verification -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int  # lines read (intact or not)
    first_bad: int | None  # position (= the seq it should have) of the first record that cannot be trusted
    problem: str  # what is wrong and what to do next; a summary when ok
    line: int | None  # 1-based line number of first_bad
    head_seq: int | None = None
    head_hash: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def head_path(path: str | Path) -> Path:
    return Path(f"{path}.head")


def _read_head(path: Path) -> dict[str, Any] | None:
    try:
        head = orjson.loads(head_path(path).read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError:
        return {"seq": None, "hash": None}
    return head if isinstance(head, dict) else {"seq": None, "hash": None}


def _lines(path: Path) -> Iterator[tuple[bytes, bool]]:
    """(line without newline, whether it ended with a newline); streams so a large log is not held in memory."""
    with open(path, "rb") as f:
        for raw in f:
            yield (raw[:-1], True) if raw.endswith(b"\n") else (raw, False)


@dataclass
class _Scan:
    records: int = 0
    last_hash: str = GENESIS
    bad: tuple[int, str] | None = None  # (position, problem)
    torn: bool = False
    ids: set[str] = field(default_factory=set)
    anchor_seq: int | None = None  # the head anchor's seq, read before the file so a live writer stays behind
    anchor_seen: str | None = None  # the hash found at that seq


def _scan(path: Path, keep_ids: bool = False, anchor_seq: int | None = None) -> _Scan:
    """Walk the chain; stop at the first record that cannot be trusted. Checks run in the order that names the
    earliest culprit: a record's own hash, then its seq, then its link to the previous record."""
    s = _Scan(anchor_seq=anchor_seq)
    for i, (raw, newline) in enumerate(_lines(path)):
        s.records = i + 1
        if not newline:
            s.torn, s.bad = True, (i, "torn last line: a partial record with no newline (a crash during a write, "
                                      "or the file was cut); the records before it are intact. Run "
                                      "`python -m alerts.audit repair-torn PATH` to move it aside (最后一行不完整)")
            break
        try:
            rec = orjson.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except ValueError:
            s.bad = (i, "not a JSON record (edited by hand or corrupted) (记录格式损坏)")
            break
        stored = rec.get("hash")
        if stored != record_hash(rec) or canonical(rec) != raw:
            s.bad = (i, "record was edited: its content does not match its hash (记录被篡改)")
            break
        if rec.get("seq") != i:
            s.bad = (i, f"sequence broken: expected seq {i}, found {rec.get('seq')!r}; a record was deleted, "
                        "inserted or moved here (记录被删除或调换顺序)")
            break
        if rec.get("prev") != s.last_hash:
            # The record itself is consistent, so either the previous record was rewritten and re-hashed, or
            # this one was re-hashed with a new prev: the earliest suspect is the previous record.
            s.bad = (max(i - 1, 0), f"chain broken between lines {i} and {i + 1}: line {i + 1} does not link to "
                                    f"the hash of line {i}; one of them was rewritten and re-hashed (哈希链断裂)")
            break
        s.last_hash = stored
        if i == anchor_seq:
            s.anchor_seen = stored
        if keep_ids:
            s.ids.add(str(rec.get("event_id")))
    return s


def _check_head(head: dict[str, Any] | None, s: _Scan) -> tuple[int, str] | None:
    n = s.records
    if head is None:
        if n == 0:
            return None
        return n, ("head anchor file is missing, so records cut from the end cannot be ruled out (锚点文件缺失); "
                   "if the file matches the backup or the topic, run `python -m alerts.audit reanchor PATH`")
    seq, hsh = head.get("seq"), head.get("hash")
    if not isinstance(seq, int) or not isinstance(hsh, str):
        return n, "head anchor file is unreadable (锚点文件损坏)"
    if seq >= n:
        return n, (f"{seq + 1 - n} record(s) missing from the end: the head anchor says the last record is "
                   f"seq {seq} but the file ends at seq {n - 1} (末尾记录被删除)")
    if seq < 0 or s.anchor_seen != hsh:
        return max(seq, 0), f"the record at seq {seq} does not match the head anchor: it was rewritten (与锚点不符)"
    return None


def _anchor_seq(head: dict[str, Any] | None) -> int | None:
    seq = (head or {}).get("seq")
    return seq if isinstance(seq, int) else None


def verify(path: str | Path) -> Verdict:
    """Check the whole chain and the head anchor; report the first record that cannot be trusted."""
    path = Path(path)
    if not path.exists():
        if head_path(path).exists():
            return Verdict(False, 0, 0, f"audit log {path} is missing but its head anchor exists: the log was "
                           f"deleted (审计日志被删除); {_NEXT}", 1)
        return Verdict(True, 0, None, f"no audit log at {path} yet (尚无审计记录)", None)
    head = _read_head(path)
    s = _scan(path, anchor_seq=_anchor_seq(head))
    bad = s.bad
    if bad is None:
        bad = _check_head(head, s)
    hs, hh = (head or {}).get("seq"), (head or {}).get("hash")
    if bad is not None:
        pos, what = bad
        after = ("" if s.torn else f"; records from line {pos + 1} on cannot be trusted (第{pos + 1}行起不可信); "
                 f"{_NEXT}")
        return Verdict(False, s.records, pos, f"line {pos + 1} (seq {pos}): {what}{after}", pos + 1, hs, hh)
    notes: tuple[str, ...] = ()
    if isinstance(hs, int) and hs < s.records - 1:
        notes = (f"head anchor is {s.records - 1 - hs} record(s) behind the file (a crash between the write and "
                 "the anchor update); the chain beyond it is intact and the writer refreshes it on open",)
    return Verdict(True, s.records, None, f"audit chain intact (审计链完整): {s.records} records, "
                   f"last hash {s.last_hash[:16]}..", None, hs, hh, notes)


# ---- writing ------------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_head(path: Path, seq: int, hsh: str) -> None:
    tmp = Path(f"{path}.head.tmp")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps({"seq": seq, "hash": hsh}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, head_path(path))
    _fsync_dir(path)


def _lock(path: Path) -> int:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AuditError(f"another process is writing {path} (its lock {path}.lock is held); "
                         "the audit log has a single writer: stop the other one first") from None
    return fd


class AuditLog:
    """The single writer of one audit log. Opening checks the whole chain and refuses a damaged file, because
    appending to it would bury the evidence; the events wait on the topic meanwhile, so nothing is lost."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.path)
        try:
            self._open()
        except BaseException:
            self._unlock()
            raise

    def _open(self) -> None:
        existed = self.path.exists()
        head = _read_head(self.path)
        s = _scan(self.path, keep_ids=True, anchor_seq=_anchor_seq(head)) if existed else _Scan()
        if s.bad is not None:
            pos, what = s.bad
            cls = TornTailError if s.torn else AuditError
            raise cls(f"audit log {self.path} line {pos + 1}: {what}. Writing is refused until this is resolved; "
                      "run `python -m alerts.audit verify PATH` for the full verdict")
        bad = _check_head(head, s)
        if bad is not None:
            raise AuditError(f"audit log {self.path}: {bad[1]}. Writing is refused until this is resolved")
        self.ids: set[str] = s.ids
        self.seq = s.records  # next seq
        self.last_hash = s.last_hash
        if self.seq and (head is None or head.get("seq") != self.seq - 1):
            _write_head(self.path, self.seq - 1, self.last_hash)  # anchor was behind after a crash
        self._f = open(self.path, "ab")
        if not existed:
            _fsync_dir(self.path)

    def append(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append the events not yet in the log (a replay is normal and dropped); durable when this returns."""
        new: list[dict[str, Any]] = []
        for ev in events:
            eid = ev.get("event_id")
            if not isinstance(eid, str) or not eid:
                raise ValueError(f"event without event_id cannot be audited: {str(ev)[:200]}")
            if eid in self.ids:
                continue
            rec = make_record(ev, self.seq + len(new), new[-1]["hash"] if new else self.last_hash)
            self.ids.add(eid)
            new.append(rec)
        if not new:
            return new
        try:
            self._f.write(b"".join(canonical(r) + b"\n" for r in new))
            self._f.flush()
            os.fsync(self._f.fileno())
        except BaseException:
            for r in new:
                self.ids.discard(r["event_id"])
            raise
        self.seq += len(new)
        self.last_hash = new[-1]["hash"]
        _write_head(self.path, self.seq - 1, self.last_hash)
        return new

    def close(self) -> None:
        if getattr(self, "_f", None) is not None and not self._f.closed:
            self._f.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every parseable record in file order (readers such as the timeline; the verifier judges integrity)."""
    for raw, _ in _lines(Path(path)):
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            yield rec


# ---- explicit repairs (operator actions; never run automatically) ------------------------------------------------
def repair_torn_tail(path: str | Path) -> Path | None:
    """Move a torn last line to ``<path>.torn-<UTC time>`` and cut it from the log; returns that file or None.

    Only the bytes after the last newline move: complete records are never touched. Takes the writer's lock,
    so it refuses while the writer runs. The event that was being written is still on the topic.
    """
    path = Path(path)
    fd = _lock(path)
    try:
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut == len(data):
            return None
        aside = Path(f"{path}.torn-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        with open(aside, "wb") as f:
            f.write(data[cut:])
            f.flush()
            os.fsync(f.fileno())
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(path)
        return aside
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def reanchor(path: str | Path) -> Verdict:
    """Rewrite the head anchor from the file's last record, after a person has checked the file against the
    backup or the topic (e.g. the anchor was lost). Refuses when the chain itself is broken."""
    path = Path(path)
    fd = _lock(path)
    try:
        s = _scan(path, keep_ids=True)
        if s.bad is not None:
            raise AuditError(f"{path} line {s.bad[0] + 1}: {s.bad[1]}; the chain must be intact to re-anchor")
        if s.records:
            _write_head(path, s.records - 1, s.last_hash)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return verify(path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("verify", "repair-torn", "reanchor"):
        print("usage: python -m alerts.audit verify|repair-torn|reanchor PATH", file=sys.stderr)
        return 2
    cmd, path = args
    if cmd == "repair-torn":
        aside = repair_torn_tail(path)
        print(f"moved the torn tail to {aside}" if aside else "no torn tail; nothing to do")
    v = reanchor(path) if cmd == "reanchor" else verify(path)
    print(("OK " if v.ok else "TAMPERED/DAMAGED ") + v.problem)
    for note in v.notes:
        print(f"note: {note}")
    return 0 if v.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
