"""Runtime settings, read from HW_* environment variables and secret files.

Every setting has a safe loopback default so a new user can run the demo with no configuration. A bad value
fails at start-up with the variable's name and the fix, never later in the middle of a shift.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting is wrong; the message names where it came from and how to fix it."""


def _env_int(name: str, default: int, lo: int, hi: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer; set it to a number "
                          f"between {lo} and {hi} or unset it to use {default}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"environment variable {name}={value} is out of range; use {lo}..{hi} "
                          f"or unset it to use {default}")
    return value


def _env_float(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a number; "
                          f"unset it to use {default}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"environment variable {name}={value} is out of range; use {lo}..{hi}")
    return value


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Ports:
    mqtt: int
    kafka: int
    kafka_controller: int
    influx: int
    worker_web: int


@dataclass(frozen=True)
class Settings:
    home: Path
    cache: Path
    host: str
    mqtt_host: str
    kafka_host: str
    influx_host: str
    ports: Ports
    registry_path: Path
    topic_prefix: str
    partitions: int
    replication_factor: int
    influx_org: str
    influx_bucket: str
    app_id: str
    # Ingest validation windows (seconds): beyond these a reading is dead-lettered, not guessed at.
    max_future_s: float
    max_age_s: float
    max_lateness_s: float
    max_payload_bytes: int
    max_batch_readings: int
    batch_max: int
    batch_within_s: float
    commit_interval_s: float
    offline_tick_s: float
    mqtt_session_expiry_s: int
    mqtt_root: str
    extra: dict[str, str] = field(default_factory=dict)

    # ---- derived locations -------------------------------------------------------------------------
    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.ports.kafka}"

    @property
    def influx_url(self) -> str:
        return f"http://{self.influx_host}:{self.ports.influx}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    # ---- credentials: environment first, then files written by `hazardwatch services up` -------------
    def secret(self, name: str, env: str) -> str:
        value = os.environ.get(env)
        if value:
            return value
        path = self.secrets_dir / name
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(f"no credential {name!r}: set {env} or run `hazardwatch services up`, "
                              f"which creates {path}") from None

    def influx_token(self) -> str:
        return self.secret("influx-token", "HW_INFLUX_TOKEN")

    def mqtt_password(self, user: str) -> str:
        env = "HW_MQTT_PASSWORD_" + user.upper().replace("-", "_")
        return self.secret(f"mqtt/{user}", env)


def load_settings() -> Settings:
    host = _env_str("HW_HOST", "127.0.0.1")
    # Topic root: production is "hw"; test sandboxes use hwt/<run> so their traffic never reaches (or queues
    # for) the production bridge's persistent session.
    root = _env_str("HW_MQTT_ROOT", "hw").strip("/")
    if not root or any(c in root for c in "+#") or not (root == "hw" or root.startswith("hwt/")):
        raise ConfigError(f"HW_MQTT_ROOT={root!r}: use 'hw' (production) or 'hwt/<name>' (test sandboxes)")
    home = Path(_env_str("HW_HOME", str(PROJECT_ROOT / ".hw"))).expanduser().resolve()
    cache = Path(_env_str("HW_CACHE", str(Path.home() / ".cache" / "hazardwatch"))).expanduser()
    registry = Path(_env_str("HW_REGISTRY", str(PROJECT_ROOT / "deploy" / "examples" / "city-registry.yaml")))
    prefix = _env_str("HW_TOPIC_PREFIX", "")
    if prefix and not all(c.isalnum() or c in "._-" for c in prefix):
        raise ConfigError(f"HW_TOPIC_PREFIX={prefix!r} may only hold letters, digits, '.', '_' and '-'")
    ports = Ports(
        mqtt=_env_int("HW_MQTT_PORT", 1883, 1, 65535),
        kafka=_env_int("HW_KAFKA_PORT", 9092, 1, 65535),
        kafka_controller=_env_int("HW_KAFKA_CONTROLLER_PORT", 9093, 1, 65535),
        influx=_env_int("HW_INFLUX_PORT", 8086, 1, 65535),
        worker_web=_env_int("HW_WORKER_WEB_PORT", 6066, 1, 65535),
    )
    if len({ports.mqtt, ports.kafka, ports.kafka_controller, ports.influx, ports.worker_web}) < 5:
        raise ConfigError(f"HW_*_PORT settings collide: {ports}; give each service its own port")
    return Settings(
        home=home,
        cache=cache,
        host=host,
        # In docker-compose or Kubernetes each server has its own host name.
        mqtt_host=_env_str("HW_MQTT_HOST", host),
        kafka_host=_env_str("HW_KAFKA_HOST", host),
        influx_host=_env_str("HW_INFLUX_HOST", host),
        ports=ports,
        registry_path=registry,
        topic_prefix=prefix,
        partitions=_env_int("HW_PARTITIONS", 4, 1, 256),
        # 1 on one broker (here, compose); 3 on a Strimzi cluster, so losing a broker loses no reading.
        replication_factor=_env_int("HW_REPLICATION_FACTOR", 1, 1, 7),
        influx_org=_env_str("HW_INFLUX_ORG", "hazardwatch"),
        influx_bucket=_env_str("HW_INFLUX_BUCKET", "hazardwatch"),
        app_id=_env_str("HW_APP_ID", "hazardwatch"),
        max_future_s=_env_float("HW_MAX_FUTURE_S", 300.0, 0, 86400),
        max_age_s=_env_float("HW_MAX_AGE_S", 7 * 86400.0, 60, 365 * 86400),
        max_lateness_s=_env_float("HW_MAX_LATENESS_S", 600.0, 0, 86400),
        max_payload_bytes=_env_int("HW_MAX_PAYLOAD_BYTES", 256 * 1024, 1024, 16 * 1024 * 1024),
        max_batch_readings=_env_int("HW_MAX_BATCH_READINGS", 5000, 1, 1_000_000),
        batch_max=_env_int("HW_BATCH_MAX", 2000, 1, 1_000_000),
        batch_within_s=_env_float("HW_BATCH_WITHIN_S", 0.2, 0.001, 60),
        commit_interval_s=_env_float("HW_COMMIT_INTERVAL_S", 2.0, 0.1, 600),
        # How often silent sensors are judged; the scenario runner shortens it with simulated time.
        offline_tick_s=_env_float("HW_OFFLINE_TICK_S", 5.0, 0.1, 300),
        mqtt_session_expiry_s=_env_int("HW_MQTT_SESSION_EXPIRY_S", 86400, 0, 30 * 86400),
        mqtt_root=root,
    )


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def ops_port(default: int) -> int:
    """The /metrics, /healthz, /readyz port of this process: HW_OPS_PORT, else the service's default
    (bridge 9101, worker 9102); 0 picks a free port (sandboxes running several bridges on one machine)."""
    return _env_int("HW_OPS_PORT", default, 0, 65535)
