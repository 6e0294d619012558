#!/usr/bin/env bash
# Time from process start to verdict for the tiny fixture model, as a
# container start sees it: the static binary (scripts/build-static.sh), an
# empty environment but the MODELGATE_* settings, `init` verifying the
# mounted folder and writing its measurement. Also the binary's size.
#   benches/startup.sh [RUNS]     (default 50; prints min and median)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
bin=$(scripts/build-static.sh 2>/dev/null | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
times=()
for _ in $(seq "$runs"); do
  start=$(date +%s%N)
  env -i MODELGATE_SOURCE="$PWD/fixtures/tiny-model" \
    MODELGATE_SIGNATURE="$PWD/fixtures/tiny-model.sig" \
    MODELGATE_KEY="$PWD/fixtures/keys/test-signer.pub.pem" \
    MODELGATE_MEASUREMENT="$out/measurement.json" \
    MODELGATE_MEASUREMENT_LOG="$out/measurements.log" \
    "$bin" init >/dev/null 2>&1
  end=$(date +%s%N)
  times+=($(( (end - start) / 1000 )))
done
grep -q '"verdict": "verified"' "$out/measurement.json"
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
printf 'init, tiny model, %d runs: min %.1f ms, median %.1f ms (target < 20 ms)\n' \
  "$runs" "$(bc -l <<<"${sorted[0]}/1000")" "$(bc -l <<<"${sorted[$((runs / 2))]}/1000")"
printf 'static binary: %s bytes\n' "$(stat -c %s "$bin")"
