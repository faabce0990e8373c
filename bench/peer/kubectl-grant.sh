#!/usr/bin/env bash
# The peer of one taskgrant grant and its revocation: what a platform team's script does with
# kubectl alone, for comparison in `make bench` (bench/parts/peer.ts). No policy, no audit, no
# expiry, no pod binding: only the ServiceAccount, Role and RoleBinding a task would get.
#
#   kubectl-grant.sh grant  NAMESPACE NAME < manifest   (the three objects, one kubectl call)
#   kubectl-grant.sh revoke NAMESPACE NAME              (binding first, as taskgrant does)
#
# KUBECTL names the kubectl binary (the one hack/toolchain.sh builds); KUBECONFIG the cluster.
set -euo pipefail
action=$1 namespace=$2 name=$3
kubectl=${KUBECTL:?KUBECTL must name the kubectl binary}
case $action in
  grant)
    "$kubectl" --namespace "$namespace" create -f - >/dev/null
    ;;
  revoke)
    "$kubectl" --namespace "$namespace" delete "rolebinding/$name" "role/$name" "serviceaccount/$name" --wait=false >/dev/null
    ;;
  *)
    echo "usage: $0 grant|revoke NAMESPACE NAME" >&2
    exit 2
    ;;
esac
