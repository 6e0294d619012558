#!/usr/bin/env bash
# RUSTC_WRAPPER for scripts/fuzz.sh: adds libFuzzer's coverage
# instrumentation (the flags cargo-fuzz passes with `-s none`) to this
# repository's own crates only -- modelgate, built with its `fuzzing`
# feature, and fuzz/ -- so that the dependencies the tests already built are
# reused as they are. Every other crate is compiled unchanged.
set -euo pipefail
rustc=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
# MODELGATE_FUZZ_DEEP=1 (scripts/fuzz.sh sets it, with its own target
# folder and an explicit --target): every crate compiled for the target is
# instrumented, so the fuzzer also sees coverage inside serde_json, x509-cert
# and the rest; build scripts and proc macros (compiled for the host, with no
# --target) never are.
if [[ ${MODELGATE_FUZZ_DEEP:-} == 1 ]] && [[ " $* " == *" --target "* ]]; then
  instrument=1
else
  instrument=0
fi
case ${CARGO_MANIFEST_DIR:-} in "$root" | "$root"/fuzz) instrument=1 ;; esac
if [[ ${MODELGATE_FUZZ_DEEP:-} == 1 ]] && [[ " $* " != *" --target "* ]]; then instrument=0; fi
case $instrument in
  1)
    exec "$rustc" "$@" \
      -Cpasses=sancov-module \
      -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
      -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares \
      --cfg fuzzing ;;
  *) exec "$rustc" "$@" ;;
esac
