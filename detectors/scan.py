"""Segmented scans: per-sensor running operations over a batch sorted by sensor, without a loop per reading.

A batch holds many sensors, each a contiguous run of readings in time order (a "segment"). Detectors need
running minima, forward fills and first-order recurrences within each segment, seeded from the state the
previous batch left. NumPy has no segmented scan, so these use a doubling (Hillis-Steele) scan: log2(n)
vectorised passes, each combining element i with element i - 2^k when both are in the same segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segments:
    """Readings grouped by sensor slot, arrival order kept inside each group."""

    order: np.ndarray  # indices into the original arrays
    slot: np.ndarray  # slot per sorted reading
    start: np.ndarray  # bool: first reading of its segment
    last: np.ndarray  # bool: last reading of its segment
    seg_start: np.ndarray  # index (in sorted order) of the segment's first reading, per reading
    single: bool = False  # every segment is one reading long (the usual batch): every scan is the identity

    @property
    def n(self) -> int:
        return len(self.slot)


def segments(slot: np.ndarray, keep: np.ndarray | None = None) -> Segments:
    idx = np.arange(len(slot)) if keep is None else np.flatnonzero(keep)
    order = idx[np.argsort(slot[idx], kind="stable")]
    return from_grouped(order, slot[order])


def from_grouped(order: np.ndarray, s: np.ndarray) -> Segments:
    """Segments of readings already grouped by slot (s = slot per reading, in `order`)."""
    start = np.r_[True, s[1:] != s[:-1]] if len(s) else np.zeros(0, dtype=bool)
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, dtype=bool)
    pos = np.arange(len(s))
    single = bool(start.all())
    seg_start = pos if single else np.maximum.accumulate(np.where(start, pos, 0))
    return Segments(order, s, start, last, seg_start, single)


def subset(seg: Segments, mask: np.ndarray) -> tuple[Segments, np.ndarray]:
    """The rows of seg where mask, as segments of their own, and their row numbers in seg.

    The mask must take whole segments (all of a sensor's readings or none): a detector that sees only some of a
    sensor's readings would carry the wrong state from one to the next.
    """
    rows = np.flatnonzero(mask)
    return from_grouped(seg.order[rows], seg.slot[rows]), rows


def prev_in_segment(seg: Segments, x: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """x shifted by one within each segment; the first element of a segment takes `prior` (per reading)."""
    if seg.single:
        return prior.copy()
    out = np.empty_like(x)
    if len(x):
        out[1:] = x[:-1]
        out[seg.start] = prior[seg.start]
    return out


def forward_fill_index(seg: Segments, mask: np.ndarray) -> np.ndarray:
    """Index of the latest position <= i in i's segment where mask is True, else -1. Works on 2-D masks."""
    pos = np.arange(seg.n).reshape((-1,) + (1,) * (mask.ndim - 1))
    cand = np.where(mask, pos, -1)
    if seg.single:
        return cand
    last = np.maximum.accumulate(cand, axis=0) if seg.n else cand
    ss = seg.seg_start.reshape((-1,) + (1,) * (mask.ndim - 1))
    return np.where(last >= ss, last, -1)


def longest(seg: Segments) -> int:
    """Length of the longest segment: the doubling scans need only log2 of it passes, not log2(n)."""
    if seg.n == 0:
        return 0
    starts = np.flatnonzero(seg.start)
    return int(np.diff(np.r_[starts, seg.n]).max())


def segmented_cummin(seg: Segments, x: np.ndarray) -> np.ndarray:
    """Running minimum within each segment (exact: no offsets added to the values)."""
    out = x.copy()
    if seg.single:
        return out
    d = 1
    n = seg.n
    span = longest(seg)
    while d < span:
        same = seg.seg_start[d:] <= np.arange(n - d)  # element i-d is in i's segment
        cand = np.minimum(out[d:], out[:-d])
        out[d:] = np.where(same.reshape((-1,) + (1,) * (x.ndim - 1)), cand, out[d:])
        d *= 2
    return out


def segmented_cumsum(seg: Segments, x: np.ndarray) -> np.ndarray:
    """Running sum within each segment, by cumulative sum minus the sum before the segment start."""
    if seg.single:
        return x.copy()
    c = np.cumsum(x, axis=0)
    before = np.zeros_like(c)
    if seg.n:
        before_start = np.concatenate([np.zeros((1, *x.shape[1:]), dtype=c.dtype), c[:-1]], axis=0)
        before = before_start[seg.seg_start]
    return c - before


def affine_scan(seg: Segments, a: np.ndarray, b: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """x_i = a_i * x_{i-1} + b_i within each segment, x_{-1} = x0 (per reading, read at segment starts).

    Composition of affine maps is associative, so a doubling scan computes every prefix in log2(n) passes.
    Used for exponentially weighted statistics with time-varying decay (irregular reporting intervals).
    """
    if seg.single:
        return a * x0 + b
    A = a.astype(np.float64, copy=True)
    B = b.astype(np.float64, copy=True)
    n = seg.n
    extra = (1,) * (a.ndim - 1)
    d = 1
    span = longest(seg)
    while d < span:
        same = (seg.seg_start[d:] <= np.arange(n - d)).reshape((-1, *extra))
        # (A_i, B_i) o (A_{i-d}, B_{i-d}): x -> A_i * (A_{i-d} x + B_{i-d}) + B_i
        newA = np.where(same, A[d:] * A[:-d], A[d:])
        newB = np.where(same, A[d:] * B[:-d] + B[d:], B[d:])
        A[d:], B[d:] = newA, newB
        d *= 2
    x0_seg = x0[seg.seg_start] if n else x0
    return A * x0_seg + B
