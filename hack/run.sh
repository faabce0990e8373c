#!/usr/bin/env bash
# make run: with no KUBECONFIG, bring up the local control plane (unless it is already up), then
# run the operator in the foreground. It installs the CRDs, the identity guard and webhook
# configurations pointing at this process (https://127.0.0.1:9443 unless WEBHOOK_URL says
# otherwise) and serves the policies in policies/. Ctrl-C stops the operator, never the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KUBECONFIG:-}" ]; then
  node dist/test/harness/cluster-cli.js up
  export KUBECONFIG=$PWD/.local/kubeconfig
fi
args=(--kubeconfig "$KUBECONFIG" --install --policy-dir policies)
[ -n "${WEBHOOK_URL:-}" ] && args+=(--webhook-url "$WEBHOOK_URL")
# The local API server presents this CA's client certificate to webhooks: answer only it.
client_ca="$(dirname "$KUBECONFIG")/pki/webhook-client-ca.crt"
[ -z "${WEBHOOK_CLIENT_CA:-}" ] && [ -f "$client_ca" ] && args+=(--webhook-client-ca "$client_ca")
# The local API server asks taskgrant about every request of a task identity, through a relay
# that forwards to whatever address <cluster>/authz-target names: this process, on port 9444.
authz_tls="$(dirname "$KUBECONFIG")/pki/authz-tls"
if [ -d "$authz_tls" ] && { [ -n "${WEBHOOK_CLIENT_CA:-}" ] || [ -f "$client_ca" ]; }; then
  args+=(--authorizer --authz-tls-dir "$authz_tls" --authz-port "${AUTHZ_PORT:-9444}")
  printf '127.0.0.1:%s' "${AUTHZ_PORT:-9444}" > "$(dirname "$KUBECONFIG")/authz-target"
fi
# The same memory settings as the image (see Dockerfile).
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
exec node --max-semi-space-size=4 --wasm-num-compilation-tasks=0 --optimize-for-size dist/src/main.js "${args[@]}" "$@"
