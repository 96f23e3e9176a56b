"""deploy/k8s validated offline: Kubernetes schemas, Strimzi CRD schemas, and agreement with the code.

- Every core object (raw files and the kustomize rendering) against the Kubernetes 1.30 schemas bundled with
  kubernetes-validate, strict: an unknown or misspelt field fails, as `kubectl apply --validate=strict` would.
- Kafka, KafkaNodePool and KafkaTopic against the Strimzi 0.47.0 CRD schemas (deploy/k8s/tools/strimzi-crds.sh,
  made from Maven Central and cached), with unknown fields refused too.
- Cross-checks: topics and partitions = hazardwatch/model.py, workers <= partitions, pinned images = compose and
  the code's versions, probes on exposed ports, every referenced Secret documented with its keys, no secret
  values, restricted security contexts, resources on every container, every Grafana file shipped.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv

from hazardwatch import services
from hazardwatch.config import PROJECT_ROOT, load_settings
from hazardwatch.grafana import GRAFANA_VERSION
from hazardwatch.model import topic_specs

DEPLOY = PROJECT_ROOT / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests promise (README.md); Strimzi 0.47 supports 1.25+
STRIMZI_API = "kafka.strimzi.io/v1beta2"
APP_IMAGE = "hazardwatch:0.1.0"
OPS_PORTS = {"hw-bridge": 9101, "hw-worker": 9102, "hw-console": 8480}
WORKLOADS = ("Deployment", "StatefulSet", "Job")
NOT_INSTALLED = 3  # exit code of the tools/*.sh scripts when Go / Java / Maven is missing


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
RAW = [(f, d) for f in KUSTOMIZATION["resources"] for d in load_docs(K8S / f)]
CORE = [(f, d) for f, d in RAW if d["apiVersion"] != STRIMZI_API]
ENV = dict(line.split("=", 1) for line in (K8S / "hazardwatch.env").read_text().splitlines()
           if line and not line.startswith("#"))


def kinds(*wanted: str) -> list[dict[str, Any]]:
    return [d for _, d in RAW if d["kind"] in wanted]


def one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in kinds(kind) if d["metadata"]["name"] == name]
    return doc


def containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def kubernetes_errors(doc: dict[str, Any]) -> str | None:
    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.ValidationError as exc:
        return f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"
    return None


def run_tool(script: Path, *args: str) -> str:
    proc = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=900)
    if proc.returncode == NOT_INSTALLED:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


# ---- schemas ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted({f for f, _ in CORE}))
def test_core_manifests_are_valid_kubernetes_in_strict_mode(name: str) -> None:
    errors = [e for f, d in CORE if f == name if (e := kubernetes_errors(d))]
    assert not errors, "\n".join(errors)


def test_strict_validation_catches_a_misspelt_field() -> None:
    bad = copy.deepcopy(one("Deployment", "hw-worker"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert kubernetes_errors(bad)


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    out = run_tool(K8S / "tools" / "kustomize.sh", "build", "--load-restrictor", "LoadRestrictionsNone", str(K8S))
    return [d for d in yaml.safe_load_all(out) if d]


def test_the_kustomize_rendering_is_valid_and_self_consistent(rendered: list[dict[str, Any]]) -> None:
    errors = [e for d in rendered if d["apiVersion"] != STRIMZI_API if (e := kubernetes_errors(d))]
    assert not errors, "\n".join(errors)
    assert {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"} == {"hazardwatch"}
    named = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for d in rendered:
        if d["kind"] == "ConfigMap":  # a ConfigMap is capped at 1 MiB; the city dashboards are the biggest
            size = sum(len(v.encode()) for v in d.get("data", {}).values())
            assert size < 900 * 1024, f"ConfigMap {d['metadata']['name']} holds {size} bytes: split it"
        if d["kind"] not in WORKLOADS:
            continue
        pod = d["spec"]["template"]["spec"]
        refs = [("ConfigMap", v["configMap"]["name"]) for v in pod.get("volumes", []) if "configMap" in v]
        refs += [("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
                 for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]
        for c in containers(d):
            refs += [("ConfigMap", e["configMapRef"]["name"]) for e in c.get("envFrom", []) if "configMapRef" in e]
            refs += [("ConfigMap", e["valueFrom"]["configMapKeyRef"]["name"])
                     for e in c.get("env", []) if "configMapKeyRef" in e.get("valueFrom", {})]
        missing = [r for r in refs if r not in named]
        assert not missing, f"{d['kind']}/{d['metadata']['name']} refers to objects that are not rendered: {missing}"
        if d["kind"] == "StatefulSet":
            assert ("Service", d["spec"]["serviceName"]) in named


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's OpenAPI schema as JSON Schema that refuses unknown fields, as the API server prunes or rejects."""
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = _strict(schema[key])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            out[key] = [_strict(s) for s in schema[key]]
    return out


@pytest.fixture(scope="module")
def strimzi_schemas() -> dict[str, dict[str, Any]]:
    crds = Path(run_tool(K8S / "tools" / "strimzi-crds.sh").strip())
    schemas = {}
    for f in ("kafka.yaml", "kafkanodepool.yaml", "kafkatopic.yaml"):
        crd = yaml.safe_load((crds / f).read_text())
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == STRIMZI_API.split("/")[1] and v["served"]]
        schemas[crd["spec"]["names"]["kind"]] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def strimzi_errors(schemas: dict[str, dict[str, Any]], doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schemas[doc["kind"]])
    return [f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}"
            for e in validator.iter_errors(doc)]


def test_strimzi_resources_match_the_strimzi_crds(strimzi_schemas: dict[str, dict[str, Any]]) -> None:
    strimzi = [d for _, d in RAW if d["apiVersion"] == STRIMZI_API]
    assert {d["kind"] for d in strimzi} == {"Kafka", "KafkaNodePool", "KafkaTopic"}
    errors = [e for d in strimzi for e in strimzi_errors(strimzi_schemas, d)]
    assert not errors, "\n".join(errors)
    bad = copy.deepcopy(one("Kafka", "hazardwatch"))
    bad["spec"]["kafka"]["listners"] = bad["spec"]["kafka"].pop("listeners")
    assert strimzi_errors(strimzi_schemas, bad), "the strict CRD schema must refuse a misspelt field"


def test_kafka_is_kraft_with_node_pools_and_the_pinned_version() -> None:
    kafka = one("Kafka", "hazardwatch")
    assert kafka["spec"]["kafka"]["version"] == services.KAFKA_VERSION
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    assert "zookeeper" not in kafka["spec"] and "topicOperator" in kafka["spec"]["entityOperator"]
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    pools = kinds("KafkaNodePool")
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == "hazardwatch" for p in pools)
    assert {r for p in pools for r in p["spec"]["roles"]} == {"controller", "broker"}
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) % 2 == 1  # a quorum
    assert ENV["HW_KAFKA_HOST"] == "hazardwatch-kafka-bootstrap"  # Strimzi's name for the bootstrap Service


# ---- topics and scaling -------------------------------------------------------------------------------------------
@pytest.fixture()
def k8s_settings(monkeypatch: pytest.MonkeyPatch):
    for key in ("HW_TOPIC_PREFIX", "HW_PARTITIONS", "HW_APP_ID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HW_HOME", str(PROJECT_ROOT / ".hw"))  # only read, never written, by these tests
    return load_settings()


def _wait_for_topics_module():
    spec = importlib.util.spec_from_file_location("wait_for_topics", K8S / "wait_for_topics.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_topic_has_a_kafkatopic_with_its_partitions_and_settings(k8s_settings) -> None:
    declared = {t["spec"]["topicName"]: t for t in kinds("KafkaTopic")}
    specs = topic_specs(k8s_settings)
    for name, (partitions, config) in specs.items():
        assert name in declared, f"topic {name} has no KafkaTopic in deploy/k8s/kafka-topics.yaml"
        spec = declared[name]["spec"]
        assert spec["partitions"] == partitions, f"{name}: {spec['partitions']} partitions, the code wants {partitions}"
        assert {k: str(spec["config"][k]) for k in config} == config, name
    # The only extra one is Faust's leader topic, which wait_for_topics.py waits for as well.
    assert set(declared) == _wait_for_topics_module().wanted(k8s_settings)
    assert all(t["spec"]["replicas"] == 3 and t["spec"]["config"]["min.insync.replicas"] == 2
               for t in declared.values())


def test_workers_do_not_outnumber_partitions_and_bridges_have_stable_client_ids() -> None:
    worker = one("Deployment", "hw-worker")
    assert 1 <= worker["spec"]["replicas"] <= int(ENV["HW_PARTITIONS"])
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    bridge = one("StatefulSet", "hw-bridge")  # stable pod names = stable MQTT client ids (bridge.yaml)
    (c,) = bridge["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["bridge", "--client-id", "$(POD_NAME)"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c["env"]
    audit = one("PersistentVolumeClaim", "hazardwatch-audit")  # one audit chain shared by every worker
    assert audit["spec"]["accessModes"] == ["ReadWriteMany"]


def test_wait_for_topics_waits_through_kafka_errors_and_missing_topics() -> None:
    module = _wait_for_topics_module()
    answers: list[Any] = [ConnectionError("no broker"), {"readings"}, {"readings", "alerts", "other"}]
    said: list[str] = []

    async def list_topics() -> set[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    asyncio.run(module.wait({"readings", "alerts"}, list_topics, every_s=0, say=said.append))
    assert not answers and "not answering" in said[0] and "alerts" in said[1] and "all 2" in said[2]


# ---- images, probes, resources, security ----------------------------------------------------------------------------
def pinned_images() -> dict[str, str]:
    return {"mosquitto": "eclipse-mosquitto:2.0.20", "influxdb": f"influxdb:{services.INFLUXDB_VERSION.lstrip('v')}",
            "grafana": f"grafana/grafana-oss:{GRAFANA_VERSION}", "app": APP_IMAGE}


def test_every_image_is_pinned_and_matches_compose() -> None:
    used = {c["image"] for w in kinds(*WORKLOADS) for c in containers(w)}
    assert used == set(pinned_images().values())
    assert all(re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", image) for image in used)
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    assert {s["image"] for s in compose.values()} == used | {f"apache/kafka:{services.KAFKA_VERSION}"}
    assert KUSTOMIZATION["images"] == [{"name": "hazardwatch", "newTag": APP_IMAGE.split(":")[1]}]


def test_probes_use_ports_the_containers_expose_and_the_ops_endpoints() -> None:
    for w in kinds(*WORKLOADS):
        for c in containers(w):
            ports = {p["name"] for p in c.get("ports", [])} | {p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c:
                    action = c[probe].get("httpGet") or c[probe].get("tcpSocket")
                    assert action["port"] in ports, f"{w['metadata']['name']}/{c['name']} {probe}: {action['port']}"
        annotations = w["spec"]["template"]["metadata"].get("annotations", {})
        if "prometheus.io/port" in annotations:
            exposed = {p["containerPort"] for c in containers(w) for p in c.get("ports", [])}
            assert int(annotations["prometheus.io/port"]) in exposed
    for name, port in OPS_PORTS.items():
        (app,) = [w for w in kinds(*WORKLOADS) if w["metadata"]["name"] == name]
        c = app["spec"]["template"]["spec"]["containers"][-1]
        assert c["ports"][0]["containerPort"] == port
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert app["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert env.get("HW_OPS_PORT", str(port)) == str(port)


def test_every_container_has_requests_and_limits() -> None:
    for w in kinds(*WORKLOADS):
        for c in containers(w):
            for bound in ("requests", "limits"):
                assert set(c["resources"][bound]) == {"cpu", "memory"}, f"{w['metadata']['name']}/{c['name']}"


def test_pods_run_as_non_root_with_a_read_only_root_and_no_privileges() -> None:
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert dockerfile_user
    for w in kinds(*WORKLOADS):
        pod = w["spec"]["template"]["spec"]
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] > 0
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
        if any(c["image"] == APP_IMAGE for c in containers(w)):
            assert (str(ctx["runAsUser"]), str(ctx["runAsGroup"])) == dockerfile_user.groups()
        for c in containers(w):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]


def test_non_secret_settings_are_real_hazardwatch_settings() -> None:
    # Every key must be read by the code; a typo would silently fall back to a loopback default.
    code = [p for d in ("hazardwatch", "ingest", "alerts") for p in (PROJECT_ROOT / d).rglob("*.py")]
    source = "\n".join(p.read_text() for p in code)
    unknown = [k for k in ENV if f'"{k}"' not in source]
    assert not unknown, f"hazardwatch.env sets settings no code reads: {unknown}"
    assert ENV["HW_HOST"] == "0.0.0.0" and ENV["HW_LOG_FORMAT"] == "json"


# ---- secrets -------------------------------------------------------------------------------------------------------
def secret_references() -> dict[str, set[str]]:
    """Secret name -> the keys the manifests take from it (empty: the whole Secret)."""
    refs: dict[str, set[str]] = {}
    for w in kinds(*WORKLOADS):
        pod = w["spec"]["template"]["spec"]
        for v in pod.get("volumes", []):
            if "secret" in v:
                refs.setdefault(v["secret"]["secretName"], set())
            for source in v.get("projected", {}).get("sources", []):
                if "secret" in source:
                    refs.setdefault(source["secret"]["name"], set()).update(i["key"] for i in source["secret"]["items"])
        for c in containers(w):
            for e in c.get("envFrom", []):
                if "secretRef" in e:
                    refs.setdefault(e["secretRef"]["name"], set())
            for e in c.get("env", []):
                if ref := e.get("valueFrom", {}).get("secretKeyRef"):
                    refs.setdefault(ref["name"], set()).add(ref["key"])
    return refs


def test_every_secret_the_manifests_use_is_documented_with_its_keys(settings) -> None:
    readme = (K8S / "README.md").read_text()
    section = readme.split("## Secrets", 1)[1].split("\n## ", 1)[0]
    command = r"create secret generic (\S+)(?:[^\n]*\\\n)*[^\n]*"  # with its continuation lines
    commands = {m.group(1): m.group(0) for m in re.finditer(command, section)}
    refs = secret_references()
    assert set(refs) == set(commands), f"manifests use {sorted(refs)}, README documents {sorted(commands)}"
    for name, keys in refs.items():
        for key in keys:
            assert re.search(rf"--from-(literal|file)={re.escape(key)}\b", commands[name]), f"{name}: key {key}"
    users = services.render_acl(settings).split("user ")[1:]
    mqtt = {f"HW_MQTT_PASSWORD_{u.split()[0].upper().replace('-', '_')}" for u in users}
    assert mqtt == set(re.findall(r"--from-literal=(HW_MQTT_PASSWORD_\w+)=", commands["hazardwatch-mqtt"]))


def test_no_secret_objects_or_values_in_the_manifests() -> None:
    assert not kinds("Secret"), "Secrets are created by the operator (README.md), never shipped"
    for w in kinds(*WORKLOADS):
        for c in containers(w):
            for e in c.get("env", []):
                if re.search(r"PASSWORD|TOKEN|SECRET|KEY", e["name"]) and e["name"] != "POD_NAME":
                    assert "valueFrom" in e, f"{w['metadata']['name']}: {e['name']} has a literal value"
    text = "\n".join(p.read_text() for p in K8S.rglob("*") if p.is_file() and p.suffix in {".yaml", ".env", ".md"})
    assert not re.search(r"(?i)(password|token)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{16,}", text)


# ---- Grafana --------------------------------------------------------------------------------------------------------
def test_every_grafana_file_is_shipped_and_mounted_where_the_providers_look() -> None:
    generators = {g["name"]: g for g in KUSTOMIZATION["configMapGenerator"]}
    grafana = one("Deployment", "grafana")
    pod = grafana["spec"]["template"]["spec"]
    volumes = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    mounts = {m["mountPath"]: volumes.get(m["name"]) for m in pod["containers"][0]["volumeMounts"]}
    folders = sorted(p for p in (DEPLOY / "grafana" / "dashboards").iterdir() if p.is_dir())
    assert folders, "deploy/grafana/dashboards is empty: run hazardwatch grafana render --out deploy/grafana"
    for folder in folders:
        name = f"grafana-dashboards-{folder.name}"
        want = sorted(f"../grafana/dashboards/{folder.name}/{f.name}" for f in folder.glob("*.json"))
        assert sorted(generators[name]["files"]) == want, f"{name} in deploy/k8s/kustomization.yaml is out of date"
        assert mounts[f"/var/lib/grafana/dashboards/{folder.name}"] == name
    providers = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "hazardwatch.yaml").read_text())
    assert {p["options"]["path"] for p in providers["providers"]} <= set(mounts)
    assert mounts["/etc/grafana/provisioning/datasources"] == "grafana-datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == "grafana-dashboard-providers"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["HW_INFLUX_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hazardwatch-influxdb", "key": "admin-token"}
