"""Local services on loopback: Mosquitto, Apache Kafka (KRaft) and InfluxDB 2, with up / down / status.

Real servers, installed from package registries and cached, so development and CI exercise what production
runs. State, logs, pid files and generated secrets live under one directory (HW_HOME, default ./.hw);
downloaded jars and the built influxd live under HW_CACHE (default ~/.cache/hazardwatch) so a fresh clone
does not download or rebuild them. `down` stops only processes whose pid file we wrote and whose command
line is still ours.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hazardwatch.config import PROJECT_ROOT, ConfigError, Settings, new_secret
from hazardwatch.registry import load_registry

KAFKA_VERSION = "3.9.1"
INFLUXDB_VERSION = "v2.7.12"
DEPLOY = PROJECT_ROOT / "deploy"
BRIDGE_USER = "hw-bridge"


class ServiceError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- process bookkeeping --------------------------------------------------------------------------------
def _pid_file(s: Settings, name: str) -> Path:
    return s.run_dir / f"{name}.pid"


def _read_pid(s: Settings, name: str, marker: str) -> int | None:
    """The pid we recorded, if that process is alive and its command line still contains our marker."""
    try:
        pid = int(_pid_file(s, name).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid if marker in cmdline else None


def _spawn(s: Settings, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    s.logs_dir.mkdir(parents=True, exist_ok=True)
    s.run_dir.mkdir(parents=True, exist_ok=True)
    logf = open(s.logs_dir / f"{name}.out", "ab")
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, **(env or {})})
    _pid_file(s, name).write_text(str(proc.pid))
    return proc.pid


def _stop_pid(pid: int, name: str, timeout: float = 20.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            # Reap if it is our child (demo runs services as children); otherwise just poll.
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        except ProcessLookupError:
            return
        time.sleep(0.2)
    log(f"{name} (pid {pid}) did not stop in {timeout:.0f}s; sending SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(what: str, check: Callable[[], bool], timeout: float, log_hint: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    tail = ""
    for f in (log_hint, log_hint.with_suffix(".out")):
        if f.exists():
            tail += "\n".join(f.read_text(errors="replace").splitlines()[-15:])
    raise ServiceError(f"{what} did not answer within {timeout:.0f}s; see {log_hint}\n{tail}")


# ---- service definitions --------------------------------------------------------------------------------
@dataclass
class Service:
    name: str
    marker: str  # substring of the command line that identifies our process

    def port(self, s: Settings) -> int:
        raise NotImplementedError

    def install(self, s: Settings) -> None: ...

    def start(self, s: Settings) -> None:
        raise NotImplementedError

    def healthy(self, s: Settings) -> bool:
        raise NotImplementedError

    def after_start(self, s: Settings) -> None: ...

    def up(self, s: Settings) -> str:
        pid = _read_pid(s, self.name, self.marker)
        if pid and self.healthy(s):
            self.after_start(s)
            return f"{self.name}: already running (pid {pid}) on {s.host}:{self.port(s)}"
        if pid is None and port_open(s.host, self.port(s)):
            raise ServiceError(f"{self.name}: port {self.port(s)} on {s.host} is taken by a process we did not "
                               f"start; stop it or choose another port with HW_{self.name.upper()}_PORT")
        self.install(s)
        t0 = time.monotonic()
        if pid is None:
            self.start(s)
        _wait(self.name, lambda: self.healthy(s), 90, s.logs_dir / f"{self.name}.log")
        self.after_start(s)
        return f"{self.name}: started in {time.monotonic() - t0:.1f}s on {s.host}:{self.port(s)}"

    def down(self, s: Settings) -> str:
        pid = _read_pid(s, self.name, self.marker)
        if pid is None:
            _pid_file(s, self.name).unlink(missing_ok=True)
            return f"{self.name}: not running (nothing of ours to stop)"
        _stop_pid(pid, self.name)
        _pid_file(s, self.name).unlink(missing_ok=True)
        return f"{self.name}: stopped (pid {pid})"

    def status(self, s: Settings) -> dict:
        pid = _read_pid(s, self.name, self.marker)
        return {"service": self.name, "pid": pid, "port": self.port(s),
                "healthy": bool(pid) and self.healthy(s), "log": str(s.logs_dir / f"{self.name}.log")}


class Mosquitto(Service):
    def __init__(self) -> None:
        super().__init__("mosquitto", "mosquitto.conf")

    def port(self, s: Settings) -> int:
        return s.ports.mqtt

    def install(self, s: Settings) -> None:
        if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists():
            return
        _apt_install(["mosquitto", "mosquitto-clients"])

    def _binary(self) -> str:
        return shutil.which("mosquitto") or "/usr/sbin/mosquitto"

    def start(self, s: Settings) -> None:
        d = s.home / "mosquitto"
        (d / "data").mkdir(parents=True, exist_ok=True)
        write_mqtt_passwords(s)
        acl = d / "acl"
        acl.write_text((DEPLOY / "mosquitto" / "acl").read_text() + dev_acl(s))
        conf = d / "mosquitto.conf"
        conf.write_text("\n".join([
            "# Generated by `hazardwatch services up` from deploy/mosquitto/mosquitto.conf; edit that file.",
            (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(),
            f"listener {s.ports.mqtt} {s.host}",
            f"password_file {d / 'passwd'}",
            f"acl_file {acl}",
            f"persistence_location {d / 'data'}/",
            f"log_dest file {s.logs_dir / 'mosquitto.log'}",
            "user root" if os.geteuid() == 0 else "",
            "",
        ]))
        _spawn(s, self.name, [self._binary(), "-c", str(conf)])

    def healthy(self, s: Settings) -> bool:
        return port_open(s.host, s.ports.mqtt)


class Kafka(Service):
    def __init__(self) -> None:
        super().__init__("kafka", "kafka.Kafka")

    def port(self, s: Settings) -> int:
        return s.ports.kafka

    def lib(self, s: Settings) -> Path:
        return s.cache / f"kafka-{KAFKA_VERSION}" / "lib"

    def install(self, s: Settings) -> None:
        lib = self.lib(s)
        if (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            return
        if not shutil.which("mvn") or not shutil.which("java"):
            raise ServiceError("Kafka needs java (17+) and mvn to fetch its jars from Maven Central; "
                               "run `bash deploy/local/install.sh`, or apt-get install openjdk-17-jre-headless maven")
        log(f"kafka: fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {lib} (once)")
        tmp = lib.with_name("lib.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["mvn", "-B", "-q", "-f", str(DEPLOY / "local" / "kafka" / "pom.xml"),
                        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"],
                       check=True)
        tmp.rename(lib)

    def start(self, s: Settings) -> None:
        d = s.home / "kafka"
        d.mkdir(parents=True, exist_ok=True)
        props = d / "server.properties"
        props.write_text("\n".join([
            "# Generated by `hazardwatch services up`: single node, KRaft, broker and controller combined.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{s.host}:{s.ports.kafka_controller}",
            f"listeners=PLAINTEXT://{s.host}:{s.ports.kafka},CONTROLLER://{s.host}:{s.ports.kafka_controller}",
            f"advertised.listeners=PLAINTEXT://{s.host}:{s.ports.kafka}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={d / 'data'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Topics are created explicitly with their partition counts; a typo must fail, not create.
            "auto.create.topics.enable=false",
            "message.max.bytes=4194304",
            "",
        ]))
        java = ["java", "-cp", str(self.lib(s) / "*")]
        if not (d / "data" / "meta.properties").exists():
            cluster_id = subprocess.run([*java, "kafka.tools.StorageTool", "random-uuid"], check=True,
                                        capture_output=True, text=True).stdout.strip().splitlines()[-1]
            subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
                           check=True, capture_output=True)
        _spawn(s, self.name, ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
                              f"-Dkafka.logs.dir={s.logs_dir}",
                              f"-Dlog4j.configuration=file:{DEPLOY / 'local' / 'kafka' / 'log4j.properties'}",
                              "-cp", str(self.lib(s) / "*"), "kafka.Kafka", str(props)])

    def healthy(self, s: Settings) -> bool:
        if not port_open(s.host, s.ports.kafka):
            return False
        return kafka_ready(s)


class InfluxDB(Service):
    def __init__(self) -> None:
        super().__init__("influxdb", "influxd")

    def port(self, s: Settings) -> int:
        return s.ports.influx

    def binary(self, s: Settings) -> Path:
        return s.cache / f"influxd-{INFLUXDB_VERSION}" / "influxd"

    def install(self, s: Settings) -> None:
        if self.binary(s).exists():
            return
        log(f"influxdb: building influxd {INFLUXDB_VERSION} from the Go module proxy (once; 15-35 min on 2 cores)")
        subprocess.run(["bash", str(DEPLOY / "local" / "build-influxd.sh")], check=True,
                       env={**os.environ, "HW_CACHE": str(s.cache)})

    def start(self, s: Settings) -> None:
        d = s.home / "influxdb"
        d.mkdir(parents=True, exist_ok=True)
        _spawn(s, self.name, [str(self.binary(s)), "--bolt-path", str(d / "influxd.bolt"),
                              "--engine-path", str(d / "engine"), "--sqlite-path", str(d / "influxd.sqlite"),
                              "--http-bind-address", f"{s.host}:{s.ports.influx}", "--reporting-disabled",
                              "--log-level", "warn"])

    def healthy(self, s: Settings) -> bool:
        try:
            with urllib.request.urlopen(f"{s.influx_url}/health", timeout=1) as r:
                return json.load(r).get("status") == "pass"
        except (OSError, ValueError):
            return False

    def after_start(self, s: Settings) -> None:
        """First start: create the org, bucket and an operator token, kept in HW_HOME/secrets."""
        with urllib.request.urlopen(f"{s.influx_url}/api/v2/setup", timeout=5) as r:
            allowed = json.load(r).get("allowed")
        if allowed:
            self._setup(s)
        from hazardwatch.storage import ensure_storage

        for change in ensure_storage(s):
            log(f"influxdb: {change}")

    def _setup(self, s: Settings) -> None:
        token_file = s.secrets_dir / "influx-token"
        token, password = new_secret(), new_secret()
        body = json.dumps({"username": "hazardwatch", "password": password, "org": s.influx_org,
                           "bucket": s.influx_bucket, "token": token, "retentionPeriodSeconds": 0}).encode()
        req = urllib.request.Request(f"{s.influx_url}/api/v2/setup", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10):
            pass
        _write_secret(token_file, token)
        _write_secret(s.secrets_dir / "influx-admin-password", password)
        log(f"influxdb: initial setup done: org {s.influx_org!r}, bucket {s.influx_bucket!r}, token in {token_file}")


SERVICES: list[Service] = [Mosquitto(), Kafka(), InfluxDB()]


def _select(names: list[str] | None) -> list[Service]:
    if not names:
        return SERVICES
    known = {svc.name: svc for svc in SERVICES}
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"unknown service(s) {bad}; choose from {list(known)}")
    return [known[n] for n in names]


def up(s: Settings, names: list[str] | None = None) -> None:
    for svc in _select(names):
        log(svc.up(s))


def down(s: Settings, names: list[str] | None = None) -> None:
    for svc in reversed(_select(names)):
        log(svc.down(s))


def status(s: Settings) -> list[dict]:
    return [svc.status(s) for svc in SERVICES]


# ---- helpers ------------------------------------------------------------------------------------------------
def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(value)


def mqtt_users(s: Settings) -> list[str]:
    reg = load_registry(s.registry_path)
    return [BRIDGE_USER, *sorted(e.mqtt_user for e in reg.enterprises.values())]


def write_mqtt_passwords(s: Settings) -> None:
    """A random password per MQTT user (the bridge, each enterprise gateway), hashed into mosquitto's file."""
    passwd = s.home / "mosquitto" / "passwd"
    passwd.parent.mkdir(parents=True, exist_ok=True)
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwd.write_text("")
    passwd.chmod(0o600)
    for user in mqtt_users(s):
        f = s.secrets_dir / "mqtt" / user
        if not f.exists():
            _write_secret(f, new_secret())
        subprocess.run([tool, "-b", str(passwd), user, f.read_text().strip()], check=True, capture_output=True)


def render_acl(s: Settings) -> str:
    """The per-enterprise ACL: each enterprise publishes only under hw/<its id>/; the bridge only reads."""
    reg = load_registry(s.registry_path)
    lines = ["# Generated by `hazardwatch mqtt-acl` from the registry. Each enterprise gateway may publish",
             "# only under its own topic prefix; the ingest bridge may only read. Nobody else gets anything.",
             "", f"user {BRIDGE_USER}", "topic read hw/#", "topic read $share/+/hw/#", ""]
    for e in sorted(reg.enterprises.values(), key=lambda e: e.id):
        lines += [f"# {e.name_zh} {e.name_en}", f"user {e.mqtt_user}", f"topic write hw/{e.id}/#", ""]
    return "\n".join(lines)


def dev_acl(s: Settings) -> str:
    """Local development only: test sandboxes publish under hwt/<run>/<enterprise>/, never under hw/."""
    reg = load_registry(s.registry_path)
    lines = ["", "# ---- local development: test sandboxes (hwt/<run>/...), appended by `services up` ----",
             f"user {BRIDGE_USER}", "topic read hwt/#", ""]
    for e in sorted(reg.enterprises.values(), key=lambda e: e.id):
        lines += [f"user {e.mqtt_user}", f"topic write hwt/+/{e.id}/#", ""]
    return "\n".join(lines)


def _apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise ServiceError(f"missing system packages {packages}; install them with "
                           f"`sudo apt-get install -y {' '.join(packages)}`")
    log(f"installing {packages} from Debian packages")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def kafka_ready(s: Settings) -> bool:
    """The broker answers metadata requests (the port alone opens before the controller is elected)."""
    code = ("import asyncio,sys\nfrom aiokafka.admin import AIOKafkaAdminClient\n"
            "async def m():\n c=AIOKafkaAdminClient(bootstrap_servers=sys.argv[1],request_timeout_ms=3000)\n"
            " await c.start()\n try: await c.list_topics()\n finally: await c.close()\nasyncio.run(m())")
    try:
        r = subprocess.run([sys.executable, "-c", code, s.kafka_bootstrap], capture_output=True, timeout=15)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False
