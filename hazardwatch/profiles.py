"""Standard threshold profiles (data files in detectors/profiles/), loaded and validated.

A profile states what a standard allows; the registry applies it to a sensor and refuses any site value that
is looser than the standard's bound, naming the clause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

LIMIT_NAMES = ("LL", "L", "H", "HH")
HIGH_LIMITS = ("H", "HH")


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class ProfileLimit:
    name: str
    level: int
    clause: str
    bound: float | None = None  # max for high limits, min for low limits: the standard's loosest setting
    value: float | None = None
    reset: float | None = None
    of: str | None = None  # design parameter the value is a multiple of (tailings dams)
    factor: float = 1.0
    reset_factor: float = 1.0

    def resolve(self, design: dict[str, float]) -> tuple[float, float]:
        """(set, reset) for a sensor, from fixed values or from its design parameter."""
        if self.of is not None:
            base = design[self.of]
            return round(base * self.factor, 6), round(base * self.reset_factor, 6)
        assert self.value is not None
        return self.value, self.reset if self.reset is not None else self.value


@dataclass(frozen=True)
class Profile:
    id: str
    version: str
    title_zh: str
    title_en: str
    kinds: tuple[str, ...]
    unit: str
    latching: bool
    limits: dict[str, ProfileLimit]
    events: dict[str, dict[str, str]] = field(default_factory=dict)
    path: Path | None = None

    @property
    def design_params(self) -> set[str]:
        return {lim.of for lim in self.limits.values() if lim.of}


def _profile(path: Path, doc: Any) -> Profile:
    where = path.name

    def need(d: Any, key: str, kind: type | tuple[type, ...], ctx: str) -> Any:
        if not isinstance(d, dict) or key not in d:
            raise ProfileError(f"{where}: {ctx}{key} is missing")
        v = d[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind):
            raise ProfileError(f"{where}: {ctx}{key} = {v!r} has the wrong type")
        return v

    limits = {}
    for name, spec in (need(doc, "limits", dict, "") or {}).items():
        ctx = f"limits.{name}."
        if name not in LIMIT_NAMES:
            raise ProfileError(f"{where}: limits.{name} is not one of {LIMIT_NAMES}")
        high = name in HIGH_LIMITS
        bound_key = "max" if high else "min"
        wrong = "min" if high else "max"
        if wrong in spec:
            raise ProfileError(f"{where}: {ctx}{wrong} makes no sense for a {'high' if high else 'low'} limit; "
                               f"use {bound_key}")
        bound = float(spec[bound_key]) if bound_key in spec else None
        lim = ProfileLimit(name=name, level=need(spec, "level", int, ctx), clause=need(spec, "clause", str, ctx),
                           bound=bound, value=float(spec["value"]) if "value" in spec else None,
                           reset=float(spec["reset"]) if "reset" in spec else None, of=spec.get("of"),
                           factor=float(spec.get("factor", 1.0)), reset_factor=float(spec.get("reset_factor", 1.0)))
        if lim.value is None and lim.of is None:
            raise ProfileError(f"{where}: {ctx} needs `value` or `of` (a design parameter) with `factor`")
        beyond = lim.value is not None and lim.bound is not None and (
            lim.value > lim.bound if high else lim.value < lim.bound)
        if beyond:
            raise ProfileError(f"{where}: {ctx}value {lim.value} is beyond the profile's own bound {lim.bound}")
        limits[name] = lim
    return Profile(id=need(doc, "id", str, ""), version=str(need(doc, "version", str, "")),
                   title_zh=need(doc, "title_zh", str, ""), title_en=need(doc, "title_en", str, ""),
                   kinds=tuple(need(doc, "kinds", list, "")), unit=need(doc, "unit", str, ""),
                   latching=bool(doc.get("latching", False)), limits=limits, events=doc.get("events") or {},
                   path=path)


def profiles_dir() -> Path:
    return Path(str(resources.files("detectors") / "profiles"))


@lru_cache(maxsize=4)
def load_profiles(directory: str | None = None) -> dict[str, Profile]:
    d = Path(directory) if directory else profiles_dir()
    out: dict[str, Profile] = {}
    for path in sorted(d.glob("*.yaml")):
        prof = _profile(path, yaml.safe_load(path.read_text(encoding="utf-8")))
        if prof.id != path.stem:
            raise ProfileError(f"{path.name}: id {prof.id!r} must equal the file name {path.stem!r}")
        out[prof.id] = prof
    return out
