#!/usr/bin/env bash
# build-influxd.sh - build InfluxDB OSS v2 `influxd` (with Flux) from the Go module proxy.
#
# Output: ${HW_CACHE:-$HOME/.cache/hazardwatch}/influxd-v2.7.12/influxd
#
# Idempotent: if that binary exists and `influxd version` runs, the script prints the
# version and exits 0 at once. Otherwise it builds (15-35 min cold on 2 cores, mostly
# the Rust part of Flux) and moves the binary into place atomically at the end.
# Go and cargo caches stay in their default places, so a rerun after a failure is faster.
#
# How the build works (all steps are logged to $HW_CACHE/influxd-v2.7.12.build.log):
#   1. `go mod download github.com/influxdata/influxdb/v2@v2.7.12`.
#   2. A wrapper module is created from influxdb's own go.mod (same requires and ALL its
#      replace directives; `go install pkg@version` refuses modules with replaces) and
#      it requires influxdb v2.7.12.
#   3. influxdata/pkg-config (version pinned by influxdb's go.mod) is built and used as
#      PKG_CONFIG; cgo calls it, and it compiles Flux's Rust library (libflux) with cargo.
#   4. libflux is pre-built here with cargo first (same source dir, target and env that
#      pkg-config uses), so its output and progress are visible; pkg-config's own cargo
#      run is then a no-op.
#   5. `go build` of github.com/influxdata/influxdb/v2/cmd/influxd (no UI assets).
#
# Needs: Go >= 1.23 (`go`), Rust via rustup (`cargo`, stable), gcc + libc6-dev and a real
# pkg-config (Debian packages are apt-get installed if missing and we are root or have
# passwordless sudo). Network: Go module proxy and crates.io only.
#
# Environment knobs (all optional):
#   HW_CACHE             cache root (default $HOME/.cache/hazardwatch)
#   HW_INFLUXDB_VERSION  influxdb module version (default v2.7.12)
#   HW_RUST_TOOLCHAIN    rustup toolchain for libflux (default stable; flux pins 1.72)
#   HW_GOPROXY           Go module proxy (default https://proxy.golang.org)
#   HW_BUILD_JOBS        parallel jobs for cargo/go (default: number of CPUs)
set -euo pipefail

INFLUXDB_MODULE="github.com/influxdata/influxdb/v2"
INFLUXDB_VERSION="${HW_INFLUXDB_VERSION:-v2.7.12}"
CACHE_DIR="${HW_CACHE:-$HOME/.cache/hazardwatch}"
case "$CACHE_DIR" in /*) ;; *) CACHE_DIR="$PWD/$CACHE_DIR" ;; esac   # we cd around
OUT_DIR="$CACHE_DIR/influxd-$INFLUXDB_VERSION"
BIN="$OUT_DIR/influxd"
WORK="$CACHE_DIR/build/influxd-$INFLUXDB_VERSION"   # wrapper module, helper binaries
LOG="$CACHE_DIR/influxd-$INFLUXDB_VERSION.build.log"
GO_TAGS="sqlite_foreign_keys,sqlite_json"            # as upstream's Makefile, minus `assets`

PHASE="startup"
START_SECONDS=$SECONDS
TMP_BIN=""
CHILD_PID=""

ts() { date -u +%Y-%m-%dT%H:%M:%SZ; }
say() {
    printf '[%s] %s\n' "$(ts)" "$*"
    if [ -n "${LOG_READY:-}" ]; then printf '[%s] %s\n' "$(ts)" "$*" >>"$LOG"; fi
}
phase() { PHASE="$1"; say "==> $1"; }
die() { say "ERROR: $*"; exit 1; }
elapsed() { local s=$((SECONDS - ${1:-$START_SECONDS})); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

hint_for_phase() {
    case "$PHASE" in
        *prerequisites*)
            echo "Install the missing tools (see the message above) and rerun this script." ;;
        *download*|*wrapper*)
            echo "Check that the Go module proxy (${GOPROXY:-https://proxy.golang.org}) is reachable" \
                 "and that $INFLUXDB_MODULE@$INFLUXDB_VERSION exists there (go list -m -versions $INFLUXDB_MODULE)," \
                 "then rerun this script." ;;
        *libflux*|*Rust*)
            echo "The Rust part of Flux (libflux) failed. Check that crates.io is reachable and that" \
                 "'RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-stable} cargo --version' works; look for 'error' in the log." \
                 "Rerun this script: finished crates are cached in $FLUX_SRC/libflux/target." ;;
        *go\ build*)
            echo "The Go build failed. If the error mentions pkg-config/flux, set PKG_CONFIG_LOG=<file> and rerun" \
                 "for details; compiled packages are cached, so a rerun only redoes what failed." ;;
        *)
            echo "Rerun this script; Go and cargo caches make a second attempt faster." ;;
    esac
}

on_exit() {
    local rc=$?
    if [ -n "$CHILD_PID" ] && kill -0 "$CHILD_PID" 2>/dev/null; then
        kill -TERM -- "-$CHILD_PID" 2>/dev/null || kill -TERM "$CHILD_PID" 2>/dev/null || true
    fi
    if [ -n "$TMP_BIN" ]; then rm -f "$TMP_BIN"; fi
    if [ "$rc" -ne 0 ]; then
        if [ -n "${LOG_READY:-}" ] && [ -s "$LOG" ]; then
            echo
            echo "----- last 40 lines of $LOG -----"
            tail -n 40 "$LOG" || true
            echo "----- end of log excerpt -----"
        fi
        say "FAILED in phase: $PHASE (exit code $rc, after $(elapsed))"
        if [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; then
            echo "What to do next: the build was interrupted; rerun this script to continue (caches are kept)."
        else
            echo "What to do next: $(hint_for_phase)"
        fi
        echo "Full log: $LOG"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a long command with all output appended to $LOG; print a heartbeat every minute.
run_logged() {
    local label="$1"; shift
    local start=$SECONDS next=60 rc=0 last
    printf '\n[%s] $ %s\n' "$(ts)" "$*" >>"$LOG"
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" >>"$LOG" 2>&1 </dev/null 9>&- &
    else
        "$@" >>"$LOG" 2>&1 </dev/null 9>&- &
    fi
    CHILD_PID=$!
    while kill -0 "$CHILD_PID" 2>/dev/null; do
        sleep 2
        if [ $((SECONDS - start)) -ge "$next" ]; then
            next=$((next + 60))
            last=$(tail -n 1 "$LOG" 2>/dev/null | tr -d '\r' | cut -c1-110)
            say "    ... $label running for $(elapsed "$start"): $last"
        fi
    done
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    if [ "$rc" -ne 0 ]; then
        say "    $label failed with exit code $rc after $(elapsed "$start")"
        return "$rc"
    fi
    say "    $label done in $(elapsed "$start")"
}

binary_works() { [ -x "$1" ] && "$1" version >/dev/null 2>&1 </dev/null; }

# ---------------------------------------------------------------------------------------
# 0. Fast path: already built.
# ---------------------------------------------------------------------------------------
if binary_works "$BIN"; then
    say "influxd already built: $BIN ($("$BIN" version 2>/dev/null | head -n 1))"
    exit 0
fi

mkdir -p "$CACHE_DIR" "$OUT_DIR" "$WORK"

# One build at a time per cache dir; a waiting run reuses the winner's result.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_DIR/.influxd-$INFLUXDB_VERSION.lock"
    if ! flock -n 9; then
        say "another build of influxd $INFLUXDB_VERSION is running; waiting for it (up to 90 min)"
        flock -w 5400 9 || die "timed out waiting for the lock $CACHE_DIR/.influxd-$INFLUXDB_VERSION.lock"
    fi
    if binary_works "$BIN"; then
        say "influxd already built: $BIN ($("$BIN" version 2>/dev/null | head -n 1))"
        exit 0
    fi
fi

if [ -e "$BIN" ]; then
    say "existing $BIN does not run ('influxd version' failed); rebuilding"
    rm -f "$BIN"
fi

if [ -f "$LOG" ]; then mv -f "$LOG" "$LOG.prev"; fi
: >"$LOG"
LOG_READY=1
say "building influxd $INFLUXDB_VERSION into $BIN (log: $LOG)"

# ---------------------------------------------------------------------------------------
# 1. Prerequisites.
# ---------------------------------------------------------------------------------------
phase "checking prerequisites"

need_pkgs=()
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)  # the real one is needed too
[ -e /usr/include/stdlib.h ] || need_pkgs+=(libc6-dev)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    say "missing Debian packages: ${need_pkgs[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
            die "need root or passwordless sudo to install: ${need_pkgs[*]} (apt-get install ${need_pkgs[*]})"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install ${need_pkgs[*]} manually"
    run_logged "apt-get update" $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    run_logged "apt-get install" $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

command -v go >/dev/null 2>&1 || die "'go' not found on PATH (Go >= 1.23 needed; Debian's golang is too old)"
command -v cargo >/dev/null 2>&1 || die "'cargo' not found on PATH (install Rust with rustup, stable toolchain)"

# Go settings: proxy only (no direct VCS access), no checksum DB (go.sum files still verify).
export GOPROXY="${HW_GOPROXY:-https://proxy.golang.org}"
export GOSUMDB=off
export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=1
export GO111MODULE=on

go_version=$(go env GOVERSION)
case "$go_version" in
    go1.2[3-9]*|go1.[3-9][0-9]*|go[2-9]*) ;;
    *) die "Go >= 1.23 required, found $go_version" ;;
esac
GOCACHE_DIR=$(go env GOCACHE)
GOOS_=$(go env GOOS)
GOARCH_=$(go env GOARCH)
case "$GOOS_/$GOARCH_" in
    linux/amd64) CARGO_TARGET=x86_64-unknown-linux-gnu ;;
    linux/arm64) CARGO_TARGET=aarch64-unknown-linux-gnu ;;
    *) die "unsupported platform $GOOS_/$GOARCH_ (this script handles linux/amd64 and linux/arm64)" ;;
esac

# Flux pins Rust 1.72 in rust-toolchain.toml; use an installed toolchain instead.
if command -v rustup >/dev/null 2>&1; then
    RUST_TC="${HW_RUST_TOOLCHAIN:-stable}"
    if ! RUSTUP_TOOLCHAIN="$RUST_TC" rustc --version >/dev/null 2>&1; then
        fallback_tc=$(cd / && rustup default 2>/dev/null | awk '{print $1}')
        say "rust toolchain '$RUST_TC' not usable; falling back to rustup default '$fallback_tc'"
        RUST_TC="$fallback_tc"
    fi
    export RUSTUP_TOOLCHAIN="$RUST_TC"
fi
rustc_version=$(rustc --version) || die "rustc does not run (RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-})"
export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never
if [ -n "${HW_BUILD_JOBS:-}" ]; then export CARGO_BUILD_JOBS="$HW_BUILD_JOBS"; fi

say "    $go_version $GOOS_/$GOARCH_, $rustc_version (RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-unset}), $(gcc --version | head -n 1)"
say "    GOPROXY=$GOPROXY GOSUMDB=$GOSUMDB GOCACHE=$GOCACHE_DIR"
free_kb=$(df -Pk "$CACHE_DIR" | awk 'NR==2 {print $4}')
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((6 * 1024 * 1024)) ]; then
    say "    WARNING: only $((free_kb / 1024)) MiB free under $CACHE_DIR; the build needs about 5 GiB"
fi

# ---------------------------------------------------------------------------------------
# 2. Download influxdb and create the wrapper module.
# ---------------------------------------------------------------------------------------
phase "downloading $INFLUXDB_MODULE@$INFLUXDB_VERSION from $GOPROXY"
mkdir -p "$WORK/dl"
dl_json=$(cd "$WORK/dl" && go mod download -json "$INFLUXDB_MODULE@$INFLUXDB_VERSION" 2>>"$LOG") || {
    printf '%s\n' "$dl_json" >>"$LOG"
    die "go mod download $INFLUXDB_MODULE@$INFLUXDB_VERSION failed: $(printf '%s' "$dl_json" | sed -n 's/^\t"Error": "\(.*\)"$/\1/p')"
}
INFLUX_SRC=$(printf '%s\n' "$dl_json" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -f "$INFLUX_SRC/go.mod" ] || die "no go.mod in downloaded module dir '$INFLUX_SRC'"
say "    module source: $INFLUX_SRC"

phase "creating wrapper module in $WORK/mod"
MOD="$WORK/mod"
rm -rf "$MOD"
mkdir -p "$MOD"
# Start from influxdb's own go.mod: this repeats ALL of its replace (and exclude) directives
# and its exact dependency versions; then make it a different module requiring influxdb.
cp "$INFLUX_SRC/go.mod" "$MOD/go.mod"
cp "$INFLUX_SRC/go.sum" "$MOD/go.sum"
chmod u+w "$MOD/go.mod" "$MOD/go.sum"
(
    cd "$MOD"
    go mod edit -module=hazardwatch.local/influxd-build \
        -require="$INFLUXDB_MODULE@$INFLUXDB_VERSION" -toolchain=none
) >>"$LOG" 2>&1 || die "go mod edit failed"
cat >"$MOD/README" <<EOF
Generated by deploy/local/build-influxd.sh; recreated on every build. Safe to delete.
EOF
n_replace=$(cd "$MOD" && go mod edit -json | grep -c '"Old"' || true)
say "    replace directives carried over from influxdb's go.mod: $n_replace"
{ (cd "$MOD" && go mod edit -print) | grep '=>' || true; } | sed 's/^[[:space:]]*\(replace[[:space:]]*\)\{0,1\}/      /' \
    | while IFS= read -r l; do say "$l"; done
PKGCONFIG_VERSION=$(cd "$MOD" && go list -m -f '{{.Version}}' github.com/influxdata/pkg-config)
FLUX_VERSION=$(cd "$MOD" && go list -m -f '{{.Version}}' github.com/influxdata/flux)
say "    flux $FLUX_VERSION, pkg-config $PKGCONFIG_VERSION"

phase "downloading Go dependencies of cmd/influxd"
run_logged "go mod download" bash -c "cd '$MOD' && go mod download '$INFLUXDB_MODULE' github.com/influxdata/flux github.com/influxdata/pkg-config && go list -deps -tags '$GO_TAGS' '$INFLUXDB_MODULE/cmd/influxd' github.com/influxdata/pkg-config >/dev/null"

# ---------------------------------------------------------------------------------------
# 3. Helpers: InfluxData's pkg-config wrapper, and a rustc wrapper capping lints.
# ---------------------------------------------------------------------------------------
phase "building github.com/influxdata/pkg-config $PKGCONFIG_VERSION"
mkdir -p "$WORK/bin"
run_logged "go build pkg-config" bash -c "cd '$MOD' && go build -o '$WORK/bin/pkg-config' github.com/influxdata/pkg-config"
export PKG_CONFIG="$WORK/bin/pkg-config"

# Flux's crates say #![deny(warnings)]; newer rustc versions add warnings, so cap lints at
# "warn". RUSTFLAGS would miss build scripts/proc-macros (cargo passes --target), hence a
# RUSTC_WRAPPER. Crates that already get --cap-lints (crates.io deps) are left alone.
cat >"$WORK/bin/rustc-cap-lints.tmp" <<'EOF'
#!/bin/sh
# RUSTC_WRAPPER written by build-influxd.sh; cargo calls it as: <this> <rustc> <args...>
for a in "$@"; do
    case "$a" in --cap-lints|--cap-lints=*) exec "$@" ;; esac
done
case " $* " in
    *" --crate-name "*) exec "$@" --cap-lints warn ;;
esac
exec "$@"
EOF
chmod +x "$WORK/bin/rustc-cap-lints.tmp"
mv -f "$WORK/bin/rustc-cap-lints.tmp" "$WORK/bin/rustc-cap-lints"
export RUSTC_WRAPPER="$WORK/bin/rustc-cap-lints"

# ---------------------------------------------------------------------------------------
# 4. libflux (Rust). pkg-config builds it in $GOCACHE/pkgconfig/<module>@<version>/libflux
#    (a writable copy of the read-only module dir); prepare that copy ourselves (atomically,
#    with a completion marker) and run the same cargo command with visible progress.
# ---------------------------------------------------------------------------------------
phase "preparing Flux $FLUX_VERSION source for the Rust build"
FLUX_MODDIR=$(cd "$MOD" && go list -m -f '{{.Dir}}' github.com/influxdata/flux)
[ -d "$FLUX_MODDIR/libflux" ] || die "flux module dir not found: '$FLUX_MODDIR'"
FLUX_SRC="$GOCACHE_DIR/pkgconfig/github.com/influxdata/flux@$FLUX_VERSION"
MARKER="$FLUX_SRC/.hazardwatch-copy-complete"
if [ ! -f "$MARKER" ]; then
    if [ -e "$FLUX_SRC" ]; then say "    discarding incomplete/foreign copy $FLUX_SRC"; rm -rf "$FLUX_SRC"; fi
    mkdir -p "$(dirname "$FLUX_SRC")"
    rm -rf "$FLUX_SRC.tmp.$$"
    cp -R "$FLUX_MODDIR" "$FLUX_SRC.tmp.$$"
    chmod -R u+w "$FLUX_SRC.tmp.$$"
    touch "$FLUX_SRC.tmp.$$/.hazardwatch-copy-complete"
    mv "$FLUX_SRC.tmp.$$" "$FLUX_SRC"
    say "    copied $FLUX_MODDIR -> $FLUX_SRC"
else
    say "    reusing $FLUX_SRC"
fi

phase "building libflux (Rust, cargo build --release --target $CARGO_TARGET; the slow part)"
run_logged "cargo build libflux" bash -c "cd '$FLUX_SRC/libflux' && cargo build --release --target '$CARGO_TARGET'"
[ -f "$FLUX_SRC/libflux/target/$CARGO_TARGET/release/libflux.a" ] || die "cargo finished but libflux.a is missing"

# ---------------------------------------------------------------------------------------
# 5. influxd (Go). pkg-config is called by cgo; its cargo run is now a no-op.
# ---------------------------------------------------------------------------------------
phase "building influxd (go build, tags $GO_TAGS, no UI assets)"
say "    checking pkg-config for flux"
(cd "$FLUX_MODDIR/libflux/go/libflux" && "$PKG_CONFIG" --cflags --libs flux) >>"$LOG" 2>&1 \
    || die "pkg-config --cflags --libs flux failed (see log)"
TMP_BIN="$OUT_DIR/.influxd.tmp.$$"
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w -X main.version=$INFLUXDB_VERSION -X main.commit=gomodproxy -X main.date=$build_date"
go_p=()
if [ -n "${HW_BUILD_JOBS:-}" ]; then go_p=(-p "$HW_BUILD_JOBS"); fi
run_logged "go build influxd" bash -c "cd '$MOD' && go build -v ${go_p[*]:-} -tags '$GO_TAGS' -ldflags '$ldflags' -o '$TMP_BIN' '$INFLUXDB_MODULE/cmd/influxd'"

phase "checking the new binary"
"$TMP_BIN" version </dev/null >>"$LOG" 2>&1 || die "the built binary does not run ('influxd version' failed)"
mv -f "$TMP_BIN" "$BIN"
TMP_BIN=""
say "    $("$BIN" version 2>/dev/null | head -n 1)"
say "    size: $(du -h "$BIN" | cut -f1)"
say "DONE: $BIN built in $(elapsed)"
