#!/usr/bin/env bash
# Runs kustomize (pinned), building it once from the Go module proxy into ${HW_CACHE:-~/.cache/hazardwatch}.
# The tests render deploy/k8s with it exactly as `kubectl kustomize` would, then validate every object.
#   bash deploy/k8s/tools/kustomize.sh build --load-restrictor LoadRestrictionsNone deploy/k8s
#   bash deploy/k8s/tools/kustomize.sh --install-only     # just build it (deploy/local/install.sh)
set -euo pipefail
version=v5.8.2  # the newest kustomize whose go.mod accepts Go 1.26 (v5.8.3 needs Go 1.27)
dir="${HW_CACHE:-$HOME/.cache/hazardwatch}/kustomize-$version"
bin="$dir/kustomize"
if [ ! -x "$bin" ]; then
  command -v go >/dev/null || { echo "kustomize.sh: Go is needed to build kustomize $version" >&2; exit 3; }
  echo "kustomize.sh: building kustomize $version into $dir (once, ~30 s)" >&2
  tmp="$dir.partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # GOFLAGS from the environment (e.g. -mod=vendor) must not reach a module installed by version.
  GOFLAGS=-buildvcs=false GOBIN="$tmp" go install -trimpath "sigs.k8s.io/kustomize/kustomize/v5@$version"
  rm -rf "$dir" && mv "$tmp" "$dir"
fi
[ "${1:-}" = "--install-only" ] && exit 0
exec "$bin" "$@"
