#!/usr/bin/env bash
# Benchmarks pushing a 2 GiB model in 4 files to a local registry (Debian's
# docker-registry on 127.0.0.1, started here), side by side in one run, best
# of RUNS, hot page cache, every run of every tool into a fresh registry (new
# storage folder, new process) so that no blob is skipped as already there:
#   - curl: every blob sent at once as one monolithic upload (POST, then PUT
#     streaming the file as body with -T, the digest known beforehand), then the
#     manifest: the wire's limit;
#   - modelgate push (hash, sign, 4 blobs + config + manifest + signature
#     referrer);
#   - skopeo copy oci:LAYOUT docker://... of an OCI layout of the same 4
#     files (made beforehand, outside the timing);
#   - oras push (oras-py, from the test venv) of the 4 files.
#
#   benches/push.sh [RUNS]     (default 3)
#
# Needs the test venv (scripts/test.sh makes it), docker-registry, skopeo
# and GNU time. Data under $BENCH_DIR (default /tmp/modelgate-bench; the
# model is the one benches/pull.sh uses).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
data=${BENCH_DIR:-/tmp/modelgate-bench}
venv=${MODELGATE_TEST_VENV:-$PWD/.venv}
for tool in docker-registry skopeo /usr/bin/time curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/test.sh first" >&2; exit 2; }
done
"$venv/bin/python" -c 'import oras.client' 2>/dev/null || { echo "no oras-py in $venv: run scripts/test.sh first" >&2; exit 2; }
cargo build --release --locked -q
bin=$PWD/target/release/modelgate
key=fixtures/keys/test-signer.key.pem

model=$data/pull-4x512MiB
if [[ ! -f $model/.done ]]; then
  rm -rf "$model" && mkdir -p "$model"
  for i in 0 1 2 3; do head -c $((512 << 20)) /dev/urandom >"$model/model-0000$i-of-00004.safetensors"; done
  touch "$model/.done"
fi
bytes=$((4 * (512 << 20)))

work=$(mktemp -d "$data/push-XXXX")
registry=""
stop_registry() {
  if [[ -n $registry ]]; then kill "$registry" 2>/dev/null || true; wait "$registry" 2>/dev/null || true; fi
  registry=""
  rm -rf "$work/registry"
}
trap 'stop_registry; rm -rf "$work"' EXIT

# The pushed folder: the 4 files alone (hard links; no .done).
mkdir -p "$work/push"
cp -al "$model"/*.safetensors "$work/push/"
files=(model-00000-of-00004.safetensors model-00001-of-00004.safetensors model-00002-of-00004.safetensors model-00003-of-00004.safetensors)

# An OCI layout of the same 4 files for skopeo (blobs hard-linked), its
# manifest reused by curl. Prints "DIGEST PATH" for the 4 layers and the
# config, in that order.
layout=$work/layout
mapfile -t blobs < <(python3 - "$work/push" "$layout" "${files[@]}" <<'EOF'
import hashlib, json, os, sys
from concurrent.futures import ThreadPoolExecutor
src, layout, names = sys.argv[1], sys.argv[2], sys.argv[3:]
shadir = os.path.join(layout, "blobs", "sha256")
os.makedirs(shadir)
def sha(name):
    h = hashlib.sha256()
    with open(os.path.join(src, name), "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()
with ThreadPoolExecutor(4) as pool:
    hexes = list(pool.map(sha, names))
def put(data):
    hx = hashlib.sha256(data).hexdigest()
    with open(os.path.join(shadir, hx), "wb") as f:
        f.write(data)
    return hx
layers = []
for name, hx in zip(names, hexes):
    path = os.path.join(src, name)
    os.link(path, os.path.join(shadir, hx))
    layers.append({
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": "sha256:" + hx,
        "size": os.path.getsize(path),
        "annotations": {"org.opencontainers.image.title": name},
    })
config = put(b"{}")
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + config, "size": 2},
    "layers": layers,
}).encode()
mhex = put(manifest)
with open(os.path.join(layout, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + mhex,
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }]}, f)
for name, hx in zip(names, hexes):
    print("sha256:" + hx, os.path.join(src, name))
print("sha256:" + config, os.path.join(shadir, config))
print("sha256:" + mhex, os.path.join(shadir, mhex))
EOF
)
((${#blobs[@]} == 6)) || { echo "could not make the OCI layout" >&2; exit 1; }
manifest=${blobs[5]#* }
unset 'blobs[5]'
layer_digests=$(for entry in "${blobs[@]:0:4}"; do echo "${entry%% *}"; done | sort | tr '\n' ' ')

# A fresh registry: new storage folder, new process, new port.
start_registry() {
  stop_registry
  local port
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
  for _ in $(seq 100); do curl -sf "http://$host/v2/" >/dev/null && return; sleep 0.05; done
  echo "docker-registry did not start:" >&2; cat "$work/registry.log" >&2; exit 1
}
# The push landed: bench/model:v1 is there with the 4 layers.
check_push() {
  local got
  got=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$host/v2/bench/model/manifests/v1" |
    python3 -c 'import json,sys; print(" ".join(sorted(l["digest"] for l in json.load(sys.stdin)["layers"])) + " ")') ||
    { echo "$1: no manifest bench/model:v1 after the push" >&2; exit 1; }
  [[ $got == "$layer_digests" ]] || { echo "$1: pushed layers $got, expected $layer_digests" >&2; exit 1; }
}

# Commands are written with @HOST@ for the registry, filled in per run.
curl_cmd="pids=;"
for entry in "${blobs[@]}"; do
  d=${entry%% *}; path=${entry#* }
  curl_cmd+=" ( loc=\$(curl -sf -X POST -D - -o /dev/null http://@HOST@/v2/bench/model/blobs/uploads/ | tr -d '\r' | sed -n 's/^[Ll]ocation: //p');"
  curl_cmd+=" case \$loc in /*) loc=http://@HOST@\$loc;; esac; case \$loc in *\\?*) sep='&';; *) sep='?';; esac;"
  curl_cmd+=" curl -sf -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T $path \"\$loc\${sep}digest=$d\" -o /dev/null ) & pids+=\" \$!\";"
done
curl_cmd+=" for p in \$pids; do wait \$p || exit 1; done;"
curl_cmd+=" curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @$manifest http://@HOST@/v2/bench/model/manifests/v1 -o /dev/null"
push_cmd="$bin -q push $work/push oci://@HOST@/bench/model:v1 --key $key --insecure-registry @HOST@"
# --preserve-digests: the layers as they are (by default skopeo gzips
# uncompressed layers on the way to a registry).
skopeo_cmd="skopeo copy -q --preserve-digests oci:$layout docker://@HOST@/bench/model:v1 --dest-tls-verify=false"
oras_py='import os, oras.client, sys
os.chdir(sys.argv[1])
c = oras.client.OrasClient(hostname=sys.argv[2], insecure=True)
r = c.push(target=sys.argv[2] + "/bench/model:v1", files=sys.argv[3:])
assert r.status_code == 201, r.text'
printf '%s\n' "$oras_py" >"$work/oras_push.py"
oras_cmd="$venv/bin/python $work/oras_push.py $work/push @HOST@ ${files[*]}"

# Each command records its own wall time (nanosecond clock) in $work/elapsed.
wrap() { echo "t0=\$(date +%s.%N); $1; t1=\$(date +%s.%N); echo \"\$t1 - \$t0\" | bc > $work/elapsed"; }
# (Run in this shell, not a subshell, so that a failure stops the registry.)
timeit() { # timeit NAME CMD: sets best_s, best_rss (KB), best of $runs, each into a fresh registry
  local s rss
  best_s="" best_rss=""
  for _ in $(seq "$runs"); do
    start_registry
    sync
    rm -f "$work/time" "$work/elapsed"
    /usr/bin/time -f %M -o "$work/time" bash -c "$(wrap "${2//@HOST@/$host}")" >/dev/null 2>"$work/err" ||
      { echo "$1 failed:" >&2; cat "$work/err" >&2; exit 1; }
    check_push "$1"
    s=$(cat "$work/elapsed")
    rss=$(tail -1 "$work/time")
    if [[ -z $best_s ]] || (($(echo "$s < $best_s" | bc))); then best_s=$s; best_rss=$rss; fi
  done
  stop_registry
}

declare -A wall
echo "| tool | wall (s) | GB/s | peak RSS (MB) |"
echo "|---|---:|---:|---:|"
for row in "curl|curl (4 monolithic uploads at once, digests known)|$curl_cmd" \
  "modelgate|modelgate push (hash, sign, 4 blobs, config, manifest, referrer)|$push_cmd" \
  "skopeo|skopeo copy oci: layout to docker://|$skopeo_cmd" \
  "oras|oras push (oras-py)|$oras_cmd"; do
  id=${row%%|*}; row=${row#*|}
  name=${row%%|*}; cmd=${row#*|}
  timeit "$name" "$cmd"
  wall[$id]=$best_s
  printf '| %s | %.3f | %.2f | %.1f |\n' "$name" "$best_s" "$(echo "$bytes / $best_s / 1000000000" | bc -l)" "$(echo "$best_rss / 1024" | bc -l)"
done
printf '\nmodelgate/curl: %.2fx\n' "$(echo "${wall[modelgate]} / ${wall[curl]}" | bc -l)"
echo "targets: modelgate within 1.5x curl, faster than skopeo and oras; RSS under 32 MB"
