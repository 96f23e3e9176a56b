"""What a simulation produces: per-sensor traces in simulated time, and the ground truth that goes with them.

Every simulator and scenario returns these shapes; the players (the offline engine player and the pipeline
runner) and the scorer read nothing else. Times are seconds from the scenario's start (float); a player anchors
them to an epoch when it publishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hazardwatch.model import Q_BAD, Q_GOOD, Q_UNCERTAIN

__all__ = ["Q_BAD", "Q_GOOD", "Q_UNCERTAIN", "Expected", "Fault", "Scenario", "Trace"]


@dataclass
class Trace:
    """One sensor's readings as the field gateway would send them (after faults: a dropout is missing rows)."""

    sensor: str
    t_s: np.ndarray  # float64, seconds from the scenario start, strictly increasing
    value: np.ndarray  # float64, in the registry's unit
    quality: np.ndarray  # int8, Q_GOOD / Q_UNCERTAIN / Q_BAD

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=np.float64)
        self.value = np.asarray(self.value, dtype=np.float64)
        self.quality = (np.zeros(len(self.t_s), dtype=np.int8) if self.quality is None
                        else np.asarray(self.quality, dtype=np.int8))
        if not (len(self.t_s) == len(self.value) == len(self.quality)):
            raise ValueError(f"trace {self.sensor}: t_s, value and quality differ in length")

    def __len__(self) -> int:
        return len(self.t_s)


@dataclass(frozen=True)
class Expected:
    """An alert the scenario must raise: on `target` (a sensor id, or a voting/multivariate group or source id
    for group rules), by `rule` (and `limit` when it matters), at `level` or more severe (1 red .. 4 blue),
    after `onset_s` and before `hazard_s` (the hazardous point: overflow, explosive atmosphere, failure)."""

    target: str
    rule: str
    level: int
    onset_s: float
    hazard_s: float
    limit: str | None = None
    why: str = ""  # one line for the report: what a duty officer would have to do with this alert


@dataclass(frozen=True)
class Fault:
    """A sensor fault injected into a trace. Its alert is expected (sensor health), not a false alarm."""

    sensor: str
    kind: str  # stuck | drift | dropout | spikes | bad_quality
    start_s: float
    end_s: float
    rules: tuple[str, ...]  # rules that may rightly fire on this sensor because of the fault


@dataclass
class Scenario:
    name: str
    title_zh: str
    title_en: str
    duration_s: float
    sources: tuple[str, ...]  # hazard sources whose sensors are played
    traces: list[Trace]
    expected: list[Expected] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # (target, rule) alerts that are a correct consequence of the incident but not its ground truth (e.g. the
    # HH power-off after the H alarm): reported, never counted as unexpected. "*" matches any target or rule.
    consequential: list[tuple[str, str]] = field(default_factory=list)
    onset_s: float | None = None  # when the incident begins (None for a normal day)
    hazard_s: float | None = None  # the hazardous point of the incident
    notes: str = ""

    @property
    def readings(self) -> int:
        return sum(len(t) for t in self.traces)
