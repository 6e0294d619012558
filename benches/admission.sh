#!/usr/bin/env bash
# Admission latency and throughput of `modelgate webhook` on this machine,
# with ApacheBench (apache2-utils) over HTTPS with keep-alive: /mutate of a
# pod with the annotation, and /validate of the same pod (a structural
# denial: no registry). A signature check from the cache and a cold
# registry lookup are not measured here yet.
#   benches/admission.sh [REQUESTS] [CONCURRENCY]   (default 20000, 32)
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
requests=${1:-20000}
concurrency=${2:-32}
cargo build --release --quiet
bin=target/release/modelgate
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.crt \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 1 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out signer.key
openssl ec -in signer.key -pubout -out signer.pub 2>/dev/null
cat > policy.yaml <<POLICY
apiVersion: modelgate.dev/v1alpha1
kind: ModelPolicy
metadata: {name: bench}
spec:
  models:
    - name: all
      match: {repositories: ["*/*/*"]}
      authorities: [{name: signer, key: {path: signer.pub}}]
POLICY
model="oci://registry.example/models/llama@sha256:$(printf 'a%.0s' $(seq 64))"
pod='{"metadata":{"name":"llm","namespace":"models","annotations":{"modelgate.dev/source":"'"$model"'"}},"spec":{"containers":[{"name":"server","image":"vllm@sha256:'"$(printf 'b%.0s' $(seq 64))"'"}]}}'
review() { printf '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"0d5c","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"models","operation":"CREATE","userInfo":{"username":"bench"},"object":%s,"dryRun":false}}' "$1"; }
review "$pod" > mutate.json
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$OLDPWD/$bin" webhook --listen "127.0.0.1:$port" --tls-cert-file tls.crt --tls-private-key-file tls.key \
  --policy policy.yaml --gate-image "registry.example/modelgate@sha256:$(printf 'c%.0s' $(seq 64))" -q &
pid=$!
for _ in $(seq 100); do curl -sk "https://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.05; done
# /validate of the same pod: denied on its structure (no gate yet), with
# no registry lookup. (The mutated pod would go on to the signature check,
# and registry.example is not a registry.)
cp mutate.json validate.json
for endpoint in mutate validate; do
  out=$(ab -q -k -n "$requests" -c "$concurrency" -T application/json -p "$endpoint.json" \
    "https://127.0.0.1:$port/$endpoint" 2>&1)
  rps=$(awk '/^Requests per second/ {print $4}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  failed=$(awk '/^Failed requests/ {print $3}' <<<"$out")
  printf '%-9s %d reviews, %d at once: %s reviews/s, p50 %s ms, p99 %s ms, %s failed\n' \
    "/$endpoint" "$requests" "$concurrency" "$rps" "$p50" "$p99" "$failed"
done
printf 'RSS after load: %s kB\n' "$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
