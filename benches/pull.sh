#!/usr/bin/env bash
# Benchmarks pulling and verifying a 2 GiB model in 4 files from a local
# registry (Debian's docker-registry on 127.0.0.1, started here), side by
# side in one run, best of RUNS, hot page cache:
#   - curl: every blob fetched at once to disk, no hashing (the wire's limit);
#   - modelgate pull (fetch, hash in the same pass, verify, rename);
#   - skopeo copy docker://... dir: alone;
#   - skopeo copy, then model_signing verify (files linked to their names).
# Also `modelgate push` of the same model, once, for scale, and `modelgate
# attest oci://` of it (signed from the manifest, nothing downloaded).
#
#   benches/pull.sh [RUNS]     (default 3)
#
# Needs the test venv (scripts/test.sh makes it), docker-registry, skopeo
# and GNU time. Data under $BENCH_DIR (default /tmp/modelgate-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
data=${BENCH_DIR:-/tmp/modelgate-bench}
venv=${MODELGATE_TEST_VENV:-$PWD/.venv}
for tool in docker-registry skopeo /usr/bin/time curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/test.sh first" >&2; exit 2; }
done
cargo build --release --locked -q
bin=$PWD/target/release/modelgate
key=fixtures/keys/test-signer.key.pem
pub=fixtures/keys/test-signer.pub.pem

model=$data/pull-4x512MiB
if [[ ! -f $model/.done ]]; then
  rm -rf "$model" && mkdir -p "$model"
  for i in 0 1 2 3; do head -c $((512 << 20)) /dev/urandom >"$model/model-0000$i-of-00004.safetensors"; done
  touch "$model/.done"
fi
sig=$data/pull-4x512MiB.sig
"$bin" -q attest "$model" --key "$key" --signature "$sig" --ignore-paths .done

work=$(mktemp -d "$data/run-XXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat >"$work/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: $host}
EOF
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry=$!
trap 'kill $registry 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://$host/v2/" >/dev/null && break; sleep 0.05; done

ref=oci://$host/bench/model:v1
mkdir -p "$work/push"
cp -al "$model"/*.safetensors "$work/push/"
t0=$(date +%s.%N)
"$bin" -q push "$work/push" "$ref" --key "$key" --insecure-registry "$host" >/dev/null
t1=$(date +%s.%N)
push_s=$(echo "$t1 - $t0" | bc)
manifest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$host/v2/bench/model/manifests/v1")
mapfile -t blobs < <(python3 -c 'import json,sys; [print(l["digest"], l["annotations"]["org.opencontainers.image.title"]) for l in json.loads(sys.argv[1])["layers"]]' "$manifest")
bytes=$((4 * (512 << 20)))

timeit() { # timeit CMD -> "seconds rss_kb" (best of $runs)
  local out=$work/out
  local best_s="" best_rss=""
  for _ in $(seq "$runs"); do
    rm -rf "$out" "$work/time"
    /usr/bin/time -f %M -o "$work/time" bash -c "$1" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    local s
    s=$(cat "$work/elapsed")
    local rss
    rss=$(tail -1 "$work/time")
    if [[ -z $best_s ]] || (($(echo "$s < $best_s" | bc))); then best_s=$s; best_rss=$rss; fi
  done
  echo "$best_s $best_rss"
}
# Each command records its own wall time (nanosecond clock) in $work/elapsed.
wrap() { echo "t0=\$(date +%s.%N); $1; t1=\$(date +%s.%N); echo \"\$t1 - \$t0\" | bc > $work/elapsed"; }

curl_cmd="mkdir -p $work/out;"
for entry in "${blobs[@]}"; do
  d=${entry%% *}
  curl_cmd+=" curl -sf -o $work/out/${d#sha256:} http://$host/v2/bench/model/blobs/$d &"
done
curl_cmd+=" wait"
pull_cmd="$bin -q pull $ref $work/out --signature $sig --key $pub --insecure-registry $host"
skopeo_cmd="skopeo copy -q --src-tls-verify=false docker://$host/bench/model:v1 dir:$work/out"
link=""
for entry in "${blobs[@]}"; do
  d=${entry%% *}; name=${entry#* }
  link+="; ln $work/out/${d#sha256:} $work/out/files/$name"
done
verify_cmd="$skopeo_cmd; mkdir $work/out/files $link; $venv/bin/model_signing verify key --signature $sig --public_key $pub --ignore_paths $work/out/files/.done $work/out/files"

echo "| tool | wall (s) | GB/s | peak RSS (MB) |"
echo "|---|---:|---:|---:|"
for row in "curl (4 blobs at once, no hashing)|$curl_cmd" "modelgate pull (fetch, hash, verify, rename)|$pull_cmd" "skopeo copy alone|$skopeo_cmd" "skopeo copy + model_signing verify|$verify_cmd"; do
  name=${row%%|*}; cmd=${row#*|}
  read -r s rss < <(timeit "$(wrap "$cmd")")
  printf '| %s | %.3f | %.2f | %.1f |\n' "$name" "$s" "$(echo "$bytes / $s / 1000000000" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
done
printf '\nmodelgate push of the same model (hash, sign, 4 blobs, manifest, referrer): %.3f s\n' "$push_s"
# Signing the model in the registry without downloading it (best of $runs).
best_attest=""
for _ in $(seq "$runs"); do
  t0=$(date +%s.%N)
  "$bin" -q attest "$ref" --key "$key" --signature "$work/remote.sig" --insecure-registry "$host"
  t1=$(date +%s.%N)
  s=$(echo "$t1 - $t0" | bc)
  if [[ -z $best_attest ]] || (($(echo "$s < $best_attest" | bc))); then best_attest=$s; fi
done
printf 'modelgate attest oci:// of the same model (manifest only, no blob fetched): %.3f s\n' "$best_attest"
