"""Generate the example registry of the fictional city of Linjiang (临江市).

Run `python deploy/examples/make_registry.py > deploy/examples/city-registry.yaml` after editing. The YAML is
committed so readers can see a full registry without running anything; this script only saves typing.
"""

from __future__ import annotations

import sys

import yaml

GAS = "GB/T 50493-2019 5.5.2"
O2 = "GB/T 50493-2019 5.5.2 (oxygen)"
TANK = "site design value per AQ 3036-2010 4.2 (verify with the local emergency bureau)"
CH4 = "煤矿安全规程 (2022) 第498条 / AQ 1029-2019"
TSF = "GB 51108-2015 8.3 / GB 39496-2020 5.5"

DISTRICTS = [
    ("D01", "东港区", "Donggang District"),
    ("D02", "西山区", "Xishan District"),
    ("D03", "北岭县", "Beiling County"),
]
ENTERPRISES = [
    ("E01", "D01", "临江石化储运有限公司", "Linjiang Petrochemical Storage Co."),
    ("E02", "D01", "东港液化气码头有限公司", "Donggang LPG Terminal Co."),
    ("E03", "D01", "华昌化工股份有限公司", "Huachang Chemical Co."),
    ("E04", "D02", "临江氯碱化工有限公司", "Linjiang Chlor-Alkali Co."),
    ("E05", "D02", "西山矿业有限公司", "Xishan Mining Co."),
    ("E06", "D03", "北岭煤业有限公司", "Beiling Coal Co."),
    ("E07", "D03", "青石岭煤矿", "Qingshiling Colliery"),
    ("E08", "D02", "西山危化品仓储有限公司", "Xishan Hazchem Warehousing Co."),
]
SURNAMES = "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林高罗"
GIVEN = ["建国", "海涛", "志强", "丽华", "国庆", "晓东", "红梅", "文斌", "秀英", "永刚", "春燕", "立新"]


def lim(value: float, reset: float, clause: str, level: int | None = None) -> dict:
    d: dict = {"value": value, "reset": reset, "clause": clause}
    if level is not None:
        d["level"] = level
    return d


def people(n: int) -> list[dict]:
    roles = ["主要负责人 principal", "技术负责人 technical", "操作负责人 operational"]
    return [{"role": r, "name": SURNAMES[(n * 3 + i) % len(SURNAMES)] + GIVEN[(n * 5 + i) % len(GIVEN)],
             "phone": f"+86-139{(n * 7 + i) % 10}{n:03d}{i:04d}",
             "email": f"duty{n:02d}{i}@example.cn"} for i, r in enumerate(roles)]


def sensor(sid: str, kind: str, unit: str, period: float, rng: list, zh: str, en: str, limits: dict) -> dict:
    return {"id": sid, "kind": kind, "unit": unit, "period_s": period, "range": rng,
            "name_zh": zh, "name_en": en, "limits": limits}


def tank_sensors(src: str, tanks: int, product_zh: str, product_en: str, inflow: bool = False) -> list[dict]:
    out = []
    for t in range(1, tanks + 1):
        tag = f"{src}-T{t:02d}"
        short = f"T{t:02d}"
        level = sensor(f"{tag}-LT", "level", "%", 10, [0, 100], f"{short}储罐{product_zh}液位",
                       f"{short} {product_en} tank level", {})
        level["profile"] = "tank_level"
        # Time-to-overfill: warn when the fill trend reaches HH within 30 minutes.
        level["trend"] = {"horizon_s": 1800, "level": 3, "limit": "HH", "tau_s": 120}
        level["rate"] = {"max_per_min": 2.0, "level": 3,
                         "clause": "site design: largest credible level change 2 %/min (verify)"}
        if inflow:
            # Buncefield: a level gauge that stays flat while product flows in is itself an alarm.
            level["related"] = [f"{tag}-FT"]
            level["stuck_s"] = 300
        out.append(level)
        temp = sensor(f"{tag}-TT", "temperature", "°C", 30, [-40, 120], f"{short}储罐温度",
                      f"{short} tank temperature", {})
        temp["profile"] = "tank_temperature"
        out.append(temp)
        pres = sensor(f"{tag}-PT", "pressure", "kPa", 10, [-5, 50], f"{short}储罐压力", f"{short} tank pressure", {})
        pres["profile"] = "tank_pressure"
        out.append(pres)
        if inflow:
            out.append(sensor(f"{tag}-FT", "flow", "m3/h", 10, [0, 1500], f"{short}储罐进料流量",
                              f"{short} tank inflow", {}))
    return out


def _profiled(sid: str, kind: str, unit: str, period: float, rng: list, zh: str, en: str, profile: str,
              limits: dict | None = None) -> dict:
    d = sensor(sid, kind, unit, period, rng, zh, en, limits or {})
    d["profile"] = profile
    if not limits:
        del d["limits"]
    return d


def combustible(src: str, n: int, area_zh: str) -> list[dict]:
    return [_profiled(f"{src}-GC{i:02d}", "gas_combustible", "%LEL", 5, [0, 100], f"{area_zh}可燃气体探测器{i:02d}",
                      f"combustible gas detector {i:02d}", "gas_combustible") for i in range(1, n + 1)]


def toxic(src: str, n: int, gas: str, oel: float, area_zh: str) -> list[dict]:
    profile = f"gas_toxic_{gas.lower()}"
    return [_profiled(f"{src}-GT{i:02d}", "gas_toxic", "mg/m3", 5, [0, oel * 20],
                      f"{area_zh}{gas}有毒气体探测器{i:02d}", f"{gas} toxic gas detector {i:02d}", profile)
            for i in range(1, n + 1)]


def oxygen(src: str, n: int) -> list[dict]:
    return [_profiled(f"{src}-OX{i:02d}", "oxygen", "%VOL", 5, [0, 30], f"氧气探测器{i:02d}",
                      f"oxygen detector {i:02d}", "oxygen") for i in range(1, n + 1)]


def tailings(src: str, dam_grade: int) -> list[dict]:
    freeboard_min = {1: 1.5, 2: 1.0, 3: 0.7, 4: 0.5, 5: 0.4}[dam_grade]
    beach_min = {1: 150, 2: 100, 3: 70, 4: 50, 5: 40}[dam_grade]
    phreatic_min = 6.0 if dam_grade <= 3 else 4.0
    out = []
    for i in range(1, 9):
        d = _profiled(f"{src}-PZ{i:02d}", "phreatic_depth", "m", 600, [0, 40], f"浸润线埋深{i:02d}",
                      f"phreatic depth {i:02d}", "tailings_phreatic_depth")
        d["design"] = {"design_min": phreatic_min}
        out.append(d)
    for i in range(1, 9):
        d = _profiled(f"{src}-DS{i:02d}", "displacement", "mm", 600, [0, 500], f"坝体表面位移{i:02d}",
                      f"surface displacement {i:02d}", "tailings_displacement")
        d["design"] = {"design_red": 50.0}
        out.append(d)
    for i in range(1, 3):
        d = _profiled(f"{src}-FB{i:02d}", "freeboard", "m", 600, [0, 10], f"安全超高{i:02d}", f"freeboard {i:02d}",
                      "tailings_freeboard")
        d["design"] = {"design_min": freeboard_min}
        out.append(d)
        d = _profiled(f"{src}-BL{i:02d}", "dry_beach", "m", 600, [0, 500], f"干滩长度{i:02d}",
                      f"dry beach length {i:02d}", "tailings_dry_beach")
        d["design"] = {"design_min": beach_min}
        out.append(d)
    out.append(_profiled(f"{src}-RG01", "rainfall", "mm", 600, [0, 300], "降雨量(24小时累计)", "rainfall (24 h total)",
                         "tailings_rainfall"))
    d = _profiled(f"{src}-WL01", "pond_level", "m", 600, [0, 100], "库水位", "pond water level", "tailings_pond_level")
    d["design"] = {"design_max": 85.0}
    out.append(d)
    return out


def coal(src: str, faces: int) -> list[dict]:
    out = []
    for f in range(1, faces + 1):
        face = f"F{f}"
        for loc, profile, zh, en in [
            ("T0", "methane_t0", "上隅角", "upper corner T0"),
            ("T1", "methane_t1", "工作面", "coal face T1"),
            ("T2", "methane_t2", "回风巷", "face return airway T2"),
            ("SH", "methane_shearer", "采煤机", "shearer-mounted"),
        ]:
            out.append(_profiled(f"{src}-{face}-CH4-{loc}", "methane", "%CH4", 10, [0, 40],
                                 f"{face}{zh}甲烷", f"{face} methane {en}", profile))
        out.append(sensor(f"{src}-{face}-CO", "carbon_monoxide", "ppm", 10, [0, 1000], f"{face}一氧化碳",
                          f"{face} carbon monoxide", {"H": lim(24, 20, "煤矿安全规程 第135条 CO 24 ppm", 2)}))
        out.append(sensor(f"{src}-{face}-WS", "wind_speed", "m/s", 10, [0, 15], f"{face}风速", f"{face} air velocity",
                          {"L": lim(0.25, 0.3, "煤矿安全规程 第136条 minimum face air velocity", 2)}))
    out.append(_profiled(f"{src}-T3-CH4", "methane", "%CH4", 10, [0, 40], "进风巷甲烷T3", "intake airway methane T3",
                         "methane_t3"))
    out.append(sensor(f"{src}-MR-CH4", "methane", "%CH4", 10, [0, 40], "总回风巷甲烷", "main return methane",
                      {"H": lim(0.75, 0.7, "煤矿安全规程 第172条 main return > 0.75% investigate", 3)}))
    return out


def build() -> dict:
    sources = [
        ("S01", "E01", "tank_farm", "一号汽油罐区", "No.1 gasoline tank farm", 3,
         tank_sensors("S01", 10, "汽油", "gasoline", inflow=True) + combustible("S01", 12, "一号罐区")),
        ("S02", "E01", "tank_farm", "原油罐区", "crude oil tank farm", 2,
         tank_sensors("S02", 6, "原油", "crude") + combustible("S02", 12, "原油罐区")),
        ("S03", "E02", "gas_area", "液化石油气球罐区", "LPG sphere area", 1,
         tank_sensors("S03", 4, "液化石油气", "LPG") + combustible("S03", 16, "球罐区")),
        ("S04", "E03", "gas_area", "液氨装置区", "ammonia unit", 2,
         toxic("S04", 16, "NH3", 20, "液氨区") + oxygen("S04", 2) + tank_sensors("S04", 2, "液氨", "ammonia")),
        ("S05", "E03", "tank_farm", "甲醇罐区", "methanol tank farm", 3,
         tank_sensors("S05", 5, "甲醇", "methanol") + combustible("S05", 12, "甲醇罐区")),
        ("S06", "E04", "gas_area", "液氯储存区", "liquid chlorine store", 1,
         toxic("S06", 18, "Cl2", 1, "液氯区") + oxygen("S06", 2)),
        ("S07", "E04", "tank_farm", "烧碱罐区", "caustic soda tank farm", 4, tank_sensors("S07", 4, "烧碱", "caustic")),
        ("S08", "E05", "tailings_dam", "西沟尾矿库", "Xigou tailings dam", 2, tailings("S08", 2)),
        ("S09", "E05", "tailings_dam", "东沟尾矿库", "Donggou tailings dam", 3, tailings("S09", 3)),
        ("S10", "E06", "coal_mine", "北岭一号井", "Beiling No.1 shaft", 2, coal("S10", 3)),
        ("S11", "E07", "coal_mine", "青石岭矿井", "Qingshiling mine", 2, coal("S11", 2)),
        ("S12", "E08", "tank_farm", "危化品仓储罐区", "hazchem storage tank farm", 3,
         tank_sensors("S12", 6, "苯", "benzene") + combustible("S12", 14, "仓储罐区")
         + toxic("S12", 4, "H2S", 10, "仓储区")),
    ]
    base = {"D01": (30.62, 122.06), "D02": (30.55, 121.92), "D03": (30.78, 121.98)}
    ent_district = {e[0]: e[1] for e in ENTERPRISES}
    doc = {
        "version": 1,
        "city": {"id": "LJ", "name_zh": "临江市", "name_en": "Linjiang City",
                 # The municipal emergency command centre: its wall-screen webhook, then its DingTalk group.
                 "duty": [{"name": "临江市应急指挥中心值班室", "role": "市级值班 municipal duty desk",
                           "notify": {"webhook": "command-centre", "dingtalk": "city", "sms": "+86-5740-12350"}}]},
        "districts": [{"id": d, "name_zh": zh, "name_en": en,
                       "duty": [{"name": f"{zh}应急管理局值班室", "role": "区县值班 district duty desk",
                                 "notify": {"dingtalk": d, "sms": f"+86-5740-1235{i}"}}]}
                      for i, (d, zh, en) in enumerate(DISTRICTS, start=1)],
        "enterprises": [{"id": e, "district": d, "name_zh": zh, "name_en": en, "mqtt_user": e.lower(),
                         # The 24-hour control room (国务院令第708号): its WeCom group first, the desk phone next.
                         "control_room": [{"name": f"{zh}中控室", "role": "中控室值班 control room",
                                           "notify": {"wecom": e, "sms": f"+86-5740-88{i:02d}0000",
                                                      "email": f"control@{e.lower()}.example"}}]}
                        for i, (e, d, zh, en) in enumerate(ENTERPRISES, start=1)],
        # Escalation timing: the defaults (hazardwatch/duty.py) spelled out for red so sites see where to edit.
        # A first-grade major hazard source (一级重大危险源) gets shorter deadlines for red and orange.
        "escalation": {
            "levels": {1: {"deadlines_s": [60, 240, 480], "repeat_s": 60, "reescalate_s": 1800,
                           "top_tier": "city"}},
            "grades": {1: {"levels": {1: {"deadlines_s": [60, 180, 300], "repeat_s": 60, "reescalate_s": 1200,
                                          "top_tier": "city"},
                                      2: {"deadlines_s": [180, 420, 900], "repeat_s": 120, "reescalate_s": 2400,
                                          "top_tier": "city"}}}},
            "max_shelve_s": 28800,
        },
        "hazard_sources": [],
    }
    for n, (sid, ent, kind, zh, en, grade, sensors) in enumerate(sources, start=1):
        lat, lon = base[ent_district[ent]]
        src = {"id": sid, "enterprise": ent, "kind": kind, "name_zh": zh, "name_en": en,
               "location": {"lat": round(lat + 0.013 * (n % 4), 4), "lon": round(lon + 0.017 * (n % 5), 4)}}
        if sid == "S06":
            # One source shows the GB 18218 inputs instead of a declared grade: 60 t Cl2, Q = 5 t, beta = 4.
            src["gb18218"] = {"residents_500m": 120,
                              "substances": [{"name": "氯 chlorine", "q_t": 60.0, "Q_t": 5.0, "beta": 4.0}]}
        else:
            src["grade"] = grade
        src["responsible"] = people(n)
        src["sensors"] = sensors
        # Gas detectors confirm each other in threes (GB 16808-2025): 2oo3 on the level-1 alarm.
        gas = [x["id"] for x in sensors if x["kind"] in ("gas_combustible", "gas_toxic")]
        groups = [gas[i:i + 3] for i in range(0, len(gas) - 2, 3)]
        if groups:
            src["voting"] = [{"id": f"{sid}-V{k + 1:02d}", "koon": "2oo3", "sensors": g, "limit": "H"}
                             for k, g in enumerate(groups)]
        if sid == "S01":
            # Tank T03's level, pressure and inflow (all every 10 s, one payload) scored together by a model
            # learned from its first day: a pressure or flow pattern the tank has not shown before, even within
            # every limit. The level drifts as the tank fills and empties, so it is judged by its rate. A day, not
            # an hour: the simulated normal day showed an hour of night holds no transfer and no morning warming
            # of the vapour space, so a model learned from it raised alarms on ordinary operations.
            src["multivariate"] = [{"id": "S01-T03-MV", "sensors": ["S01-T03-LT", "S01-T03-PT", "S01-T03-FT"],
                                    "rate_sensors": ["S01-T03-LT"], "train_rows": 8640, "level": 3}]
        doc["hazard_sources"].append(src)
    return doc


class _Dumper(yaml.SafeDumper):
    pass


def _flow_limits(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    # Limits and locations read best on one line each.
    flow = set(data) <= {"value", "reset", "clause", "level", "lat", "lon", "webhook", "dingtalk", "sms", "wecom",
                         "email"}
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


def _flow_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, int | float) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(dict, _flow_limits)
_Dumper.add_representer(list, _flow_list)

if __name__ == "__main__":
    sys.stdout.write("# Example registry of the fictional city of Linjiang (临江市). Generated by make_registry.py.\n")
    sys.stdout.write("# Values marked (verify) must be confirmed with the local emergency bureau.\n")
    yaml.dump(build(), sys.stdout, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=140)
