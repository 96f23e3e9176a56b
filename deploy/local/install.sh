#!/usr/bin/env bash
# Install everything hazardwatch needs on a fresh Debian machine, idempotently:
#   system packages (Mosquitto, Java, Maven, build tools), the Python environment (.venv),
#   Apache Kafka jars from Maven Central and influxd built from the Go module proxy (both cached under
#   ${HW_CACHE:-~/.cache/hazardwatch}, so a second run takes seconds).
# Services are not started here: `hazardwatch services up` (or `hazardwatch demo`) does that.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
say() { printf '[%s] install: %s\n' "$(date +%H:%M:%S)" "$*"; }
t0=$SECONDS

# 1. System packages, only those missing.
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_passwd >/dev/null 2>&1 || [[ " ${need[*]} " == *" mosquitto "* ]] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# The duty console's browser test drives Debian's Chromium (Playwright never downloads a browser here);
# Noto CJK so the screenshots show Chinese, not boxes.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install: need root to apt-get install ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The distribution starts its own broker on 1883 after install; ours runs with our config instead.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  systemctl stop mosquitto || true
fi
pgrep -f '^/usr/sbin/mosquitto -c /etc/mosquitto' >/dev/null 2>&1 && pkill -f '^/usr/sbin/mosquitto -c /etc/mosquitto' || true
for tool in go cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install: $tool is missing; InfluxDB is built from source and needs Go and Rust (rustup)" >&2; exit 1; }
done

# 2. Python 3.11 environment.
py=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    py=$(command -v "$cand"); break
  fi
done
[ -n "$py" ] || { echo "install: Python 3.11 is required (python3.11 not found)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $py"
  "$py" -m venv .venv
fi
stamp=.venv/.hazardwatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing Python packages (pinned in pyproject.toml)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi

# 3. Kafka jars and influxd (cached; the InfluxDB build takes minutes the first time only).
.venv/bin/python - <<'PY'
from hazardwatch.config import load_settings
from hazardwatch.services import Kafka, InfluxDB
s = load_settings()
Kafka().install(s)
InfluxDB().install(s)
PY
# 4. Offline validators for deploy/ (tests/unit/test_manifests.py, test_deploy_config.py), cached under HW_CACHE:
#    compose-go (docker compose's loader) and kustomize from the Go module proxy, Strimzi's CRDs from Maven Central.
say "deploy validators (compose-go, kustomize, Strimzi CRDs; cached)"
bash deploy/local/compose-validate.sh --install-only
bash deploy/k8s/tools/kustomize.sh --install-only
bash deploy/k8s/tools/strimzi-crds.sh >/dev/null
say "done in $((SECONDS - t0))s (root $root)"
