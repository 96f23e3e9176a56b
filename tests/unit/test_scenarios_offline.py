"""Every scenario played through the detector engine offline (simulators.playback.play_engine) and scored
against its ground truth: each expected alert before its hazardous point, nothing unexplained, and on a normal
day nothing but the injected faults at an alarm rate a console can live with (ISA-18.2).

Tests marked xfail name a detector finding: a false alarm the physics produces honestly (see the report in
the simulators' hand-over). Remove the mark when the detector is fixed; strict=True makes an unexpected pass
fail so the mark is not forgotten.
"""

from __future__ import annotations

from typing import Any

import pytest

from hazardwatch.registry import Registry
from simulators.playback import play_engine
from simulators.scenarios import SCENARIOS
from simulators.score import ScenarioReport, score
from simulators.trace import Scenario

T0_MS = 1_800_000_000_000
INCIDENTS = ("buncefield", "gas_release", "methane", "tailings")
SEEDS = (1, 2)

FINDING_GAS_DRIFT = (
    "detector finding D1: drift (sensor_health, level 4) raises on S03-GC04..06 15-20 min into a real LPG release "
    "(10-min mean tens of %LEL above the 6 h baseline); a release is not a calibration drift. Fix idea: hold or "
    "reset the drift CUSUM while the sensor's own H/HH limit alarm is active or latched, or require the excursion "
    "to persist far longer than a plume lasts. Also D2: out_of_range (sensor_health, level 3) when the plume "
    "exceeds 100 %LEL (transmitter saturated at 103.1 % per NAMUR NE43), which then marks the voter unhealthy "
    "and raises vote 'degraded'/'unavailable' on S03-V02; an over-range gas reading is a process alarm at least "
    "as severe as HH, not a sensor fault, and should not degrade the vote.")


@pytest.fixture(scope="module")
def played(registry: Registry) -> dict[tuple[str, int], tuple[Scenario, list[dict[str, Any]], ScenarioReport]]:
    return {}


def run(played: dict, registry: Registry, name: str, seed: int) -> tuple[Scenario, list[dict], ScenarioReport]:
    if (name, seed) not in played:
        sc = SCENARIOS[name](registry, seed)
        recs = play_engine(sc, registry, T0_MS)
        played[(name, seed)] = (sc, recs, score(sc, recs, T0_MS))
    return played[(name, seed)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", INCIDENTS)
def test_every_expected_alert_fires_before_the_hazard_point(played, registry, name: str, seed: int):
    sc, _, rep = run(played, registry, name, seed)
    assert sc.expected and rep.expected_ok, rep.render()
    for e in rep.expected:
        assert e.first_s is not None and sc.onset_s is not None
        assert sc.onset_s <= e.first_s <= e.hazard_s


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", [
    "buncefield", "methane", "tailings",
    pytest.param("gas_release", marks=pytest.mark.xfail(reason=FINDING_GAS_DRIFT, strict=True)),
])
def test_incident_raises_nothing_unexplained(played, registry, name: str, seed: int):
    _, _, rep = run(played, registry, name, seed)
    assert not rep.unexpected, rep.render()
    assert rep.ok


@pytest.mark.parametrize("seed", SEEDS)
def test_gas_release_unexplained_alerts_are_only_the_known_findings(played, registry, seed: int):
    _, _, rep = run(played, registry, "gas_release", seed)
    assert {(a.rule, a.limit) for a in rep.unexpected} <= {("drift", ""), ("out_of_range", ""),
                                                           ("vote", "degraded"), ("vote", "unavailable")}
    assert all(a.source == "S03" for a in rep.unexpected)


@pytest.mark.parametrize("seed", SEEDS)
def test_gas_vote_confirms_at_level_two_on_the_plume_group(played, registry, seed: int):
    _, recs, rep = run(played, registry, "gas_release", seed)
    vote = min((r for r in recs if r["rule"] == "vote" and r["limit"] == "confirmed" and r["state"] == "raise"),
               key=lambda r: r["ts_ms"])
    assert vote["group"] == "S03-V02" and vote["level"] == 2
    first_h = rep.expected[0]
    assert first_h.first_s is not None and first_h.first_s <= (vote["ts_ms"] - T0_MS) / 1000.0


@pytest.mark.parametrize("seed", SEEDS)
def test_methane_power_off_and_silent_upper_corner(played, registry, seed: int):
    sc, recs, rep = run(played, registry, "methane", seed)
    off = min((r for r in recs if r["sensor"] == "S10-F1-CH4-T1" and r["limit"] == "HH" and r["state"] == "raise"),
              key=lambda r: r["ts_ms"])
    assert off["action"] == "power_off" and off["level"] == 1
    assert sc.hazard_s is not None and (off["ts_ms"] - T0_MS) / 1000.0 <= sc.hazard_s + 10.0
    (fault,) = rep.faults
    assert fault.sensor == "S10-F1-CH4-T0" and fault.detected and {a.rule for a in fault.alerts} == {"offline"}


@pytest.mark.parametrize("seed", SEEDS)
def test_buncefield_frozen_gauge_never_reaches_its_own_limits(played, registry, seed: int):
    _, recs, rep = run(played, registry, "buncefield", seed)
    lt = rep.expected[0].target
    assert not [r for r in recs if r["sensor"] == lt and r["rule"] in ("limit", "trend")]
    assert rep.expected[0].lead_s is not None and rep.expected[0].lead_s > 3600.0  # an hour to stop the transfer


@pytest.mark.parametrize("seed", SEEDS)
def test_tailings_dam_goes_orange_or_red_before_failure(played, registry, seed: int):
    _sc, _, rep = run(played, registry, "tailings", seed)
    orange = [e for e in rep.expected if e.rule == "limit" and e.limit == "L"]
    assert len(orange) >= 2
    dam = next(e for e in rep.expected if e.rule == "dam_warning")
    assert dam.level_seen is not None and dam.level_seen <= 2


# ---- a normal day --------------------------------------------------------------------------------------------

NORMAL_SEED = 1


def test_normal_day_catches_every_injected_fault(played, registry):
    sc, _, rep = run(played, registry, "normal_day", NORMAL_SEED)
    assert {f.kind for f in sc.faults} == {"stuck", "drift", "dropout", "spikes", "bad_quality"}
    assert all(f.detected for f in rep.faults), rep.render()
    assert rep.expected_ok, rep.render()


def test_normal_day_alarm_rate_is_within_isa_18_2(played, registry):
    _, _, rep = run(played, registry, "normal_day", NORMAL_SEED)
    assert rep.rates and rep.rate_ok, rep.render()
    assert all(r.floods == 0 for r in rep.rates)


def test_normal_day_raises_no_unexpected_alert(played, registry):
    _, _, rep = run(played, registry, "normal_day", NORMAL_SEED)
    assert not rep.unexpected, rep.render()
    assert rep.ok
