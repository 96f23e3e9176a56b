from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.voting import (
    CONFIRMED,
    DEGRADED,
    KIND_NAMES,
    UNAVAILABLE,
    VotingGroups,
    VotingState,
    describe_event,
    evaluate_voting,
    parse_koon,
)

# Slots 0-2: three gas detectors around a tank in a 2oo3 group; slots 3-4: a 1oo2 pair at a loading bay;
# slot 5: a detector that votes nowhere.
GROUPS = VotingGroups.build([0, 0, 0, 1, 1, -1], ["2oo3", "1oo2"])


def transitions(ev) -> list[tuple[int, str, str, int]]:
    return [(int(g), KIND_NAMES[k], "raise" if r else "clear", int(t)) for g, k, r, t in
            zip(ev.group, ev.kind, ev.raised, ev.ts_ms, strict=True)]


def timeline(rows: list[tuple[int, list[int], list[int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, slots in alarm, slots offline) per snapshot -> arrays [times], [times, slots], [times, slots]."""
    n = len(GROUPS.group_of_slot)
    alarm = np.zeros((len(rows), n), dtype=bool)
    healthy = np.ones((len(rows), n), dtype=bool)
    for i, (_, on, off) in enumerate(rows):
        alarm[i, on] = True
        healthy[i, off] = False
    return np.array([r[0] for r in rows], dtype=np.int64), alarm, healthy


def test_parse_and_validate_specs():
    assert parse_koon("2oo3") == (2, 3) and parse_koon(" 1OO2 ") == (1, 2)
    for bad in ("3oo2", "0oo1", "2 of 3"):
        with pytest.raises(ValueError):
            parse_koon(bad)
    with pytest.raises(ValueError, match="has 2 member slots"):
        VotingGroups.build([0, 0, -1], ["2oo3"])
    with pytest.raises(ValueError):
        VotingGroups.build([0, 1], ["1oo1"])


def test_plume_reaching_detectors_in_sequence_confirms_at_the_second():
    # domain.md §8: the plume reaches detector 0, then 1, then 2; it drifts off in the same order.
    ts, alarm, healthy = timeline([
        (10_000, [], []), (20_000, [0], []), (30_000, [0, 1], []), (40_000, [0, 1, 2], []),
        (50_000, [1, 2], []), (60_000, [2], []), (70_000, [], []),
    ])
    state, status, ev = evaluate_voting(VotingState.empty(2), GROUPS, alarm, healthy, ts)
    assert transitions(ev) == [(0, "confirmed", "raise", 30_000), (0, "confirmed", "clear", 60_000)]
    assert status.n_alarm[:, 0].tolist() == [0, 1, 2, 3, 2, 1, 0]
    assert status.k_eff[:, 0].tolist() == [2] * 7
    assert not status.degraded.any() and not status.unavailable.any()
    assert ev.since_ms.tolist() == [30_000, 30_000]  # the clear belongs to the confirmation raised at 30 s
    assert not state.active.any()


def test_level_two_votes_separately_and_confirms_later():
    # Same plume, the level-2 flags of the same detectors: confirmation by two at level 2 comes later.
    ts, l1, healthy = timeline([(10_000, [0], []), (20_000, [0, 1], []), (30_000, [0, 1, 2], [])])
    _, l2, _ = timeline([(10_000, [], []), (20_000, [0], []), (30_000, [0, 1], [])])
    _, _, ev1 = evaluate_voting(VotingState.empty(2), GROUPS, l1, healthy, ts)
    _, _, ev2 = evaluate_voting(VotingState.empty(2), GROUPS, l2, healthy, ts)
    assert transitions(ev1) == [(0, "confirmed", "raise", 20_000)]
    assert transitions(ev2) == [(0, "confirmed", "raise", 30_000)]


def test_voter_going_offline_during_the_plume_degrades_and_still_confirms():
    ts, alarm, healthy = timeline([
        (10_000, [], []),
        (20_000, [0], []),  # first detector sees the plume: 1 of 3, not confirmed
        (30_000, [0], [2]),  # detector 2 drops out: 2oo3 -> 1oo2, the single alarm now confirms
        (40_000, [0, 1], [2]),
        (50_000, [0], [1, 2]),  # a second voter lost: no two-detector confirmation possible any more
        (60_000, [], [1, 2]),  # the only healthy detector clears: offline voters alone never confirm
        (70_000, [], [2]),
        (80_000, [], []),
    ])
    _, status, ev = evaluate_voting(VotingState.empty(2), GROUPS, alarm, healthy, ts)
    assert transitions(ev) == [
        (0, "confirmed", "raise", 30_000), (0, "degraded", "raise", 30_000),
        (0, "unavailable", "raise", 50_000),
        (0, "confirmed", "clear", 60_000),
        (0, "unavailable", "clear", 70_000),
        (0, "degraded", "clear", 80_000),
    ]
    assert status.k_eff[:, 0].tolist() == [2, 2, 1, 1, 1, 1, 1, 2]
    assert status.n_healthy[:, 0].tolist() == [3, 3, 2, 2, 1, 1, 2, 3]


def test_alarm_flag_of_an_unhealthy_voter_is_not_counted_but_its_vote_is():
    # Detector 0 in alarm but faulted, 1 and 2 healthy and quiet: one offline voter, no real alarm -> no
    # confirmation (a fault is not a leak), only the degraded condition.
    ts, alarm, healthy = timeline([(1_000, [0], [0]), (2_000, [0, 1], [0])])
    _, status, ev = evaluate_voting(VotingState.empty(2), GROUPS, alarm, healthy, ts)
    assert status.n_alarm[:, 0].tolist() == [0, 1]
    assert transitions(ev) == [(0, "degraded", "raise", 1_000), (0, "confirmed", "raise", 2_000)]


def test_one_out_of_two_pair_and_non_voting_slot():
    ts, alarm, healthy = timeline([(1_000, [5], []), (2_000, [4], []), (3_000, [4], [3])])
    _, status, ev = evaluate_voting(VotingState.empty(2), GROUPS, alarm, healthy, ts)
    # Slot 5 votes nowhere; one detector of the 1oo2 pair confirms; losing the other leaves no redundancy.
    assert transitions(ev) == [(1, "confirmed", "raise", 2_000), (1, "degraded", "raise", 3_000),
                               (1, "unavailable", "raise", 3_000)]
    assert status.confirmed[:, 0].tolist() == [False] * 3


def test_single_snapshot_api_and_stale_snapshots():
    alarm = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    healthy = np.ones(6, dtype=bool)
    state, status, ev = evaluate_voting(VotingState.empty(2), GROUPS, alarm, healthy, 5_000)
    assert status.confirmed.tolist() == [True, False] and status.n_alarm.tolist() == [2, 0]
    assert transitions(ev) == [(0, "confirmed", "raise", 5_000)]
    assert "2oo3" in describe_event(GROUPS, ev, 0) and "GB 16808-2025" in describe_event(GROUPS, ev, 0)
    # An older or repeated snapshot does not move anything.
    state2, status2, ev2 = evaluate_voting(state, GROUPS, np.zeros(6, dtype=bool), healthy, 5_000)
    assert len(ev2) == 0 and status2.confirmed.tolist() == [True, False] and not status2.evaluated.any()
    assert np.array_equal(state2.active, state.active) and state2.last_ts_ms.tolist() == [5_000, 5_000]


def test_degraded_confirmation_text_names_the_degraded_rule():
    ts, alarm, healthy = timeline([(1_000, [0], [2])])
    _, _, ev = evaluate_voting(VotingState.empty(2), GROUPS, alarm, healthy, ts)
    i = int(np.flatnonzero(ev.kind == CONFIRMED)[0])
    text = describe_event(GROUPS, ev, i)
    assert "1 needed" in text and "degraded voting" in text
    j = int(np.flatnonzero(ev.kind == DEGRADED)[0])
    assert "degraded raised" in describe_event(GROUPS, ev, j)
    assert UNAVAILABLE not in ev.kind.tolist()


snapshots = st.lists(st.tuples(st.lists(st.booleans(), min_size=6, max_size=6),
                               st.lists(st.booleans(), min_size=6, max_size=6), st.integers(0, 3)),
                     min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(snapshots, st.lists(st.integers(1, 15), min_size=1, max_size=10))
def test_same_events_however_the_snapshots_are_cut(rows, cuts):
    alarm = np.array([r[0] for r in rows], dtype=bool)
    healthy = np.array([r[1] for r in rows], dtype=bool)
    # Mostly increasing time with some repeated or late snapshots, which must be ignored.
    ts = np.cumsum(np.full(len(rows), 1000)) - np.array([r[2] for r in rows]) * 1500

    whole_state, _, whole = evaluate_voting(VotingState.empty(2), GROUPS, alarm, healthy, ts)
    state = VotingState.empty(2)
    got: list[tuple[int, str, str, int]] = []
    since: list[int] = []
    i = k = 0
    while i < len(rows):
        j = min(len(rows), i + cuts[k % len(cuts)])
        state, _, ev = evaluate_voting(state, GROUPS, alarm[i:j], healthy[i:j], ts[i:j])
        got += transitions(ev)
        since += ev.since_ms.tolist()
        i, k = j, k + 1
    assert got == transitions(whole)
    assert since == whole.since_ms.tolist()
    for a, b in zip((state.active, state.since_ms, state.last_ts_ms),
                    (whole_state.active, whole_state.since_ms, whole_state.last_ts_ms), strict=True):
        assert np.array_equal(a, b)
