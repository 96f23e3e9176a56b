from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from hazardwatch.grading import Substance, gb18218_grade
from hazardwatch.registry import RegistryError, load_registry
from tests.conftest import EXAMPLE


def test_example_city_covers_every_kind(registry):
    kinds = Counter(s.kind for s in registry.sources.values())
    assert set(kinds) == {"tank_farm", "gas_area", "tailings_dam", "coal_mine"}
    assert len(registry.districts) == 3
    assert len(registry.enterprises) == 8
    assert len(registry.sources) == 12
    assert 280 <= len(registry.sensors) <= 320
    for s in registry.sources.values():
        assert s.name_zh and s.name_en and len(s.responsible) == 3
    # Every limit cites where it comes from.
    assert all(lim.clause for s in registry.sensors.values() for lim in s.limits)


def test_slots_are_dense_and_limit_table_matches(registry):
    slots = sorted(s.slot for s in registry.sensors.values())
    assert slots == list(range(len(slots)))
    sid = "S01-T03-LT"
    i = registry.slot(sid)
    assert registry.limit_set[i].tolist() == [5, 10, 85, 90]
    assert registry.limit_reset[i].tolist() == [7, 12, 83, 88]


def test_grade_computed_from_gb18218_inputs(registry):
    # S06: 60 t chlorine, Q = 5 t, beta = 4, 120 residents (alpha 2.0): R = 2 * 4 * 12 = 96 -> 二级.
    s06 = registry.sources["S06"]
    assert s06.grade == 2 and "R=96.0" in s06.grade_basis


def test_gb18218_worked_example_from_domain_doc():
    # SO2 200 t, Q = 20 t, beta = 2, 60 residents (alpha 1.5): R = 30 -> 三级.
    grade, r = gb18218_grade([Substance("SO2", 200, 20, 2)], 60)
    assert (grade, r) == (3, 30.0)


def _broken(tmp_path: Path, mutate) -> RegistryError:
    doc = yaml.safe_load(EXAMPLE.read_text())
    mutate(doc)
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    with pytest.raises(RegistryError) as exc:
        load_registry(p)
    return exc.value


def test_errors_name_file_line_key_and_fix(tmp_path):
    def mutate(doc):
        doc["hazard_sources"][0]["sensors"][0]["limits"] = {"HH": {"reset": 95}}  # above its set value 90
        doc["hazard_sources"][1]["enterprise"] = "E99"
        co = next(x for x in doc["hazard_sources"][9]["sensors"] if x["id"].endswith("-CO"))
        del co["limits"]["H"]["clause"]

    err = _broken(tmp_path, mutate)
    text = str(err)
    assert len(err.problems) == 3
    assert "reg.yaml:" in text
    assert "hazard_sources[S01].sensors[S01-T01-LT].limits.HH.reset" in text and "must be at or below" in text
    assert "unknown enterprise 'E99'" in text and "use one of" in text
    assert "S10-F1-CO].limits.H.clause: missing" in text
    # Line numbers point into the file the engineer edits.
    line = int(text.split("reg.yaml:")[1].split(" ")[0])
    assert line > 1


def test_duplicate_sensor_and_bad_unit_rejected(tmp_path):
    def mutate(doc):
        s = doc["hazard_sources"][0]["sensors"]
        s[1]["id"] = s[0]["id"]
        s[2]["unit"] = "furlongs"

    text = str(_broken(tmp_path, mutate))
    assert "duplicate sensor id" in text
    assert "'furlongs' is not a unit for" in text


def _sensor(doc, sid):
    return next(x for s in doc["hazard_sources"] for x in s["sensors"] if x["id"] == sid)


def test_profile_values_looser_than_the_standard_are_refused_with_the_clause(tmp_path):
    def mutate(doc):
        _sensor(doc, "S01-GC01")["limits"] = {"H": {"value": 30}}  # GB/T 50493: level 1 <= 25 %LEL
        _sensor(doc, "S10-F1-CH4-T1")["limits"] = {"HH": {"value": 1.8}}  # power-off at 1.5 % at the face
        _sensor(doc, "S04-OX01")["limits"] = {"L": {"value": 18.0}}  # oxygen low alarm >= 19.5 %VOL

    text = str(_broken(tmp_path, mutate))
    assert "30 %LEL is looser than the standard's maximum 25.0 %LEL (GB/T 50493-2019 5.5.2" in text
    assert "use a value <= 25.0" in text
    assert "1.8 %CH4 is looser than the standard's maximum 1.5 %CH4" in text
    assert "18.0 %VOL is looser than the standard's minimum 19.5 %VOL" in text and "use a value >= 19.5" in text


def test_stricter_site_value_is_accepted_and_keeps_the_deadband(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text())
    _sensor(doc, "S01-GC01")["limits"] = {"H": {"value": 20}}
    p = tmp_path / "ok.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    lim = load_registry(p).limit("S01-GC01", "H")
    assert (lim.value, lim.reset, lim.latching) == (20.0, 15.0, True)
    assert lim.clause.startswith("site value, stricter than GB/T 50493-2019")


def test_profile_mismatch_and_missing_design_values(tmp_path):
    def mutate(doc):
        _sensor(doc, "S01-GC02")["profile"] = "gas_combustible_typo"
        _sensor(doc, "S01-GC03")["profile"] = "oxygen"
        del _sensor(doc, "S08-PZ01")["design"]

    text = str(_broken(tmp_path, mutate))
    assert "unknown profile 'gas_combustible_typo'" in text
    assert "profile oxygen is for ['oxygen'] sensors, not gas_combustible" in text
    assert "profile tailings_phreatic_depth needs design values ['design_min']" in text


def test_methane_profiles_follow_the_coal_mine_safety_regulations(registry):
    face = registry.limit("S10-F1-CH4-T1", "HH")
    assert (face.value, face.reset, face.raise_name, face.clear_name) == (1.5, 1.0, "power_off", "re_energise")
    ret = registry.limit("S10-F1-CH4-T2", "HH")
    assert (ret.value, ret.reset) == (1.0, 1.0)
    phreatic = registry.limit("S08-PZ01", "L")
    assert phreatic.value == 6.6 and phreatic.level == 2  # orange = 1.1 x the design minimum 6 m


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RegistryError, match="HW_REGISTRY"):
        load_registry(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("districts: [\n  - id: x\n")
    with pytest.raises(RegistryError, match=r"bad.yaml:\d+ is not valid YAML"):
        load_registry(p)
