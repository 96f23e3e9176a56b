#!/usr/bin/env bash
# The README's test command: install what is missing, then run the whole suite (unit, property and
# integration tests; the integration tests start the real services through `hazardwatch services up`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/install.sh
exec .venv/bin/python -m pytest "$@"
