// Helm, rendered manifests and the API server's opinion of them, for the chart suite.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { PatchStrategy } from '@kubernetes/client-node';
import { parseManifests } from '../../src/kube/manifests.js';
import { ResourcePaths, rest, statusMessage } from '../../src/kube/rest.js';
import { repoRoot } from '../harness/paths.js';

export const chartDir = join(repoRoot(), 'charts', 'taskgrant');

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

function helmBinary(): string {
  const helm = process.env.TASKGRANT_HELM;
  if (!helm || !existsSync(helm)) throw new Error(`helm not found at TASKGRANT_HELM=${helm ?? ''}; run bash hack/toolchain.sh helm (make chart-test does)`);
  return helm;
}

/** Runs helm; resolves with its exit code and output either way. */
export function helm(args: string[]): Promise<HelmResult> {
  return new Promise((resolve) => {
    execFile(helmBinary(), args, { maxBuffer: 32 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs helm and throws with its stderr unless it succeeded. */
export async function helmOk(args: string[]): Promise<string> {
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${result.code}):\n${result.stderr}`);
  return result.stdout;
}

/**
 * The arguments the chart's Deployment passes the operator, for running it as a local process
 * against an installed release: the webhook on loopback, the chart's own policy files.
 */
export function chartOperatorArgs(release: { fullname: string; webhookPort: number; leaseName: string }): string[] {
  return [
    `--policy-dir=${join(chartDir, 'files', 'policies')}`,
    `--webhook-port=${release.webhookPort}`,
    `--webhook-url=https://127.0.0.1:${release.webhookPort}`,
    `--webhook-config-name=${release.fullname}`,
    `--webhook-service=${release.fullname}-webhook`,
    '--cert-mode=self-managed',
    '--leader-elect',
    `--lease-name=${release.leaseName}`,
  ];
}

let valuesDir: string | undefined;
/** A values file for `-f` (JSON is YAML). */
export function valuesFile(values: Record<string, unknown>): string {
  valuesDir ??= mkdtempSync(join(tmpdir(), 'taskgrant-chart-values-'));
  const path = join(valuesDir, `values-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(values));
  return path;
}

export type Manifest = k8s.KubernetesObject & { spec?: Record<string, unknown>; [k: string]: unknown };

/** `helm template --include-crds` of the chart, parsed. */
export async function render(release: string, namespace: string, values: Record<string, unknown> = {}): Promise<Manifest[]> {
  const out = await helmOk(['template', release, chartDir, '--namespace', namespace, '--include-crds', '-f', valuesFile(values)]);
  return parseManifests(out) as Manifest[];
}

export function find(objects: Manifest[], kind: string, name?: string): Manifest {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (!found) throw new Error(`rendered output has no ${kind}${name ? ` ${name}` : ''}`);
  return found;
}

/**
 * Server-side apply with dryRun=All: the API server validates each object (schema, CEL of a
 * ValidatingAdmissionPolicy, webhook configuration rules, RBAC) and admits it without storing it.
 * Resolves with one message per refused object.
 */
export async function serverDryRun(kc: k8s.KubeConfig, objects: Manifest[]): Promise<string[]> {
  const paths = new ResourcePaths(kc);
  const refused: string[] = [];
  for (const object of objects) {
    const path = `${await paths.pathOf(object)}?fieldManager=taskgrant-chart-test&force=true&dryRun=All`;
    const res = await rest(kc, 'PATCH', path, object, PatchStrategy.ServerSideApply);
    if (res.status >= 300) refused.push(`${object.kind} ${object.metadata?.name ?? ''}: ${res.status} ${statusMessage(res.body)}`);
  }
  return refused;
}
