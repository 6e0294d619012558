#!/usr/bin/env bash
# Builds the fully static release binary of modelgate, the one the image ships
# (Dockerfile, target `local`), and prints its path and size.
#
# Target: x86_64-unknown-linux-musl, not glibc with crt-static. Why:
#   - glibc resolves host names through NSS (getaddrinfo reads
#     /etc/nsswitch.conf and dlopens libnss_*.so at run time), which a static
#     glibc binary cannot do in an empty `scratch` image: registry host names
#     would need files the image does not have, and the linker warns about it.
#     musl has no NSS; its resolver reads /etc/hosts and /etc/resolv.conf
#     itself, and kubelet mounts both into every container.
#   - musl links statically by default: no libc, no loader in the image.
#   - it is the libc of the Dockerfile's rust:alpine build stage too.
# The C code in dependencies (aws-lc, ring, blake3) is compiled with musl-gcc
# (Debian package musl-tools).
#
# Beside the binary it puts ca-certificates.crt, a copy of this machine's CA
# bundle (Debian's ca-certificates: Mozilla's roots), for the image's
# /etc/ssl/certs. modelgate checks registries against the roots built into
# it and needs no CA file (tests/it/oci.rs pulls with none); the bundle is
# the system bundle it also trusts, for tools that look for one.
#
# Idempotent: installs the rustup target, musl-tools, binutils and
# ca-certificates only when missing (rustup's dist server is needed for the
# first run; apt-get as root or through sudo); a second run is cargo's no-op
# incremental build.
#
# Output: target/x86_64-unknown-linux-musl/release/modelgate and
# ca-certificates.crt beside it (under $CARGO_TARGET_DIR when set). Prints the
# binary's path (the last line of stdout, alone) and size (stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

# The same build whether scripts/test.sh or tests/it/image.rs (under cargo
# test, which adds CARGO_* variables for the test) starts it: cargo's
# variables are dropped, so the second start finds the first's build fresh.
# CARGO_HOME, CARGO_TARGET_DIR and CARGO_BUILD_JOBS are settings, kept.
# scripts/test.sh's clippy wrapper is dropped too: the linted build has
# checked the code already, and a release build under clippy-driver is only
# slower (and would not be the same build in both starts).
while read -r var; do
  case $var in
    CARGO_HOME | CARGO_TARGET_DIR | CARGO_BUILD_JOBS) ;;
    CARGO | CARGO_* | OUT_DIR | RUSTC | RUSTDOC | RUSTC_WORKSPACE_WRAPPER | CLIPPY_ARGS) unset "$var" ;;
  esac
done < <(compgen -e)

target=x86_64-unknown-linux-musl

if ! rustup target list --installed | grep -qx "$target"; then
  echo "installing the Rust target $target" >&2
  rustup target add "$target" >&2
fi

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}" >&2
    local sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
# musl-gcc compiles the C code in dependencies; readelf (binutils) checks
# the result; ca-certificates provides the bundle the image ships.
command -v musl-gcc >/dev/null 2>&1 || apt_install musl-tools
command -v readelf >/dev/null 2>&1 || apt_install binutils
bundle=/etc/ssl/certs/ca-certificates.crt
[[ -s $bundle ]] || apt_install ca-certificates

# Symbols stripped: the image carries the binary alone. The cc crate picks
# musl-gcc for this target by itself; CC_<target> makes it explicit.
export CARGO_PROFILE_RELEASE_STRIP=symbols
export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}
cargo build --release --locked --target "$target" --bin modelgate >&2

target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/$target/release/modelgate"
[[ -x $bin ]] || { echo "build-static.sh: $bin was not built" >&2; exit 1; }

# Static means no program interpreter (dynamic loader) and no needed library.
if LC_ALL=C readelf -lW "$bin" | grep -q 'Requesting program interpreter' ||
   LC_ALL=C readelf -dW "$bin" | grep -q '(NEEDED)'; then
  echo "build-static.sh: $bin is not static:" >&2
  file "$bin" >&2 || true
  exit 1
fi

[[ -s $bundle ]] || { echo "build-static.sh: no CA bundle at $bundle" >&2; exit 1; }
ca="$target_dir/$target/release/ca-certificates.crt"
cmp -s "$bundle" "$ca" || install -m 0644 "$bundle" "$ca"

size=$(stat -c %s "$bin")
echo "static binary: $(awk -v b="$size" 'BEGIN { printf "%d bytes (%.1f MiB)", b, b / 1048576 }')" >&2
realpath "$bin"
