"""The registry: districts, enterprises, hazard sources and their sensors, loaded from YAML and validated.

Every stage reads the same registry. Loading collects every problem before failing, and each message names
the file, the line, the key path and the fix, because the person editing it is a plant engineer, not us.
Sensors get a stable integer slot (their order in the file) so detectors can keep state in NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from detectors.multivariate import Config as _MVConfig
from hazardwatch.duty import DutyRoster, parse_contact, parse_contacts, parse_policy
from hazardwatch.grading import Substance, gb18218_grade
from hazardwatch.profiles import Profile, load_profiles
from hazardwatch.yamllines import LineDict as _LineDict
from hazardwatch.yamllines import LineLoader as _LineLoader

SOURCE_KINDS = ("tank_farm", "gas_area", "tailings_dam", "coal_mine")

# Units each sensor kind may be configured in. Readings in another listed unit are converted by ingest.
SENSOR_UNITS: dict[str, tuple[str, ...]] = {
    "level": ("%", "m", "mm"),
    "temperature": ("°C", "K"),
    "pressure": ("kPa", "MPa", "bar"),
    "flow": ("m3/h", "t/h"),
    "gas_combustible": ("%LEL",),
    "gas_toxic": ("%OEL", "ppm", "mg/m3"),
    "oxygen": ("%VOL",),
    "methane": ("%CH4",),
    "carbon_monoxide": ("ppm",),
    "wind_speed": ("m/s",),
    "phreatic_depth": ("m",),
    "freeboard": ("m",),
    "dry_beach": ("m",),
    "displacement": ("mm", "m"),
    "rainfall": ("mm",),
    "pond_level": ("m",),
}

# Limit names in ISA-18.2 style. High limits alarm at value >= set, clear at value <= reset (reset < set);
# low limits alarm at value <= set, clear at value >= reset (reset > set).
LIMIT_NAMES = ("LL", "L", "H", "HH")
HIGH_LIMITS = ("H", "HH")
# Government warning levels: 1 一级 red (most severe) .. 4 四级 blue.
DEFAULT_LIMIT_LEVEL = {"HH": 2, "LL": 2, "H": 3, "L": 3}
LEVEL_NAMES = {
    1: ("一级", "红色", "Level 1", "red"),
    2: ("二级", "橙色", "Level 2", "orange"),
    3: ("三级", "黄色", "Level 3", "yellow"),
    4: ("四级", "蓝色", "Level 4", "blue"),
}


class RegistryError(ValueError):
    """The registry file is invalid; ``problems`` lists every message."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        head = f"registry {path} has {len(problems)} problem(s):"
        super().__init__("\n  - ".join([head, *problems]))


@dataclass(frozen=True)
class District:
    id: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Enterprise:
    id: str
    district: str
    name_zh: str
    name_en: str
    mqtt_user: str


@dataclass(frozen=True)
class Person:
    role: str
    name: str
    phone: str


@dataclass(frozen=True)
class Limit:
    name: str  # LL, L, H, HH
    value: float
    reset: float
    level: int  # 1 (red) .. 4 (blue)
    clause: str
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    latching: bool = False
    raise_name: str = "raise"  # methane HH: power_off
    clear_name: str = "clear"  # methane HH: re_energise


@dataclass(frozen=True)
class RateSpec:
    max_per_min: float  # absolute rate of change that alarms, in the sensor's unit per minute
    level: int
    clause: str


@dataclass(frozen=True)
class TrendSpec:
    horizon_s: float  # warn when the trend reaches the limit within this time
    level: int
    limit: str  # which limit the forecast aims at (HH by default)
    tau_s: float  # time constant of the exponentially weighted slope


@dataclass(frozen=True)
class Sensor:
    id: str
    source: str
    kind: str
    unit: str
    period_s: float
    range: tuple[float, float]
    limits: tuple[Limit, ...]
    name_zh: str
    name_en: str
    slot: int
    profile: str | None = None
    rate: RateSpec | None = None
    trend: TrendSpec | None = None
    related: tuple[str, ...] = ()  # sensors that must move when this one moves (stuck-gauge detection)
    stuck_s: float | None = None  # flat for this long while a related sensor moves -> stuck


@dataclass(frozen=True)
class VotingGroup:
    """Gas detectors that confirm each other (GB 16808-2025: confirmation by two or more detectors)."""

    id: str
    source: str
    koon: str  # k-out-of-n, e.g. 2oo3
    sensors: tuple[str, ...]
    limit: str  # which limit's alarm votes (H: level-1 gas alarm)


_MV = _MVConfig()  # defaults of the multivariate detector's settings


@dataclass(frozen=True)
class MultivariateGroup:
    """Sensors of one machine scored together by detectors.multivariate, learned online (detectors.mvgroup).

    The first train_rows complete rows (all sensors reporting with one timestamp) are taken as normal operation.
    """

    id: str
    source: str
    sensors: tuple[str, ...]  # columns, in this order
    rate_sensors: tuple[str, ...] = ()  # drifting levels judged by their rate of change over `lag` rows
    train_rows: int = 400
    window: int = _MV.window
    lag: int = _MV.lag
    on_factor: float = _MV.on_factor
    off_ratio: float = _MV.off_ratio
    hold: int = _MV.hold
    feature_quantile: float = _MV.feature_quantile
    level: int = 3


@dataclass(frozen=True)
class HazardSource:
    id: str
    enterprise: str
    kind: str
    name_zh: str
    name_en: str
    lat: float
    lon: float
    grade: int
    grade_basis: str
    responsible: tuple[Person, ...]
    sensors: tuple[str, ...]
    voting: tuple[VotingGroup, ...] = ()
    multivariate: tuple[MultivariateGroup, ...] = ()


@dataclass
class Registry:
    path: Path
    city_zh: str
    city_en: str
    districts: dict[str, District]
    enterprises: dict[str, Enterprise]
    sources: dict[str, HazardSource]
    sensors: dict[str, Sensor]
    sensor_ids: list[str] = field(default_factory=list)
    duty: DutyRoster = field(default_factory=DutyRoster)

    # Column arrays over sensor slots, built once so the hot path indexes instead of looking up.
    def __post_init__(self) -> None:
        self.sensor_ids = [s.id for s in sorted(self.sensors.values(), key=lambda s: s.slot)]
        n = len(self.sensor_ids)
        self.source_ids = list(self.sources)
        src_pos = {sid: i for i, sid in enumerate(self.source_ids)}
        self.sensor_source = np.array([src_pos[self.sensors[s].source] for s in self.sensor_ids], dtype=np.int32)
        self.period_s = np.array([self.sensors[s].period_s for s in self.sensor_ids], dtype=np.float64)
        self.range_lo = np.array([self.sensors[s].range[0] for s in self.sensor_ids], dtype=np.float64)
        self.range_hi = np.array([self.sensors[s].range[1] for s in self.sensor_ids], dtype=np.float64)
        # limit_set/limit_reset[slot, k] for k over LIMIT_NAMES; NaN where the sensor has no such limit.
        self.limit_set = np.full((n, len(LIMIT_NAMES)), np.nan)
        self.limit_reset = np.full((n, len(LIMIT_NAMES)), np.nan)
        self.limit_level = np.zeros((n, len(LIMIT_NAMES)), dtype=np.int8)
        self.limit_on_delay_ms = np.zeros((n, len(LIMIT_NAMES)), dtype=np.int64)
        self.limit_off_delay_ms = np.zeros((n, len(LIMIT_NAMES)), dtype=np.int64)
        self.limit_latching = np.zeros((n, len(LIMIT_NAMES)), dtype=bool)
        for slot, sid in enumerate(self.sensor_ids):
            for lim in self.sensors[sid].limits:
                k = LIMIT_NAMES.index(lim.name)
                self.limit_set[slot, k] = lim.value
                self.limit_reset[slot, k] = lim.reset
                self.limit_level[slot, k] = lim.level
                self.limit_on_delay_ms[slot, k] = round(lim.on_delay_s * 1000)
                self.limit_off_delay_ms[slot, k] = round(lim.off_delay_s * 1000)
                self.limit_latching[slot, k] = lim.latching

    def slot(self, sensor_id: str) -> int | None:
        s = self.sensors.get(sensor_id)
        return None if s is None else s.slot

    def enterprise_of_source(self, source_id: str) -> Enterprise:
        return self.enterprises[self.sources[source_id].enterprise]

    def limit(self, sensor_id: str, name: str) -> Limit:
        for lim in self.sensors[sensor_id].limits:
            if lim.name == name:
                return lim
        raise KeyError(f"sensor {sensor_id} has no limit {name}")


# ---- YAML with line numbers -----------------------------------------------------------------------------


class _Checker:
    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def fail(self, node: Any, key: str, where: str, fix: str) -> None:
        line = None
        if isinstance(node, _LineDict):
            line = getattr(node, "key_lines", {}).get(key.rsplit(".", 1)[-1], node.line) or None
        loc = f"{self.path.name}:{line}" if line else self.path.name
        self.problems.append(f"{loc} {where}: {fix}")

    def req(self, node: Any, key: str, where: str, kind: type | tuple[type, ...], fix: str = "") -> Any:
        if not isinstance(node, dict) or key not in node:
            self.fail(node, key, f"{where}.{key}", f"missing; add `{key}:`" + (f" ({fix})" if fix else ""))
            return None
        value = node[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(node, key, f"{where}.{key}", f"is {value!r}; it must be a {want}" + (f" ({fix})" if fix else ""))
            return None
        return value

    def opt(self, node: Any, key: str, where: str, kind: type, default: Any) -> Any:
        if not isinstance(node, dict) or key not in node:
            return default
        return self.req(node, key, where, kind)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def load_registry(path: str | Path) -> Registry:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(path, [f"file not found; set HW_REGISTRY to your registry or create {path}"]) from None
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        problem = getattr(exc, "problem", exc)
        raise RegistryError(path, [f"{where} is not valid YAML ({problem}); fix the syntax"]) from None
    c = _Checker(path)
    if not isinstance(doc, dict):
        raise RegistryError(path, [f"{path.name}: the top level must be a mapping with districts, enterprises, "
                                   "hazard_sources"])
    city = doc.get("city") or {}
    districts: dict[str, District] = {}
    district_duty: dict[str, tuple] = {}
    control_rooms: dict[str, tuple] = {}
    responsible: dict[str, tuple] = {}
    for i, d in enumerate(doc.get("districts") or []):
        w = f"districts[{i}]"
        did = c.req(d, "id", w, str)
        zh, en = c.req(d, "name_zh", w, str), c.req(d, "name_en", w, str)
        if did and did in districts:
            c.fail(d, "id", f"{w}.id", f"duplicate district id {did!r}; ids must be unique")
        elif did:
            districts[did] = District(did, zh or "", en or "")
            district_duty[did] = parse_contacts(c, d, "duty", w)
    if not districts:
        c.fail(doc, "districts", "districts", "no districts; list at least one with id, name_zh, name_en")

    enterprises: dict[str, Enterprise] = {}
    users: set[str] = set()
    for i, e in enumerate(doc.get("enterprises") or []):
        w = f"enterprises[{i}]"
        eid = c.req(e, "id", w, str)
        dist = c.req(e, "district", w, str)
        zh, en = c.req(e, "name_zh", w, str), c.req(e, "name_en", w, str)
        if dist and dist not in districts:
            c.fail(e, "district", f"{w}.district", f"unknown district {dist!r}; use one of {sorted(districts)}")
        if eid and not eid.replace("-", "").replace("_", "").isalnum():
            c.fail(e, "id", f"{w}.id",
                   f"{eid!r} may only hold letters, digits, '-' and '_' (it is an MQTT topic level)")
        user = c.opt(e, "mqtt_user", w, str, (eid or "").lower())
        if user in users:
            c.fail(e, "mqtt_user", f"{w}.mqtt_user", f"{user!r} is used by another enterprise; give each its own")
        users.add(user)
        if eid and eid in enterprises:
            c.fail(e, "id", f"{w}.id", f"duplicate enterprise id {eid!r}")
        elif eid:
            enterprises[eid] = Enterprise(eid, dist or "", zh or "", en or "", user)
            control_rooms[eid] = parse_contacts(c, e, "control_room", w)

    sources: dict[str, HazardSource] = {}
    sensors: dict[str, Sensor] = {}
    mv_ids: set[str] = set()
    for i, s in enumerate(doc.get("hazard_sources") or []):
        w = f"hazard_sources[{i}]"
        sid = c.req(s, "id", w, str)
        if sid:
            w = f"hazard_sources[{sid}]"
        ent = c.req(s, "enterprise", w, str)
        kind = c.req(s, "kind", w, str)
        zh, en = c.req(s, "name_zh", w, str), c.req(s, "name_en", w, str)
        if ent and ent not in enterprises:
            c.fail(s, "enterprise", f"{w}.enterprise", f"unknown enterprise {ent!r}; use one of {sorted(enterprises)}")
        if kind and kind not in SOURCE_KINDS:
            c.fail(s, "kind", f"{w}.kind", f"{kind!r} is not a hazard source kind; use one of {list(SOURCE_KINDS)}")
        loc = c.req(s, "location", w, dict, "lat and lon in degrees")
        lat = lon = 0.0
        if loc is not None:
            lat = c.req(loc, "lat", f"{w}.location", float) or 0.0
            lon = c.req(loc, "lon", f"{w}.location", float) or 0.0
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                c.fail(loc, "lat", f"{w}.location", f"({lat}, {lon}) is not a place on Earth; give lat, lon in degrees")
        grade, basis = _grade(c, s, w)
        people = []
        for j, p in enumerate(s.get("responsible") or [] if isinstance(s, dict) else []):
            pw = f"{w}.responsible[{j}]"
            role, name, phone = c.req(p, "role", pw, str), c.req(p, "name", pw, str), c.req(p, "phone", pw, str)
            people.append(Person(role or "", name or "", phone or ""))
            contact = parse_contact(c, p, pw) if role and name and phone else None
            if contact and sid:
                responsible[sid] = (*responsible.get(sid, ()), contact)
        if isinstance(s, dict) and not people:
            c.fail(s, "responsible", f"{w}.responsible", "list the source's 包保责任人 (role, name, phone); "
                   "they are the first people paged")
        sensor_ids = []
        for j, x in enumerate(s.get("sensors") or [] if isinstance(s, dict) else []):
            sensor = _sensor(c, x, f"{w}.sensors[{j}]", sid or "", len(sensors))
            if sensor is None:
                continue
            if sensor.id in sensors:
                c.fail(x, "id", f"{w}.sensors[{j}].id",
                       f"duplicate sensor id {sensor.id!r}; sensor ids are unique city-wide")
                continue
            sensors[sensor.id] = sensor
            sensor_ids.append(sensor.id)
        voting = _voting(c, s, w, sid or "", sensor_ids, sensors)
        multivariate = _multivariate(c, s, w, sid or "", sensor_ids, mv_ids)
        if sid and sid in sources:
            c.fail(s, "id", f"{w}.id", f"duplicate hazard source id {sid!r}")
        elif sid:
            sources[sid] = HazardSource(sid, ent or "", kind or "", zh or "", en or "", lat, lon, grade, basis,
                                        tuple(people), tuple(sensor_ids), voting, multivariate)
    if not sources:
        c.fail(doc, "hazard_sources", "hazard_sources", "no hazard sources; list at least one")
    for sensor in sensors.values():
        for other in sensor.related:
            if other not in sensors:
                c.fail(doc, "hazard_sources", f"hazard_sources[{sensor.source}].sensors[{sensor.id}].related",
                       f"unknown sensor {other!r}; related sensors must be in the registry")
    roster = DutyRoster(parse_contacts(c, city, "duty", "city"), district_duty, control_rooms, responsible,
                        parse_policy(c, doc))
    if c.problems:
        raise RegistryError(path, c.problems)
    return Registry(path, str(city.get("name_zh", "")), str(city.get("name_en", "")),
                    districts, enterprises, sources, sensors, duty=roster)


def _voting(c: _Checker, s: Any, w: str, source: str, own: list[str],
            sensors: dict[str, Sensor]) -> tuple[VotingGroup, ...]:
    out: list[VotingGroup] = []
    used: set[str] = set()
    for j, g in enumerate(s.get("voting") or [] if isinstance(s, dict) else []):
        gw = f"{w}.voting[{j}]"
        gid, koon = c.req(g, "id", gw, str), c.req(g, "koon", gw, str, "k-out-of-n such as 2oo3")
        members = c.req(g, "sensors", gw, list)
        limit = c.opt(g, "limit", gw, str, "H")
        if None in (gid, koon, members, limit):
            continue
        parts = koon.lower().split("oo")
        if len(parts) != 2 or not all(p.isdigit() for p in parts) or not 1 <= int(parts[0]) <= int(parts[1]):
            c.fail(g, "koon", f"{gw}.koon", f"{koon!r} is not k-out-of-n; write e.g. 2oo3")
            continue
        if int(parts[1]) != len(members):
            c.fail(g, "sensors", f"{gw}.sensors", f"{koon} needs exactly {parts[1]} sensors, got {len(members)}")
            continue
        bad = [m for m in members if m not in own]
        if bad:
            c.fail(g, "sensors", f"{gw}.sensors", f"{bad} are not sensors of source {source}")
            continue
        twice = [m for m in members if m in used]
        if twice:
            c.fail(g, "sensors", f"{gw}.sensors", f"{twice} already vote in another group; a detector votes once")
            continue
        if any(limit not in {lim.name for lim in sensors[m].limits} for m in members):
            c.fail(g, "limit", f"{gw}.limit", f"every voter needs a {limit} limit")
            continue
        used.update(members)
        out.append(VotingGroup(gid, source, koon.lower(), tuple(members), limit))
    return tuple(out)


_MV_KEYS = ("id", "sensors", "rate_sensors", "train_rows", "window", "lag", "on_factor", "off_ratio", "hold",
            "feature_quantile", "level")


def _multivariate(c: _Checker, s: Any, w: str, source: str, own: list[str],
                  ids: set[str]) -> tuple[MultivariateGroup, ...]:
    """`multivariate:` groups of one source. ids collects group ids city-wide: they are part of the alert id."""
    raw = s.get("multivariate") if isinstance(s, dict) else None
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.fail(s, "multivariate", f"{w}.multivariate", "must be a list of groups, each with id and sensors")
        return ()
    out: list[MultivariateGroup] = []
    used: dict[str, str] = {}
    for j, g in enumerate(raw):
        gw = f"{w}.multivariate[{j}]"
        if not isinstance(g, dict):
            c.fail(s, "multivariate", gw, f"is {g!r}; each group is a mapping with id, sensors, ...")
            continue
        gid = c.req(g, "id", gw, str, "a name for the group, unique in the city, e.g. S01-P1-MV")
        ok = gid is not None
        if gid:
            gw = f"{w}.multivariate[{gid}]"
            if gid in ids:
                c.fail(g, "id", f"{gw}.id", f"duplicate multivariate group id {gid!r}; ids must be unique city-wide "
                       "(the id is part of the alert id)")
                ok = False
            ids.add(gid)
        for k in g:
            if k not in _MV_KEYS:
                c.fail(g, str(k), f"{gw}.{k}", f"unknown key; use {list(_MV_KEYS)}")
                ok = False
        members = _sensor_list(c, g, "sensors", gw, own, source, required=True)
        rate = _sensor_list(c, g, "rate_sensors", gw, own, source, required=False)
        if members is not None and len(members) < 2:
            c.fail(g, "sensors", f"{gw}.sensors", f"has {len(members)} sensor(s); a multivariate group needs at "
                   "least 2 (a single sensor is covered by its limits, rate and trend)")
            members = None
        if members is not None and any(m in used for m in members):
            twice = [m for m in members if m in used]
            c.fail(g, "sensors", f"{gw}.sensors", f"{twice} already in group {used[twice[0]]}; "
                   "a sensor feeds one multivariate group")
            members = None
        if members is not None and rate is not None and any(r not in members for r in rate):
            c.fail(g, "rate_sensors", f"{gw}.rate_sensors", f"{[r for r in rate if r not in members]} are not in "
                   "this group's sensors; rate_sensors is a subset of sensors")
            rate = None
        train_rows = c.opt(g, "train_rows", gw, int, 400)
        window = c.opt(g, "window", gw, int, _MV.window)
        lag = c.opt(g, "lag", gw, int, _MV.lag)
        hold = c.opt(g, "hold", gw, int, _MV.hold)
        on_factor = c.opt(g, "on_factor", gw, float, _MV.on_factor)
        off_ratio = c.opt(g, "off_ratio", gw, float, _MV.off_ratio)
        quantile = c.opt(g, "feature_quantile", gw, float, _MV.feature_quantile)
        level = c.opt(g, "level", gw, int, 3)
        # Every check that can run does, so one load lists all of a group's problems.
        for key, v in (("window", window), ("lag", lag), ("hold", hold)):
            if v is not None and v < 1:
                c.fail(g, key, f"{gw}.{key}", f"is {v}; it counts rows and must be >= 1")
                ok = False
        for key, v in (("on_factor", on_factor), ("off_ratio", off_ratio)):
            if v is not None and v <= 0:
                c.fail(g, key, f"{gw}.{key}", f"is {v}; it must be > 0")
                ok = False
        if quantile is not None and not 0 < quantile <= 1:
            c.fail(g, "feature_quantile", f"{gw}.feature_quantile", f"is {quantile}; use a quantile in (0, 1], "
                   "e.g. 0.99")
            ok = False
        if level is not None and not 1 <= level <= 4:
            c.fail(g, "level", f"{gw}.level", f"{level} is not a warning level; use 1 (一级 red) .. 4 (四级 blue)")
            ok = False
        if train_rows is not None and train_rows < 50:
            c.fail(g, "train_rows", f"{gw}.train_rows", f"is {train_rows}; learn from at least 50 rows of normal "
                   "operation (default 400)")
            ok = False
        elif None not in (train_rows, window, lag) and window >= 1 and lag >= 1 and train_rows < lag + window + 9:
            c.fail(g, "train_rows", f"{gw}.train_rows", f"{train_rows} rows are too few for window {window} and "
                   f"lag {lag}; use at least lag + window + 9 = {lag + window + 9}")
            ok = False
        values = (members, rate, train_rows, window, lag, hold, on_factor, off_ratio, quantile, level)
        if not ok or any(v is None for v in values):
            continue
        used.update(dict.fromkeys(members, gid))
        out.append(MultivariateGroup(gid, source, tuple(members), tuple(rate), train_rows, window, lag, on_factor,
                                     off_ratio, hold, quantile, level))
    return tuple(out)


def _sensor_list(c: _Checker, g: dict[str, Any], key: str, w: str, own: list[str], source: str,
                 required: bool) -> list[str] | None:
    """A list of the source's own sensor ids without repeats; None (reported) when it is not one."""
    if key not in g and not required:
        return []
    value = c.req(g, key, w, list, "a list of this source's sensor ids")
    if value is None:
        return None
    if not all(isinstance(v, str) for v in value):
        c.fail(g, key, f"{w}.{key}", f"is {value!r}; list sensor ids as strings")
        return None
    foreign = [v for v in value if v not in own]
    if foreign:
        c.fail(g, key, f"{w}.{key}", f"{foreign} are not sensors of source {source}; use its own sensor ids")
        return None
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        c.fail(g, key, f"{w}.{key}", f"{twice} listed more than once; list each sensor once")
        return None
    return value


def _grade(c: _Checker, s: Any, w: str) -> tuple[int, str]:
    if not isinstance(s, dict):
        return 4, ""
    if "grade" in s:
        g = s["grade"]
        if not isinstance(g, int) or isinstance(g, bool) or not 1 <= g <= 4:
            c.fail(s, "grade", f"{w}.grade", f"is {g!r}; GB 18218 grades are 1 (一级, most severe) to 4 (四级)")
            return 4, ""
        return g, "declared"
    inputs = s.get("gb18218")
    if not isinstance(inputs, dict):
        c.fail(s, "grade", f"{w}.grade", "missing; give `grade: 1..4` or `gb18218:` with residents_500m and substances")
        return 4, ""
    gw = f"{w}.gb18218"
    residents = c.req(inputs, "residents_500m", gw, int)
    subs = []
    for k, sub in enumerate(inputs.get("substances") or []):
        sw = f"{gw}.substances[{k}]"
        name = c.req(sub, "name", sw, str)
        q = c.req(sub, "q_t", sw, float, "design maximum quantity in tonnes")
        big_q = c.req(sub, "Q_t", sw, float, "critical quantity in tonnes from GB 18218 tables")
        beta = c.req(sub, "beta", sw, float, "correction factor from GB 18218 table 3/4")
        if big_q is not None and big_q <= 0:
            c.fail(sub, "Q_t", f"{sw}.Q_t", "must be > 0 (critical quantity in tonnes)")
            continue
        if None not in (name, q, big_q, beta):
            subs.append(Substance(name, q, big_q, beta))
    if not subs or residents is None:
        c.fail(inputs, "substances", f"{gw}.substances", "list at least one substance with name, q_t, Q_t, beta")
        return 4, ""
    grade, r = gb18218_grade(subs, residents)
    return grade, f"GB 18218-2018 R={r:.1f}"


def _sensor(c: _Checker, x: Any, w: str, source: str, slot: int) -> Sensor | None:
    sid = c.req(x, "id", w, str)
    kind = c.req(x, "kind", w, str)
    unit = c.req(x, "unit", w, str)
    period = c.req(x, "period_s", w, float, "expected seconds between readings")
    rng = c.req(x, "range", w, list, "[low, high] of the instrument")
    if None in (sid, kind, unit, period, rng):
        return None
    w = w.rsplit(".", 1)[0] + f".sensors[{sid}]"
    ok = True
    if kind not in SENSOR_UNITS:
        c.fail(x, "kind", f"{w}.kind", f"{kind!r} is not a sensor kind; use one of {sorted(SENSOR_UNITS)}")
        ok = False
    elif unit not in SENSOR_UNITS[kind]:
        c.fail(x, "unit", f"{w}.unit", f"{unit!r} is not a unit for {kind}; use one of {list(SENSOR_UNITS[kind])}")
        ok = False
    if period <= 0:
        c.fail(x, "period_s", f"{w}.period_s", "must be > 0 seconds")
        ok = False
    if len(rng) != 2 or not all(_number(v) for v in rng) or rng[0] >= rng[1]:
        c.fail(x, "range", f"{w}.range", f"is {rng!r}; write [low, high] with low < high")
        return None
    lo, hi = float(rng[0]), float(rng[1])
    raw_limits = x.get("limits") or {}
    if not isinstance(raw_limits, dict):
        c.fail(x, "limits", f"{w}.limits", "must be a mapping like {H: {value: .., reset: .., clause: ..}}")
        raw_limits = {}
    profile = _sensor_profile(c, x, w, kind, unit)
    if profile is False:
        return None
    specs = _merge_profile(c, x, w, profile, raw_limits) if profile else {
        name: dict(spec) if isinstance(spec, dict) else spec for name, spec in raw_limits.items()}
    limits = []
    for name, spec in specs.items():
        lw = f"{w}.limits.{name}"
        node = raw_limits if name in raw_limits else x
        if name not in LIMIT_NAMES:
            c.fail(raw_limits, name, lw, f"unknown limit {name!r}; use {list(LIMIT_NAMES)}")
            ok = False
            continue
        value = c.req(spec, "value", lw, float)
        clause = c.req(spec, "clause", lw, str, "the standard and clause this value comes from, "
                       "e.g. 'GB/T 50493-2019 5.5.2'")
        level = c.opt(spec, "level", lw, int, DEFAULT_LIMIT_LEVEL[name])
        on_delay = c.opt(spec, "on_delay_s", lw, float, 0.0)
        off_delay = c.opt(spec, "off_delay_s", lw, float, 0.0)
        latching = c.opt(spec, "latching", lw, bool, False)
        if None in (value, clause, level, on_delay, off_delay, latching):
            ok = False
            continue
        high = name in HIGH_LIMITS
        reset = c.opt(spec, "reset", lw, float, value)
        if reset is None:
            ok = False
            continue
        if (high and reset > value) or (not high and reset < value):
            side = "at or below" if high else "at or above"
            c.fail(spec, "reset", f"{lw}.reset", f"{reset} must be {side} the set value {value} "
                   "(the alarm clears only after the value comes back past the reset level)")
            ok = False
        if not lo <= value <= hi:
            c.fail(spec if isinstance(spec, _LineDict) else node, "value", f"{lw}.value",
                   f"{value} is outside the sensor range [{lo}, {hi}]; the alarm could never fire")
            ok = False
        if not 1 <= level <= 4:
            c.fail(spec, "level", f"{lw}.level", f"{level} is not a warning level; use 1 (一级 red) .. 4 (四级 blue)")
            ok = False
        if on_delay < 0 or off_delay < 0:
            c.fail(spec, "on_delay_s", lw, "delays must be >= 0 seconds")
            ok = False
        if not clause.strip():
            c.fail(spec, "clause", f"{lw}.clause", "is empty; every limit must cite its source")
            ok = False
        names = (profile.events.get(name, {}) if profile else {})
        limits.append(Limit(name, value, reset, level, clause, on_delay, off_delay, latching,
                            names.get("raise", "raise"), names.get("clear", "clear")))
    by = {lim.name: lim for lim in limits}
    if "H" in by and "HH" in by and by["HH"].value < by["H"].value:
        c.fail(raw_limits, "HH", f"{w}.limits.HH",
               f"HH {by['HH'].value} is below H {by['H'].value}; HH must be the higher")
        ok = False
    if "L" in by and "LL" in by and by["LL"].value > by["L"].value:
        c.fail(raw_limits, "LL", f"{w}.limits.LL",
               f"LL {by['LL'].value} is above L {by['L'].value}; LL must be the lower")
        ok = False
    rate = _rate(c, x, w)
    trend = _trend(c, x, w, by)
    related = x.get("related") or []
    if not isinstance(related, list) or not all(isinstance(r, str) for r in related):
        c.fail(x, "related", f"{w}.related", "must be a list of sensor ids")
        ok, related = False, []
    stuck_s = c.opt(x, "stuck_s", w, float, None)
    if stuck_s is not None and stuck_s <= 0:
        c.fail(x, "stuck_s", f"{w}.stuck_s", "must be > 0 seconds")
        ok = False
    if rate is False or trend is False or not ok:
        return None
    return Sensor(sid, source, kind, unit, float(period), (lo, hi), tuple(limits),
                  str(x.get("name_zh", sid)), str(x.get("name_en", sid)), slot,
                  profile.id if profile else None, rate, trend, tuple(related), stuck_s)


def _sensor_profile(c: _Checker, x: Any, w: str, kind: str, unit: str) -> Profile | bool | None:
    """The sensor's profile, None when it has none, False when it names one that does not fit."""
    name = x.get("profile")
    if name is None:
        return None
    profiles = load_profiles()
    prof = profiles.get(name) if isinstance(name, str) else None
    if prof is None:
        c.fail(x, "profile", f"{w}.profile", f"unknown profile {name!r}; use one of {sorted(profiles)} "
               "(files in detectors/profiles/)")
        return False
    if kind not in prof.kinds:
        c.fail(x, "profile", f"{w}.profile", f"profile {name} is for {list(prof.kinds)} sensors, not {kind}")
        return False
    if unit != prof.unit:
        c.fail(x, "unit", f"{w}.unit", f"profile {name} is written in {prof.unit!r}; configure the sensor in "
               f"{prof.unit!r} (ingest converts readings sent in other units)")
        return False
    return prof


def _merge_profile(c: _Checker, x: Any, w: str, prof: Profile, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Profile defaults, then the site's overrides; an override looser than the standard's bound is refused."""
    design = x.get("design") or {}
    missing = prof.design_params - set(design)
    if missing:
        c.fail(x, "design", f"{w}.design", f"profile {prof.id} needs design values {sorted(missing)} "
               f"(e.g. design: {{{sorted(missing)[0]}: 6.0}})")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, plim in prof.limits.items():
        value, reset = plim.resolve(design)
        spec: dict[str, Any] = {"value": value, "reset": reset, "level": plim.level, "clause": plim.clause,
                                "latching": prof.latching}
        site = raw.get(name)
        if isinstance(site, dict):
            spec.update({k: v for k, v in site.items() if k != "clause"})
            if "value" in site and site["value"] != value:
                spec["clause"] = f"site value, stricter than {plim.clause}"
            if "clause" in site:
                spec["clause"] = site["clause"]
            v = site.get("value")
            if plim.bound is not None and _number(v):
                high = name in HIGH_LIMITS
                if (high and v > plim.bound) or (not high and v < plim.bound):
                    side, op = ("maximum", "<=") if high else ("minimum", ">=")
                    c.fail(site, "value", f"{w}.limits.{name}.value",
                           f"{v} {prof.unit} is looser than the standard's {side} {plim.bound} {prof.unit} "
                           f"({plim.clause}); use a value {op} {plim.bound}")
            if "value" in site and "reset" not in site:
                # Keep the profile's deadband width when only the set value is made stricter.
                spec["reset"] = round(float(site["value"]) - (value - reset), 6)
        out[name] = _LineDict(spec) if not isinstance(site, _LineDict) else _copy_lines(site, spec)
    for name, site in raw.items():
        if name not in out:
            out[name] = site
    return out


def _copy_lines(src: _LineDict, values: dict[str, Any]) -> _LineDict:
    d = _LineDict(values)
    d.line = src.line
    d.key_lines = dict(src.key_lines)
    return d


def _rate(c: _Checker, x: Any, w: str) -> RateSpec | bool | None:
    spec = x.get("rate")
    if spec is None:
        return None
    rw = f"{w}.rate"
    v = c.req(spec, "max_per_min", rw, float, "largest credible change per minute in the sensor's unit")
    level = c.opt(spec, "level", rw, int, 3)
    clause = c.req(spec, "clause", rw, str)
    if v is None or level is None or clause is None:
        return False
    if v <= 0:
        c.fail(spec, "max_per_min", f"{rw}.max_per_min", "must be > 0")
        return False
    return RateSpec(v, level, clause)


def _trend(c: _Checker, x: Any, w: str, limits: dict[str, Limit]) -> TrendSpec | bool | None:
    spec = x.get("trend")
    if spec is None:
        return None
    tw = f"{w}.trend"
    horizon = c.req(spec, "horizon_s", tw, float, "warn when the limit will be reached within this many seconds")
    level = c.opt(spec, "level", tw, int, 3)
    target = c.opt(spec, "limit", tw, str, "HH")
    tau = c.opt(spec, "tau_s", tw, float, 120.0)
    if None in (horizon, level, target, tau):
        return False
    if target not in limits:
        c.fail(spec, "limit", f"{tw}.limit",
               f"the sensor has no {target} limit to forecast; use one of {sorted(limits)}")
        return False
    if horizon <= 0 or tau <= 0:
        c.fail(spec, "horizon_s", tw, "horizon_s and tau_s must be > 0")
        return False
    return TrendSpec(horizon, level, target, tau)
