"""Alert records: a detection graded and worded for people, in Chinese and English.

【红色预警】临江石化储运有限公司 一号汽油罐区 T03储罐汽油液位 95.2% 超过高高限 90% ...
The alert id is the detection's deterministic id, so a detection replayed after a restart maps to the same
alert and the ledger (the alerts topic itself) refuses to publish it twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hazardwatch.model import stable_id
from hazardwatch.registry import LEVEL_NAMES, Registry

_CST = timedelta(hours=8)  # duty officers read China Standard Time

_LIMIT_ZH = {"HH": "超过高高限", "H": "超过高限", "L": "低于低限", "LL": "低于低低限"}
_LIMIT_EN = {"HH": "above high-high limit", "H": "above high limit", "L": "below low limit",
             "LL": "below low-low limit"}


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _unit(u: str) -> str:
    return u if u in ("%", "°C") else f" {u}"


def alert_record(det: dict[str, Any], reg: Registry) -> dict[str, Any]:
    src = reg.sources[det["source"]]
    ent = reg.enterprises[src.enterprise]
    sensor = reg.sensors[det["sensor"]]
    lvl_zh, colour_zh, lvl_en, colour_en = LEVEL_NAMES[det["level"]]
    u = _unit(det["unit"])
    when = datetime.fromtimestamp(det["ts_ms"] / 1000, tz=UTC) + _CST
    clock = when.strftime("%Y-%m-%d %H:%M:%S") + " CST"
    value, thr = _fmt(det["value"]), _fmt(det["threshold"])
    if det["state"] == "raise":
        record_id = det["alert_id"]
        zh = (f"【{colour_zh}预警】{ent.name_zh} {src.name_zh} {sensor.name_zh} {value}{u} "
              f"{_LIMIT_ZH[det['limit']]} {thr}{u}（{lvl_zh}，{clock}，依据 {det['clause']}）")
        en = (f"[{colour_en.upper()} {lvl_en}] {ent.name_en} / {src.name_en} / {sensor.name_en} {value}{u} "
              f"{_LIMIT_EN[det['limit']]} {thr}{u} ({clock}; per {det['clause']})")
    else:
        record_id = stable_id(det["alert_id"], "clear", det["ts_ms"])
        high = det["limit"] in ("H", "HH")
        zh_dir = "回落至复位值" if high else "回升至复位值"
        en_dir = "back below reset level" if high else "back above reset level"
        zh = (f"【预警解除】{ent.name_zh} {src.name_zh} {sensor.name_zh} {value}{u} 已{zh_dir} {thr}{u}"
              f"{'以下' if high else '以上'}（原{colour_zh}预警，{clock}）")
        en = (f"[CLEARED] {ent.name_en} / {src.name_en} / {sensor.name_en} {value}{u} {en_dir} {thr}{u} "
              f"(was {colour_en} {lvl_en}; {clock})")
    return {**det, "record_id": record_id, "district": ent.district, "colour": colour_en,
            "source_grade": src.grade, "text_zh": zh, "text_en": en}
