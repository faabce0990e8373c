#!/usr/bin/env bash
# Refreshes the chart's copies of files whose source of truth lives elsewhere (Helm reads only
# files inside the chart): the CRDs, the identity, token and status guards and the default policies.
# src/packaging/chart-copies.test.ts fails until this has been run after one of them changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart=$root/charts/taskgrant

rm -f "$chart"/crds/*.yaml
for f in "$root"/crds/*.yaml; do
  # Only CustomResourceDefinitions go to the chart's crds/; the identity guard is a template.
  if grep -q '^kind: CustomResourceDefinition$' "$f" && ! grep -q '^kind: ' <(grep -v '^kind: CustomResourceDefinition$' "$f"); then
    cp "$f" "$chart/crds/"
  fi
done
cp "$root/crds/taskgrant.io_identity-guard.yaml" "$chart/files/identity-guard.yaml"
cp "$root/crds/taskgrant.io_token-guard.yaml" "$chart/files/token-guard.yaml"
cp "$root/crds/taskgrant.io_status-guard.yaml" "$chart/files/status-guard.yaml"
cp "$root/crds/taskgrant.io_risk-guard.yaml" "$chart/files/risk-guard.yaml"
cp "$root/crds/policy-mode/taskgrant.io_task-pods.yaml" "$chart/files/task-pods-policy.yaml"

rm -f "$chart"/files/policies/*
cp "$root"/policies/*.cedar "$root"/policies/*.cedarschema "$chart/files/policies/"
