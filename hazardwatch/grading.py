"""GB 18218-2018 grading of a major hazard source from its substances (static, design quantities)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Substance:
    name: str
    q_t: float  # design maximum quantity, tonnes
    Q_t: float  # critical quantity from the standard's tables, tonnes
    beta: float  # correction factor (toxic gases 2..20, most others 1, flammable gas 1.5)


def alpha_for_residents(residents_500m: int) -> float:
    """GB 18218-2018 table 5: exposure correction by people living within 500 m outside the boundary."""
    if residents_500m >= 100:
        return 2.0
    if residents_500m >= 50:
        return 1.5
    if residents_500m >= 30:
        return 1.2
    if residents_500m >= 1:
        return 1.0
    return 0.5


def gb18218_grade(substances: list[Substance], residents_500m: int) -> tuple[int, float]:
    """Return (grade 1..4, R). 一级 R >= 100; 二级 50..100; 三级 10..50; 四级 < 10."""
    r = alpha_for_residents(residents_500m) * sum(s.beta * s.q_t / s.Q_t for s in substances)
    if r >= 100:
        return 1, r
    if r >= 50:
        return 2, r
    if r >= 10:
        return 3, r
    return 4, r
