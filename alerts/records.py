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
_RULE_ZH = {"multivariate": "多参数综合异常", "dam_warning": "尾矿库综合预警",
            "vote": "表决", "failure_forecast": "失稳预测", "limit": "越限",
            "rate": "变化速率异常",
            "trend": "趋势预警", "drift": "读数漂移", "stuck": "读数卡滞", "offline": "数据中断",
            "out_of_range": "超出量程", "bad_quality": "数据质量坏值"}
_RULE_EN = {"multivariate": "multivariate deviation", "dam_warning": "dam warning",
            "vote": "voting", "failure_forecast": "failure forecast", "limit": "limit",
            "rate": "rate of change",
            "trend": "trend", "drift": "drift", "stuck": "stuck sensor", "offline": "no data",
            "out_of_range": "out of range", "bad_quality": "bad quality"}


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _unit(u: str) -> str:
    return u if u in ("%", "°C") else f" {u}"


def _raise_text(det: dict[str, Any], u: str) -> tuple[str, str]:
    """The condition itself, without the header and names."""
    rule, value, thr = det["rule"], _fmt(det["value"]), _fmt(det["threshold"])
    if rule == "limit":
        if det.get("action") == "power_off":
            return (f"{value}{u} 达到断电值 {thr}{u}，应立即切断相关区域电源并撤人",
                    f"{value}{u} at the power-off level {thr}{u}: cut power in the area and withdraw people")
        return f"{value}{u} {_LIMIT_ZH[det['limit']]} {thr}{u}", f"{value}{u} {_LIMIT_EN[det['limit']]} {thr}{u}"
    if rule == "rate":
        return (f"变化速率 {value}{u}/分钟，超过允许的 {thr}{u}/分钟",
                f"changing at {value}{u}/min, faster than the credible {thr}{u}/min")
    if rule == "trend":
        fc = det.get("forecast_s")
        mins = f"{fc / 60:.0f}" if fc is not None else "?"
        slope = _fmt(det.get("slope_per_min") or 0.0)
        return (f"按当前趋势（{slope}{u}/分钟）预计约 {mins} 分钟后达到限值 {thr}{u}（当前 {value}{u}）",
                f"at the current trend ({slope}{u}/min) reaches the limit {thr}{u} in about {mins} min "
                f"(now {value}{u})")
    if rule == "drift":
        return (f"读数偏离长期基线 {value}{u}，请校验传感器",
                f"reading drifted {value}{u} from its baseline; check calibration")
    if rule == "stuck":
        mins = f"{det['value'] / 60000:.0f}"
        return (f"读数已 {mins} 分钟无变化，而关联传感器显示工艺仍在进行（疑似卡滞，参照邦斯菲尔德事故）",
                f"flat for {mins} min while the related sensor shows the process moving (suspected stuck gauge)")
    if rule == "offline":
        return (f"已 {det['value']:.0f} 秒无数据（允许 {thr} 秒），通信或传感器故障",
                f"no data for {det['value']:.0f} s (allowed {thr} s): communication or sensor failure")
    if rule == "vote":
        n_alarm, k_eff = int(det["value"]), int(det["threshold"])
        voters = "、".join(det.get("voters", []))
        if det["limit"] == "confirmed":
            return (f"{det.get('koon', '')} 表决确认：{n_alarm} 台探测器同时报警（需 {k_eff} 台；{voters}）",
                    f"{det.get('koon', '')} confirmed: {n_alarm} detectors in alarm (needs {k_eff}; {voters})")
        return (f"表决组 {det.get('group', '')} 降级：仅 {det.get('n_healthy', '?')} 台探测器可用，"
                f"{k_eff} 台报警即确认",
                f"voting group {det.get('group', '')} degraded: {det.get('n_healthy', '?')} detectors usable, "
                f"{k_eff} alarm(s) now confirm")
    if rule == "failure_forecast":
        fc = det.get("forecast_s")
        hours = f"{fc / 3600:.1f}" if fc is not None else "?"
        return (f"位移加速，反速度法预测约 {hours} 小时后失稳（当前速率 {value}{u}/小时），请立即组织巡查和撤离准备",
                f"accelerating displacement: inverse-velocity forecast of slope failure in about {hours} h "
                f"(now {value}{u}/h); inspect and prepare evacuation")
    if rule == "multivariate":
        members = "、".join(det.get("members", []))
        return (f"多参数综合异常：{members} 的组合偏离学习到的正常工况（得分 {value}，超过 1 即报警），请检查设备",
                f"multivariate deviation: {', '.join(det.get('members', []))} together left the learned normal "
                f"operation (score {value}; above 1 raises); inspect the equipment")
    if rule == "dam_warning":
        zh_items = "、".join(f"{k} {v}" for k, v in (det.get("items_zh") or {}).items() if v != "无")
        en_items = ", ".join(f"{k} {v}" for k, v in (det.get("items") or {}).items() if v != "none")
        return (f"尾矿库综合预警为{det.get('dam_level_zh', '')}（GB 39496-2020 5.5.4 逐级汇总：{zh_items}），"
                f"请按应急预案响应",
                f"dam warning {det.get('dam_level', '')} by the GB 39496-2020 5.5.4 roll-up ({en_items}); "
                f"respond per the emergency plan")
    if rule == "out_of_range":
        return f"读数 {value}{u} 超出量程", f"reading {value}{u} outside the instrument range"
    return "数据质量标记为坏值", "the gateway marks the value as bad quality"


def alert_record(det: dict[str, Any], reg: Registry) -> dict[str, Any]:
    src = reg.sources[det["source"]]
    ent = reg.enterprises[src.enterprise]
    sensor = reg.sensors[det["sensor"]]
    lvl_zh, colour_zh, lvl_en, colour_en = LEVEL_NAMES[det["level"]]
    u = _unit(det["unit"])
    when = datetime.fromtimestamp(det["ts_ms"] / 1000, tz=UTC) + _CST
    clock = when.strftime("%Y-%m-%d %H:%M:%S") + " CST"
    who_zh = f"{ent.name_zh} {src.name_zh} {sensor.name_zh}"
    who_en = f"{ent.name_en} / {src.name_en} / {sensor.name_en}"
    state = det["state"]
    if state in ("raise", "realarm"):
        record_id = det["alert_id"] if state == "raise" else stable_id(det["alert_id"], state, det["ts_ms"])
        zh, en = _raise_text(det, u)
        again_zh, again_en = ("再次", "AGAIN ") if state == "realarm" else ("", "")
        zh = f"【{colour_zh}预警{again_zh}】{who_zh} {zh}（{lvl_zh}，{clock}，依据 {det['clause']}）"
        en = f"[{again_en}{colour_en.upper()} {lvl_en}] {who_en} {en} ({clock}; per {det['clause']})"
    else:
        record_id = stable_id(det["alert_id"], state, det["ts_ms"])
        value, thr = _fmt(det["value"]), _fmt(det["threshold"])
        if det["rule"] == "limit":
            high = det["limit"] in ("H", "HH")
            zh_dir = "回落至复位值" if high else "回升至复位值"
            en_dir = "back below reset level" if high else "back above reset level"
            zh_cond = f"{value}{u} 已{zh_dir} {thr}{u}{'以下' if high else '以上'}"
            en_cond = f"{value}{u} {en_dir} {thr}{u}"
            if det.get("action") == "re_energise":
                zh_cond += "，可以复电"
                en_cond += "; power may be restored"
        else:
            zh_cond, en_cond = f"{_RULE_ZH[det['rule']]}已恢复正常", f"{_RULE_EN[det['rule']]} back to normal"
        if state == "rtn":
            zh = f"【恢复待复位】{who_zh} {zh_cond}，报警已锁存，须人工复位（原{colour_zh}预警，{clock}）"
            en = f"[NORMAL, LATCHED] {who_en} {en_cond}; the alarm stays latched until reset ({colour_en}; {clock})"
        else:
            zh = f"【预警解除】{who_zh} {zh_cond}（原{colour_zh}预警，{clock}）"
            en = f"[CLEARED] {who_en} {en_cond} (was {colour_en} {lvl_en}; {clock})"
    return {**det, "record_id": record_id, "district": ent.district, "colour": colour_en,
            "source_grade": src.grade, "text_zh": zh, "text_en": en}
