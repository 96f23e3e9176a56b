"""Unit conversion to the registry's unit: value_in_registry_unit = value * scale + offset."""

from __future__ import annotations

_LINEAR: dict[tuple[str, str], tuple[float, float]] = {
    ("K", "°C"): (1.0, -273.15),
    ("°C", "K"): (1.0, 273.15),
    ("degC", "°C"): (1.0, 0.0),
    ("MPa", "kPa"): (1000.0, 0.0),
    ("kPa", "MPa"): (0.001, 0.0),
    ("bar", "kPa"): (100.0, 0.0),
    ("kPa", "bar"): (0.01, 0.0),
    ("MPa", "bar"): (10.0, 0.0),
    ("bar", "MPa"): (0.1, 0.0),
    ("m", "mm"): (1000.0, 0.0),
    ("mm", "m"): (0.001, 0.0),
    ("cm", "mm"): (10.0, 0.0),
    ("cm", "m"): (0.01, 0.0),
}


def conversion(from_unit: str, to_unit: str) -> tuple[float, float] | None:
    """(scale, offset) or None when there is no safe conversion (e.g. ppm -> mg/m3 depends on the gas)."""
    if from_unit == to_unit:
        return (1.0, 0.0)
    return _LINEAR.get((from_unit, to_unit))
