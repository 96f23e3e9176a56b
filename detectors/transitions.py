"""Turning per-reading conditions into alarm states and transitions, within each sensor's segment."""

from __future__ import annotations

import numpy as np

from detectors.scan import Segments, forward_fill_index, prev_in_segment

RAISE, CLEAR = 1, 0


def toggle(seg: Segments, on: np.ndarray, off: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """State per reading: set where `on`, reset where `off`, otherwise held (from `prior` at the segment start)."""
    k = forward_fill_index(seg, on | off)
    if on.ndim == 1:
        return np.where(k >= 0, on[np.maximum(k, 0)], prior)
    return np.where(k >= 0, on[np.maximum(k, 0), np.arange(on.shape[1])], prior)


def transitions(seg: Segments, state: np.ndarray, prior: np.ndarray, t: np.ndarray,
                prior_since: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kind per reading: -1 none / RAISE / CLEAR, activation time per reading)."""
    prev = prev_in_segment(seg, state, prior)
    kind = np.full(state.shape, -1, dtype=np.int8)
    kind[state & ~prev] = RAISE
    kind[~state & prev] = CLEAR
    kr = forward_fill_index(seg, kind == RAISE)
    since = np.where(kr >= 0, t[np.maximum(kr, 0)], prior_since)
    return kind, since


def put(arr: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = arr.copy()
    out[rows] = values
    return out
