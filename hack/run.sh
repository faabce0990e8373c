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
# The same memory settings as the image (see Dockerfile).
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
exec node --max-semi-space-size=4 --wasm-num-compilation-tasks=0 --optimize-for-size dist/src/main.js "${args[@]}" "$@"
