#!/usr/bin/env bash
# Runs every test. Installs what the tests need first, idempotently:
#   - Debian packages when missing: python3 venv support, openssl, and for the
#     registry tests docker-registry (CNCF distribution), apache2-utils
#     (htpasswd) and skopeo;
#   - a Python venv at .venv with the reference implementation (model-signing).
# Then: rustfmt check, clippy with warnings as errors, and the whole cargo test suite.
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
    $sudo apt-get update -qq && $sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
apt_install openssl ca-certificates docker-registry apache2-utils skopeo zstd
python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
# kubectl (for `kubectl kustomize` in tests/deploy.rs) comes with this
# machine image; Debian does not package it.
command -v kubectl >/dev/null || { echo "kubectl is not installed: tests/deploy.rs needs it (kubectl kustomize)" >&2; exit 1; }

stamp="$venv/.requirements.sha256"
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
  echo "setting up the reference implementation in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$want" >"$stamp"
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
