#!/usr/bin/env bash
# The webhook's serving certificate for clusters without cert-manager: a CA
# and a leaf for the webhook's Service names (EC P-256, 90 days), made with
# openssl in OUT_DIR (ca.crt, tls.crt, tls.key; the CA's key is deleted once
# the leaf is signed, so nothing else can be issued under it).
#
#   scripts/admission-certs.sh OUT_DIR            make the files only
#   scripts/admission-certs.sh OUT_DIR --apply    and, with kubectl, store
#       them as the Secret modelgate-webhook-tls in modelgate-system and put
#       the CA into both webhook configurations' caBundle
#
# Rerun before the 90 days end (the webhook re-reads the Secret in place).
# Apply deploy/admission without webhook/certificate.yaml on such a cluster.
set -euo pipefail
out=${1:-}
if [[ -z $out || $out == -* ]]; then
  echo "usage: $0 OUT_DIR [--apply]" >&2
  exit 2
fi
apply=${2:-}
namespace=modelgate-system
service=modelgate-webhook
mkdir -p "$out"
umask 077
openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key" 2>/dev/null
openssl req -x509 -new -key "$out/ca.key" -sha256 -days 90 -subj "/CN=modelgate webhook CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign" \
  -out "$out/ca.crt"
openssl ecparam -name prime256v1 -genkey -noout -out "$out/tls.key" 2>/dev/null
openssl req -new -key "$out/tls.key" -subj "/CN=$service.$namespace.svc" -out "$out/tls.csr"
cat >"$out/ext.cnf" <<CNF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local
CNF
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days 90 -sha256 -extfile "$out/ext.cnf" -out "$out/tls.crt" 2>/dev/null
rm -f "$out/ca.key" "$out/tls.csr" "$out/ext.cnf" "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/tls.crt"
echo "wrote $out/ca.crt, $out/tls.crt, $out/tls.key"
if [[ $apply == --apply ]]; then
  kubectl -n "$namespace" create secret tls modelgate-webhook-tls \
    --cert "$out/tls.crt" --key "$out/tls.key" --dry-run=client -o yaml | kubectl apply -f -
  bundle=$(base64 -w0 <"$out/ca.crt")
  for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
    kubectl patch "$kind" modelgate --type=json \
      -p "[{\"op\": \"replace\", \"path\": \"/webhooks/0/clientConfig/caBundle\", \"value\": \"$bundle\"}]"
  done
fi
