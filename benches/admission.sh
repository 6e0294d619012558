#!/usr/bin/env bash
# Admission latency and throughput of `modelgate webhook` on this machine,
# against a real registry (Debian's docker-registry on 127.0.0.1, started
# here) holding the 2 GiB benchmark model (4 x 512 MiB files, as
# benches/pull.sh makes it) pushed and signed with `modelgate push`:
#   - /mutate of a pod with the annotation (ApacheBench, HTTPS, keep-alive,
#     4 and CONCURRENCY reviews at once);
#   - /validate of that pod mutated, a cached verdict (ab, the same pod);
#   - /validate with a cold lookup: COLD distinct references, each a cache
#     miss and so a real lookup (manifest, referrers, signature; no blob),
#     sent one after another by benches/admission.py on one connection.
#     The model is copied under COLD repository names by cross-repository
#     blob mounts (no data moved), so each reference is new to the cache and
#     the registry serves the same 2 GiB manifest and signature each time;
#   - the first review of a freshly started webhook, RESTARTS times: the
#     cold lookup plus a new registry connection.
# Then peak RSS (VmHWM) of the webhook under all that, the worst latency
# seen, and the registry's access log checked for any model layer fetched.
#
#   benches/admission.sh [REQUESTS] [CONCURRENCY] [COLD] [RESTARTS]
#     (default 20000, 32, 200, 10)
#
# Needs ab (apache2-utils), docker-registry, curl, python3. Data under
# $BENCH_DIR (default /tmp/modelgate-bench).
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
requests=${1:-20000}
concurrency=${2:-32}
cold=${3:-200}
restarts=${4:-10}
data=${BENCH_DIR:-/tmp/modelgate-bench}
for tool in ab docker-registry curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/test.sh first" >&2; exit 2; }
done
# The build yields to anything measured on a shared machine.
nice -n 19 cargo build --release --locked --quiet
bin=$PWD/target/release/modelgate
client=$PWD/benches/admission.py
key=$PWD/fixtures/keys/test-signer.key.pem
pub=$PWD/fixtures/keys/test-signer.pub.pem

model=$data/pull-4x512MiB
if [[ ! -f $model/.done ]]; then
  rm -rf "$model" && mkdir -p "$model"
  for i in 0 1 2 3; do head -c $((512 << 20)) /dev/urandom >"$model/model-0000$i-of-00004.safetensors"; done
  touch "$model/.done"
fi

work=$(mktemp -d "$data/admission-XXXX")
pid= registry=
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=
}
trap 'stop; [ -n "$registry" ] && kill "$registry" 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cd "$work"

host=127.0.0.1:$(free_port)
cat >config.yml <<EOF
version: 0.1
log: {level: info, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: $host}
EOF
docker-registry serve config.yml >registry.log 2>&1 &
registry=$!
for _ in $(seq 100); do curl -sf "http://$host/v2/" >/dev/null && break; sleep 0.05; done
mkdir push && cp -al "$model"/*.safetensors push/
digest=$("$bin" -q push push "oci://$host/bench/model:v1" --key "$key" --insecure-registry "$host")
python3 "$client" copies "$host" bench/model "$cold"
references=()
for i in $(seq 0 $((cold - 1))); do references+=("oci://$host/bench/model-$i@$digest"); done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.crt \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 1 2>/dev/null
cat >policy.yaml <<POLICY
apiVersion: modelgate.dev/v1alpha1
kind: ModelPolicy
metadata: {name: bench}
spec:
  models:
    - name: bench
      match: {repositories: ["$host/bench/*"]}
      authorities: [{name: signer, key: {path: $pub}}]
POLICY
gate="registry.example/modelgate@sha256:$(printf 'c%.0s' $(seq 64))"
port=$(free_port)
url=https://127.0.0.1:$port
start() {
  "$bin" webhook --listen "127.0.0.1:$port" --tls-cert-file tls.crt --tls-private-key-file tls.key \
    --policy policy.yaml --gate-image "$gate" --insecure-registry "$host" -q &
  pid=$!
  for _ in $(seq 400); do curl -sk "$url/readyz" >/dev/null && return; sleep 0.01; done
  echo "the webhook did not start" >&2; exit 1
}
start
python3 "$client" bodies "$url" "oci://$host/bench/model@$digest" .

printf '| review | reviews | at once | reviews/s | p50 (ms) | p99 (ms) | worst (ms) | failed |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
# Each at 4 reviews at once (latency, near the rate the targets name) and at
# CONCURRENCY (throughput: p99 there is mostly queueing on two cores).
for run in "mutate 4" "validate 4" "mutate $concurrency" "validate $concurrency"; do
  read -r endpoint at_once <<<"$run"
  out=$(ab -q -k -n "$requests" -c "$at_once" -T application/json -p "$endpoint.json" \
    "$url/$endpoint" 2>&1)
  rps=$(awk '/^Requests per second/ {print $4}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  worst=$(awk '$1 == "100%" {print $2}' <<<"$out")
  failed=$(awk '/^Failed requests/ {print $3}' <<<"$out")
  name=$([ "$endpoint" = mutate ] && echo "/mutate" || echo "/validate, cached verdict")
  printf '| %s | %d | %d | %s | %s | %s | %s | %s |\n' \
    "$name" "$requests" "$at_once" "$rps" "$p50" "$p99" "$worst" "$failed"
done
# The cached verdict was a verdict: allowed, and looked up once.
curl -sk -H 'Content-Type: application/json' --data-binary @validate.json "$url/validate" |
  grep -q '"allowed":true' || { echo "the cached validation was not allowed" >&2; exit 1; }

# percentiles FILE: "n p50 p99 worst mean" of the milliseconds in FILE.
percentiles() {
  sort -n "$1" | awk '{v[NR]=$1; s+=$1} END {
    i50=int(NR*0.50+0.5); i99=int(NR*0.99+0.5); if(i50<1)i50=1; if(i99<1)i99=1;
    printf "%d %.1f %.1f %.1f %.2f\n", NR, v[i50], v[i99], v[NR], s/NR}'
}
t0=$(date +%s.%N)
python3 "$client" cold "$url" . "${references[@]}" >cold.ms
t1=$(date +%s.%N)
read -r n p50 p99 worst mean < <(percentiles cold.ms)
printf '| /validate, cold lookup (new reference each) | %d | 1 | %.0f | %s | %s | %s | 0 |\n' \
  "$n" "$(echo "$n / ($t1 - $t0)" | bc -l)" "$p50" "$p99" "$worst"
lookups=$(curl -sk "$url/metrics" | awk '/^modelgate_admission_registry_lookups_total/ {print $2}')
hits=$(curl -sk "$url/metrics" | awk '/^modelgate_admission_cache_hits_total/ {print $2}')
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
stop

: >restart.ms
for i in $(seq 0 $((restarts - 1))); do
  start
  python3 "$client" cold "$url" . "oci://$host/bench/model-$i@$digest" >>restart.ms
  stop
done
read -r n p50 p99 worst mean < <(percentiles restart.ms)
printf '| /validate, first review after a restart | %d | 1 | - | %s | %s | %s | 0 |\n' "$n" "$p50" "$p99" "$worst"

printf '\nregistry lookups %s, cache hits %s; RSS after load %.1f MB, peak RSS (VmHWM) %.1f MB\n' \
  "$lookups" "$hits" "$(echo "$rss / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)"
layers=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$host/v2/bench/model/manifests/$digest" |
  python3 -c 'import json,sys; [print(l["digest"]) for l in json.load(sys.stdin)["layers"]]')
fetched=0
for layer in $layers; do
  fetched=$((fetched + $(grep -c "GET /v2/bench/model[-0-9]*/blobs/$layer" registry.log || true)))
done
printf 'model layers (%s x 512 MiB) fetched by the webhook: %d\n' "$(wc -w <<<"$layers")" "$fetched"
