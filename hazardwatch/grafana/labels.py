"""Chinese + English labels and colours shared by every dashboard.

Level colours are the contract's (一级 red .. 四级 blue); rule names reuse the alert texts' own wording so a
duty officer reads the same words on the wall screen as in the page that woke them.
"""

from __future__ import annotations

from alerts.records import _RULE_EN, _RULE_ZH
from hazardwatch.registry import LEVEL_NAMES

LEVEL_COLOURS = {1: "#d62728", 2: "#ff7f0e", 3: "#f2cc0c", 4: "#1f77b4"}
NORMAL_COLOUR = "#2ca02c"  # a source with no active alert on the map


def level_label(level: int) -> str:
    """'一级 红色 Level 1 red'."""
    zh, colour_zh, en, colour_en = LEVEL_NAMES[level]
    return f"{zh} {colour_zh} {en} {colour_en}"


NORMAL_LABEL = "正常 normal"

# Alert rules; health rules are the sensor-health dashboard's (contract: rule tag values).
RULE_LABELS = {rule: f"{_RULE_ZH[rule]} {_RULE_EN[rule]}" for rule in sorted(_RULE_ZH)}
HEALTH_RULES = ("offline", "stuck", "bad_quality", "out_of_range", "drift")

SOURCE_KIND_LABELS = {
    "tank_farm": "储罐区 tank farm",
    "gas_area": "可燃有毒气体区域 gas area",
    "tailings_dam": "尾矿库 tailings dam",
    "coal_mine": "煤矿 coal mine",
}

SENSOR_KIND_LABELS = {
    "level": "液位 level",
    "temperature": "温度 temperature",
    "pressure": "压力 pressure",
    "flow": "流量 flow",
    "gas_combustible": "可燃气体 combustible gas",
    "gas_toxic": "有毒气体 toxic gas",
    "oxygen": "氧气 oxygen",
    "methane": "甲烷 methane",
    "carbon_monoxide": "一氧化碳 carbon monoxide",
    "wind_speed": "风速 air velocity",
    "phreatic_depth": "浸润线埋深 phreatic depth",
    "freeboard": "安全超高 freeboard",
    "dry_beach": "干滩长度 dry beach",
    "displacement": "位移 displacement",
    "rainfall": "降雨量 rainfall",
    "pond_level": "库水位 pond level",
}

# Registry units -> Grafana unit ids; anything else is shown as a suffix.
_UNITS = {"%": "percent", "°C": "celsius", "K": "kelvin", "kPa": "pressurekpa", "MPa": "pressurempa",
          "bar": "pressurebar", "m": "lengthm", "mm": "lengthmm", "ppm": "ppm", "m/s": "velocityms",
          "mg/m3": "conmgm3"}


def grafana_unit(unit: str) -> str:
    return _UNITS.get(unit, f"suffix: {unit.replace('m3', 'm³')}")


def variable_text(text: str) -> str:
    """Text safe inside a Grafana custom variable (',' separates options, ' : ' separates text from value)."""
    return text.replace(",", "，").replace(" : ", "：")
