"""The whole detector set gives the same detections however the same stream is cut into batches."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.engine import DetectorEngine

T0 = 1_800_000_000_000
SENSORS = ["S01-T03-LT", "S01-T03-FT", "S01-GC01", "S10-F1-CH4-T1", "S08-PZ01"]

rows = st.lists(
    st.tuples(st.integers(0, len(SENSORS) - 1), st.floats(0, 100, allow_nan=False, width=32),
              st.integers(1, 40), st.sampled_from([0, 0, 0, 2]), st.booleans()),
    min_size=1, max_size=150,
)


def _key(r: dict) -> tuple:
    return (r["ts_ms"], r["sensor"], r["rule"], r["limit"], r["state"])


@settings(max_examples=200, deadline=None)
@given(rows, st.lists(st.integers(1, 60), min_size=1, max_size=10))
def test_detections_do_not_depend_on_batch_boundaries(registry, data, cuts):
    eng_a, eng_b = DetectorEngine(registry), DetectorEngine(registry)
    slot = np.array([eng_a._slot[SENSORS[r[0]]] for r in data])
    # Time advances by 1..40 s per reading; some readings arrive late (shifted back), some are bad quality.
    ts = T0 + np.cumsum([r[2] * 1000 for r in data]) - np.array([15_000 if r[4] else 0 for r in data])
    val = np.array([r[1] for r in data], dtype=float)
    q = np.array([r[3] for r in data], dtype=np.int8)
    whole = eng_a.process_arrays(slot, ts, val, q)
    parts: list[dict] = []
    i = k = 0
    while i < len(data):
        j = min(len(data), i + cuts[k % len(cuts)])
        parts += eng_b.process_arrays(slot[i:j], ts[i:j], val[i:j], q[i:j])
        i, k = j, k + 1
    # Voting and the dams' colours are judged on a snapshot after each batch (their own split tests are in
    # test_voting.py and below): leave them out.
    snapshots = ("vote", "dam_warning")
    whole = [r for r in whole if r["rule"] not in snapshots]
    parts = [r for r in parts if r["rule"] not in snapshots]
    assert sorted(map(_key, whole)) == sorted(map(_key, parts))
    assert {r["id"] for r in whole} == {r["id"] for r in parts}
    for name in ("limits", "rate", "health", "last"):
        a, b = eng_a.state[name], eng_b.state[name]
        for f in a.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{name}.{f}")
    for name in ("trend", "drift"):
        a, b = eng_a.state[name], eng_b.state[name]
        for f in a.__dataclass_fields__:
            np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-9, atol=1e-9, err_msg=f"{name}.{f}")


def test_checkpoint_round_trip_resumes_exactly(registry):
    rng = np.random.default_rng(3)
    eng = DetectorEngine(registry)
    slots = np.array([eng._slot[s] for s in SENSORS])
    n = 400
    slot = rng.choice(slots, n)
    ts = T0 + np.arange(n) * 5000
    val = rng.uniform(0, 100, n)
    q = np.zeros(n, dtype=np.int8)
    first = eng.process_arrays(slot[:200], ts[:200], val[:200], q[:200])
    saved = {src: eng.export_source(src) for src in ("S01", "S08", "S10")}
    restored = DetectorEngine(registry)
    for src, snap in saved.items():
        restored.import_source(src, snap)
    assert first  # the random walk crosses limits
    assert [r["id"] for r in eng.process_arrays(slot[200:], ts[200:], val[200:], q[200:])] == \
        [r["id"] for r in restored.process_arrays(slot[200:], ts[200:], val[200:], q[200:])]


def test_dam_colour_after_a_batch_does_not_depend_on_how_the_readings_were_cut(registry):
    """The dam's colour is a snapshot: whatever the cuts, the same readings leave the same colour and the same
    open alert."""
    rng = np.random.default_rng(5)
    pz = [f"S08-PZ{i:02d}" for i in range(1, 9)]
    slots = np.array([DetectorEngine(registry)._slot[s] for s in pz])
    n = 320
    slot = np.tile(slots, n // len(slots))
    ts = T0 + np.arange(n) * 60_000
    val = np.clip(12.0 - np.cumsum(rng.uniform(-0.02, 0.08, n)), 0.5, 40)
    q = np.zeros(n, dtype=np.int8)
    results = []
    for step in (n, 7, 40):
        eng = DetectorEngine(registry)
        recs = []
        for i in range(0, n, step):
            recs += eng.process_arrays(slot[i:i + step], ts[i:i + step], val[i:i + step], q[i:i + step])
        ds = eng.state["dams"]
        results.append((ds.level.tolist(), [r["limit"] for r in recs if r["rule"] == "dam_warning"][-1:]))
    assert results[0][0][0] > 0  # the walk took the dam into a warning colour
    assert results[0] == results[1] == results[2]
