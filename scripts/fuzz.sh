#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a while.
#
#   scripts/fuzz.sh                 every target, $MODELGATE_FUZZ_SECONDS each (default 60)
#   scripts/fuzz.sh 600 policy tar_layer
#                                   those targets, ten minutes each
#   scripts/fuzz.sh policy          one target, $MODELGATE_FUZZ_SECONDS
#   MODELGATE_FUZZ_JOBS=2 scripts/fuzz.sh
#                                   two targets at a time (one core each)
#
# No nightly toolchain and no cargo-fuzz install needed: the targets are
# built by cargo with libFuzzer's coverage instrumentation added by
# scripts/fuzz-rustc.sh (a RUSTC_WRAPPER) to modelgate and fuzz/ only, in the
# same target folder and profile as `cargo test`, so the dependencies are
# the ones the tests built. (With cargo-fuzz installed, `cargo fuzz run
# <target>` works on the same fuzz/ folder too, with AddressSanitizer on a
# nightly toolchain.)
#
# Corpus: target/fuzz/corpus/<target>, seeded on every run from fixtures/
# (signatures, bundles, keys, certificates, trusted roots, the tiny model)
# and fuzz/seeds/<target>/; it grows between runs on the same machine.
# Limits per run: 4 KiB inputs (64 KiB for tar layers, bundles and trusted
# roots, whose seeds are larger), 10 s per input, 2 GiB of memory.
#
# Coverage: only modelgate and fuzz/ are instrumented, which reuses the
# test build (seconds). MODELGATE_FUZZ_DEEP=1 instruments every dependency
# as well, in a build of its own under target/fuzz-deep (minutes): use it
# for long runs. A finding (panic, timeout,
# out-of-memory) stops the script with libFuzzer's exit status and leaves
# the input in target/fuzz/artifacts/<target>/: reproduce it with
# `target/debug/<target> <that file>`, then add it to fuzz/seeds/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${MODELGATE_FUZZ_SECONDS:-60}
if [[ ${1:-} =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: seconds must be a positive number, not '$seconds'" >&2; exit 2; }
all=(bundle statement keys certificates trusted_root policy oci_manifest tar_layer auth measurement_log reference gpu_facts)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz.sh: no fuzz target '$t'; the targets: ${all[*]}" >&2; exit 2; }
done

target_dir=${CARGO_TARGET_DIR:-target}
work="$target_dir/fuzz"
if [[ ${MODELGATE_FUZZ_DEEP:-} == 1 ]]; then
  # Every dependency instrumented too: a build of its own (minutes), for
  # long runs by hand.
  host=$(rustc -vV | sed -n 's/^host: //p')
  CARGO_TARGET_DIR="$target_dir/fuzz-deep" RUSTC_WRAPPER="$PWD/scripts/fuzz-rustc.sh" \
    cargo build --locked -p modelgate-fuzz --bins --target "$host"
  bins="$target_dir/fuzz-deep/$host/debug"
else
  RUSTC_WRAPPER="$PWD/scripts/fuzz-rustc.sh" cargo build --locked -p modelgate-fuzz --bins
  bins="$target_dir/debug"
fi

# seed <target> <file>...: copies files into the target's seed folder.
seed() {
  local dir="$work/seeds/$1"; shift
  mkdir -p "$dir"
  local f
  for f in "$@"; do [[ -f $f ]] && cp "$f" "$dir/$(echo "$f" | tr '/' '_')"; done
  return 0
}
rm -rf "$work/seeds"
shopt -s globstar nullglob
sigs=(fixtures/**/*.sig fixtures/**/*.sigstore.json)
seed bundle "${sigs[@]}"
seed keys fixtures/**/*.pem
seed certificates fixtures/**/*.pem
seed trusted_root fixtures/**/trusted_root*.json
seed oci_manifest fixtures/tiny-model/config.json
seed gpu_facts
# The in-toto statements inside the signatures, decoded.
mkdir -p "$work/seeds/statement"
python3 - "$work/seeds/statement" "${sigs[@]}" <<'PY'
import base64, json, sys
out = sys.argv[1]
for i, path in enumerate(sys.argv[2:]):
    try:
        env = json.load(open(path)).get("dsseEnvelope") or {}
        open(f"{out}/{i}.json", "wb").write(base64.b64decode(env["payload"]))
    except Exception:
        pass
PY
# A tar layer of the tiny model, plain (first byte 0, see fuzz/src/lib.rs).
python3 - "$work/seeds/tar_layer" <<'PY'
import io, os, sys, tarfile
os.makedirs(sys.argv[1], exist_ok=True)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for name in ["config.json", "generation_config.json"]:
        tar.add(f"fixtures/tiny-model/{name}", arcname=f"models/{name}")
    link = tarfile.TarInfo("models/link"); link.type = tarfile.SYMTYPE; link.linkname = "config.json"
    tar.addfile(link)
open(f"{sys.argv[1]}/tiny.tar", "wb").write(b"\x04" + buf.getvalue())
PY
for t in "${all[@]}"; do seed "$t" fuzz/seeds/"$t"/*; done

# run_target <target>: fuzzes it for $seconds; prints its statistics, or
# the failure with its input, and returns non-zero on a finding.
run_target() {
  local t=$1 corpus="$work/corpus/$1" artifacts="$work/artifacts/$1" max_len
  mkdir -p "$corpus" "$artifacts"
  case $t in tar_layer | trusted_root | bundle) max_len=65536 ;; *) max_len=4096 ;; esac
  if ! "$bins/$t" "$corpus" "$work/seeds/$t" \
      -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 2>"$work/$t.log"; then
    {
      echo "fuzz: $t FOUND A FAILURE; input and log:"
      ls -l "$artifacts"
      tail -40 "$work/$t.log"
    } >&2
    return 1
  fi
  echo "fuzz: $t ${seconds}s: $(grep -E '^stat::number_of_executed_units|DONE' "$work/$t.log" | tail -2 | tr -s ' \n' ' ')"
}

# $MODELGATE_FUZZ_JOBS targets at a time (default 1).
jobs=${MODELGATE_FUZZ_JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: MODELGATE_FUZZ_JOBS must be a positive number" >&2; exit 2; }
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $jobs at a time"
status=0 running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || status=1
    running=$((running - 1))
  fi
  run_target "$t" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
