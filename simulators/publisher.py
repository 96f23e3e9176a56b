"""A first simulator: plausible readings for every sensor of the registry, published over MQTT.

Each enterprise's gateway connects with its own credentials and publishes only under its own topic prefix,
as the shipped ACL demands. `inject` drives chosen sensors to a value (ramping over a few seconds), which is
how a demo or a test produces a limit crossing.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hazardwatch.config import ConfigError, Settings
from hazardwatch.registry import Registry, Sensor, load_registry

# Normal operating value and noise per sensor kind, in the registry units used by the example city.
_BASE: dict[str, tuple[float, float]] = {
    # Radar level gauges resolve ~1 mm in a 20 m tank: noise of a few hundredths of a percent.
    "level": (55.0, 0.02), "temperature": (22.0, 0.1), "pressure": (6.0, 0.05), "flow": (40.0, 1.0),
    "gas_combustible": (0.5, 0.3), "gas_toxic": (0.0, 0.0), "oxygen": (20.9, 0.03), "methane": (0.25, 0.03),
    "carbon_monoxide": (3.0, 0.5), "wind_speed": (1.8, 0.1), "phreatic_depth": (12.0, 0.02),
    "freeboard": (2.5, 0.01), "dry_beach": (220.0, 0.5), "displacement": (8.0, 0.05), "rainfall": (2.0, 0.1),
    "pond_level": (75.0, 0.02),
}


def normal_value(sensor: Sensor) -> float:
    base, _ = _BASE.get(sensor.kind, (0.0, 0.0))
    if sensor.kind == "gas_toxic":
        base = 0.05 * min((lim.value for lim in sensor.limits), default=1.0)
    lo, hi = sensor.range
    return min(max(base, lo), hi)


@dataclass
class Injection:
    sensor: str
    target: float
    start: float  # wall time the ramp begins
    ramp_s: float = 4.0


def parse_injections(specs: list[str], registry: Registry, start: float) -> list[Injection]:
    out = []
    for spec in specs:
        sid, sep, value = spec.partition("=")
        if not sep or sid not in registry.sensors:
            raise ConfigError(f"--inject {spec!r}: write SENSOR=VALUE with a sensor id from {registry.path.name}, "
                              f"e.g. S01-T03-LT=93.5")
        try:
            out.append(Injection(sid, float(value), start))
        except ValueError:
            raise ConfigError(f"--inject {spec!r}: {value!r} is not a number") from None
    return out


@dataclass
class SimState:
    registry: Registry
    rng: np.random.Generator
    value: dict[str, float] = field(default_factory=dict)
    next_due: dict[str, float] = field(default_factory=dict)

    def reading(self, sensor: Sensor, now: float, injections: list[Injection]) -> float:
        base = normal_value(sensor)
        _, noise = _BASE.get(sensor.kind, (0.0, 0.0))
        v = base + (1.5 * math.sin(2 * math.pi * now / 86400) if sensor.kind == "temperature" else 0.0)
        v += float(self.rng.normal(0, noise)) if noise else 0.0
        for inj in injections:
            if inj.sensor == sensor.id and now >= inj.start:
                frac = min(1.0, (now - inj.start) / inj.ramp_s)
                v = base + frac * (inj.target - base)
        lo, hi = sensor.range
        return round(min(max(v, lo), hi), 4)


class Publisher:
    """One MQTT connection per enterprise, with that enterprise's credentials."""

    def __init__(self, settings: Settings, registry: Registry):
        self.s = settings
        self.reg = registry
        self.clients: dict[str, mqtt.Client] = {}
        self.published = 0

    def connect(self) -> None:
        for ent in self.reg.enterprises.values():
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hw-sim-{ent.id}-{time.time_ns() % 10**9}",
                            protocol=mqtt.MQTTv5)
            c.username_pw_set(ent.mqtt_user, self.s.mqtt_password(ent.mqtt_user))
            c.max_inflight_messages_set(200)
            c.max_queued_messages_set(0)
            c.connect(self.s.mqtt_host, self.s.ports.mqtt, keepalive=30)
            c.loop_start()
            self.clients[ent.id] = c

    def publish(self, enterprise: str, topic: str, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        info = self.clients[enterprise].publish(topic, payload, qos=qos)
        self.published += 1
        return info

    def close(self) -> None:
        for c in self.clients.values():
            c.disconnect()
            c.loop_stop()


def run_simulator(settings: Settings, rate: float = 1.0, duration: float = 60.0, inject: list[str] | None = None,
                  inject_after: float = 5.0, batch: bool = True, stop: threading.Event | None = None,
                  on_tick: object = None) -> int:
    """Publish until `duration` wall seconds pass (0 = forever) or `stop` is set. Returns readings published."""
    if rate <= 0:
        raise ConfigError("--rate must be > 0")
    reg = load_registry(settings.registry_path)
    t0 = time.time()
    injections = parse_injections(inject or [], reg, t0 + inject_after)
    state = SimState(reg, np.random.default_rng(7))
    pub = Publisher(settings, reg)
    pub.connect()
    stop = stop or threading.Event()
    readings = 0
    try:
        while not stop.is_set() and (duration <= 0 or time.time() - t0 < duration):
            now = time.time()
            for src in reg.sources.values():
                due = [reg.sensors[s] for s in src.sensors if state.next_due.get(s, 0.0) <= now]
                if not due:
                    continue
                for sensor in due:
                    state.next_due[sensor.id] = now + sensor.period_s / rate
                rows = [{"s": x.id, "v": state.reading(x, now, injections)} for x in due]
                readings += len(rows)
                if batch:
                    pub.publish(src.enterprise, f"{settings.mqtt_root}/{src.enterprise}/{src.id}",
                                orjson.dumps({"ts": round(now, 3), "readings": rows}))
                else:
                    for r in rows:
                        pub.publish(src.enterprise, f"{settings.mqtt_root}/{src.enterprise}/{src.id}/{r['s']}",
                                    orjson.dumps({"ts": round(now, 3), "v": r["v"]}))
            if callable(on_tick):
                on_tick(readings)
            stop.wait(max(0.05, 1.0 - (time.time() - now)))
    finally:
        time.sleep(0.5)  # let in-flight QoS 1 messages finish
        pub.close()
    print(f"simulator: published {readings} readings in {time.time() - t0:.0f}s", flush=True)
    return readings
