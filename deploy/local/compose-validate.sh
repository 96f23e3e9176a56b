#!/usr/bin/env bash
# `docker compose config` without Docker: builds deploy/local/compose-validate (compose-go, the library the
# compose CLI uses) once into ${HW_CACHE:-~/.cache/hazardwatch}, keyed by its sources, then runs it.
#   bash deploy/local/compose-validate.sh -f deploy/docker-compose.yml --env-file deploy/compose/env.example
#   bash deploy/local/compose-validate.sh --install-only     # just build it (deploy/local/install.sh)
set -euo pipefail
src="$(cd "$(dirname "$0")/compose-validate" && pwd)"
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
dir="${HW_CACHE:-$HOME/.cache/hazardwatch}/compose-validate-$key"
bin="$dir/compose-validate"
if [ ! -x "$bin" ]; then
  command -v go >/dev/null || { echo "compose-validate.sh: Go is needed to build the compose validator" >&2; exit 3; }
  echo "compose-validate.sh: building the compose validator into $dir (once, ~15 s)" >&2
  mkdir -p "$dir"
  # -mod=readonly: go.sum pins every dependency; a missing or changed hash fails instead of being fetched anew.
  (cd "$src" && GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath -o "$bin.partial" .)
  mv "$bin.partial" "$bin"
fi
[ "${1:-}" = "--install-only" ] && exit 0
exec "$bin" "$@"
