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
        lim = doc["hazard_sources"][0]["sensors"][0]["limits"]
        lim["HH"]["reset"] = 95  # above its set value 90
        doc["hazard_sources"][1]["enterprise"] = "E99"
        del doc["hazard_sources"][2]["sensors"][0]["limits"]["H"]["clause"]

    err = _broken(tmp_path, mutate)
    text = str(err)
    assert len(err.problems) == 3
    assert "reg.yaml:" in text
    assert "hazard_sources[S01].sensors[S01-T01-LT].limits.HH.reset" in text and "must be at or below" in text
    assert "unknown enterprise 'E99'" in text and "use one of" in text
    assert "limits.H.clause: missing" in text
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


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RegistryError, match="HW_REGISTRY"):
        load_registry(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("districts: [\n  - id: x\n")
    with pytest.raises(RegistryError, match=r"bad.yaml:\d+ is not valid YAML"):
        load_registry(p)
