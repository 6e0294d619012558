#!/usr/bin/env bash
# Benchmarks `modelgate verify` against `model_signing verify key` (the
# reference) and `sha256sum`, side by side in one run, hot page cache.
#
#   benches/bench.sh [RUNS]        (default 3 runs per tool; the best is kept)
#
# Data sets are generated once under $BENCH_DIR (default /tmp/modelgate-bench,
# about 3.1 GB): 4 x 512 MiB, one 1 GiB file, 10,000 x 4 KiB, a tiny 3-file
# model. Needs the test venv (scripts/test.sh makes it) and GNU time.
# Prints a Markdown table: wall time (best of RUNS), GB/s, peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
data=${BENCH_DIR:-/tmp/modelgate-bench}
venv=${MODELGATE_TEST_VENV:-$PWD/.venv}
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
[[ -x $venv/bin/model_signing ]] || { echo "no reference in $venv: run scripts/test.sh first" >&2; exit 2; }

cargo build --release --locked -q
bin=$PWD/target/release/modelgate

mkdir -p "$data"
gen() { # gen DIR COUNT BYTES
  local dir=$data/$1
  [[ -f $dir/.done ]] && return
  rm -rf "$dir" && mkdir -p "$dir"
  if (($2 > 100)); then
    # many small files: one random stream cut into pieces
    head -c $(($2 * $3)) /dev/urandom | split -a 5 -d -b "$3" - "$dir/f"
  else
    for ((i = 0; i < $2; i++)); do head -c "$3" /dev/urandom >"$dir/part-$i.bin"; done
  fi
  touch "$dir/.done"
}
gen multi-4x512MiB 4 $((512 << 20))
gen big-1GiB 1 $((1 << 30))
gen small-10000x4KiB 10000 4096
if [[ ! -f $data/tiny/.done ]]; then
  mkdir -p "$data/tiny"
  cp fixtures/tiny-model/config.json fixtures/tiny-model/tokenizer.json fixtures/tiny-model/model.safetensors "$data/tiny/"
  touch "$data/tiny/.done"
fi
if [[ ! -f $data/key.pem ]]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$data/key.pem"
  openssl ec -in "$data/key.pem" -pubout -out "$data/key.pub" 2>/dev/null
fi

# best_of CMD...: prints "seconds peak_kib" of the fastest of $runs runs.
# Wall time from the nanosecond clock (GNU time rounds to 10 ms); peak RSS
# from GNU time (the largest process in the command's tree).
best_of() {
  local best="" t0 t1 kib secs
  for ((r = 0; r < runs; r++)); do
    t0=$(date +%s%N)
    kib=$(/usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1)
    t1=$(date +%s%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
    if [[ -z $best ]] || awk -v a="$secs" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then best="$secs $kib"; fi
  done
  echo "$best"
}

limit=$(openssl speed -evp sha256 -seconds 1 2>/dev/null | awk '/^sha256/ {gsub("k","",$NF); printf "%.2f", $NF*1000/1e9}')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); openssl speed -evp sha256 (16 KiB blocks, one core): L = $limit GB/s"
echo
echo "| data set | tool | wall (s) | GB/s | peak RSS (MB) |"
echo "|---|---|---:|---:|---:|"
for set in multi-4x512MiB big-1GiB small-10000x4KiB tiny; do
  dir=$data/$set sig=$data/$set.sig
  [[ -f $sig ]] || "$bin" -q attest "$dir" --key "$data/key.pem" --signature "$sig" --ignore-paths .done
  bytes=$(find "$dir" -type f ! -name .done -printf '%s\n' | awk '{s+=$1} END {print s}')
  find "$dir" -type f -exec cat {} + >/dev/null # hot page cache
  for tool in modelgate model_signing sha256sum; do
    case $tool in
      modelgate) cmd=("$bin" -q verify "$dir" --signature "$sig" --key "$data/key.pub" --ignore-paths .done) ;;
      model_signing) cmd=("$venv/bin/model_signing" verify key --public_key "$data/key.pub" --signature "$sig"
                          --ignore-paths "$dir/.done" "$dir") ;;
      sha256sum) cmd=(bash -c 'find "$0" -type f ! -name .done -print0 | xargs -0 sha256sum' "$dir") ;;
    esac
    read -r secs kib < <(best_of "${cmd[@]}")
    awk -v s="$set" -v t="$tool" -v w="$secs" -v b="$bytes" -v k="$kib" \
      'BEGIN { printf "| %s | %s | %.3f | %.2f | %.1f |\n", s, t, w, b / w / 1e9, k / 1024 }'
  done
done
