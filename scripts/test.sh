#!/usr/bin/env bash
# Runs every test. Installs what the tests need first, idempotently:
#   - Debian packages when missing: python3 venv support, openssl, and for the
#     registry tests docker-registry (CNCF distribution), apache2-utils
#     (htpasswd) and skopeo, libfuse2 for the FUSE file system of
#     tests/it/attacks.rs, and GNU time for the peak-RSS checks of
#     tests/it/hostile.rs;
#   - a Python venv at .venv with the reference implementation (model-signing).
# Then, in this order (timings on the 2-core CI machine in README "## Tests"):
#   1. rustfmt check;
#   2. one build of every target, compiled by clippy-driver with warnings as
#      errors: the same lints as `cargo clippy --all-targets -- -D warnings`,
#      but in the build the tests run, so the dependencies are compiled once
#      and not once more in check mode (that saved about 4 minutes of CI);
#   3. the static musl release binary (scripts/build-static.sh, for
#      tests/it/image.rs) builds in the background while
#   4. every fuzz target runs $MODELGATE_FUZZ_SECONDS (default 45) from its
#      seeds, two at a time (scripts/fuzz.sh; fuzz runs are bounded in time,
#      so sharing the cores costs executions, not minutes);
#   5. the whole cargo test suite (the unit tests and the one integration
#      test binary, tests/it; tests/it/image.rs finds the static binary
#      built), under scripts/no-leftovers.sh: the run fails if any process
#      it started (a registry, a proxy, a FUSE mount...) is still running
#      after it.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${MODELGATE_TEST_VENV:-$PWD/.venv}
export MODELGATE_TEST_VENV=$venv

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    local sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
apt_install openssl ca-certificates docker-registry apache2-utils skopeo zstd libfuse2 time
python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
# kubectl (for `kubectl kustomize` in tests/it/deploy.rs) comes with this
# machine image; Debian does not package it.
command -v kubectl >/dev/null || { echo "kubectl is not installed: tests/it/deploy.rs needs it (kubectl kustomize)" >&2; exit 1; }

stamp="$venv/.requirements.sha256"
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
  echo "setting up the reference implementation in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$want" >"$stamp"
fi

section() { echo "== $1 ($(date -u +%H:%M:%S), ${SECONDS}s in)"; }

section "rustfmt"
cargo fmt --all --check

section "build every target with clippy's lints as errors"
# What `cargo clippy` does (clippy-driver as the workspace wrapper, lint
# flags through CLIPPY_ARGS), in build mode. Exported: every later cargo
# call must see the same wrapper, or it rebuilds the crate.
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --locked --no-run

# The static binary builds beside the fuzzing, not beside the linted build:
# fuzz runs are bounded in time, so sharing the cores with them costs
# executions, not minutes (measured: started beside the linted build, both
# took twice as long, and the fuzzing could no longer hide the static build).
section "static binary (background) and fuzzing"
static_log=$(mktemp)
./scripts/build-static.sh >"$static_log" 2>&1 &
static_pid=$!
# Nothing outlives the script: a failed step below ends the build too.
trap 'kill "$static_pid" 2>/dev/null || true' EXIT
fuzz_status=0
MODELGATE_FUZZ_SECONDS=${MODELGATE_FUZZ_SECONDS:-45} MODELGATE_FUZZ_JOBS=${MODELGATE_FUZZ_JOBS:-2} \
  ./scripts/fuzz.sh || fuzz_status=$?
static_status=0
wait "$static_pid" || static_status=$?
tail -2 "$static_log"
if ((static_status)); then cat "$static_log" >&2; echo "scripts/build-static.sh failed" >&2; exit 1; fi
rm -f "$static_log"
if ((fuzz_status)); then echo "a fuzz target found a failure (see above)" >&2; exit 1; fi

section "cargo test (then: no process of the suite left running)"
./scripts/no-leftovers.sh cargo test --locked
section "done"
