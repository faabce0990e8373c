// Server-side apply of YAML manifests (CRDs, webhook configurations, the identity guard), used
// by `make run` and the test harness. Apply is idempotent, so start-up can always run it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeConfig } from './client.js';
import { ResourcePaths, rest, statusMessage, type KubernetesObject } from './rest.js';

export const FIELD_MANAGER = 'taskgrant';

export function readManifestDir(dir: string): KubernetesObject[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .flatMap((f) => parseManifests(readFileSync(join(dir, f), 'utf8')));
}

export function parseManifests(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => o !== null && typeof o === 'object' && typeof o.kind === 'string');
}

/** Server-side apply, as raw JSON (see rest.ts for why not the typed client). */
export async function applyManifests(kc: KubeConfig, objects: KubernetesObject[]): Promise<void> {
  const paths = new ResourcePaths(kc);
  for (const object of objects) {
    const path = `${await paths.pathOf(object)}?fieldManager=${FIELD_MANAGER}&force=true`;
    const res = await rest(kc, 'PATCH', path, object, 'application/apply-patch+yaml' /* server-side apply (JSON is valid YAML) */);
    if (res.status >= 300) throw new Error(`applying ${object.kind} ${object.metadata?.name ?? ''}: ${res.status} ${statusMessage(res.body)}`);
  }
}

/** Resolves once every named CRD reports Established (their REST endpoints are served). */
export async function waitForCrdsEstablished(kc: KubeConfig, names: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const name of names) {
    for (;;) {
      const res = await rest(kc, 'GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${encodeURIComponent(name)}`);
      if (res.status !== 200) throw new Error(`reading CRD ${name}: ${res.status} ${statusMessage(res.body)}`);
      const crd = JSON.parse(res.body) as { status?: { conditions?: Array<{ type: string; status: string }> } };
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function installCrds(kc: KubeConfig, crdDir: string): Promise<void> {
  const crds = readManifestDir(crdDir).filter((o) => o.kind === 'CustomResourceDefinition');
  await applyManifests(kc, crds);
  await waitForCrdsEstablished(kc, crds.map((c) => c.metadata?.name ?? ''));
}

export async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  await applyManifests(kc, [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }]);
}

/** The ConfigMap the status guard reads the operator's username from (crds/taskgrant.io_status-guard.yaml). */
const STATUS_WRITER_CONFIGMAP = 'taskgrant-status-writer';

/** Who the API server says this client is (SelfSubjectReview). */
async function ownUsername(kc: KubeConfig): Promise<string> {
  const res = await rest(kc, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
  if (res.status >= 300) throw new Error(`asking who the operator is (SelfSubjectReview): ${res.status} ${statusMessage(res.body)}`);
  const username = (JSON.parse(res.body) as { status?: { userInfo?: { username?: string } } }).status?.userInfo?.username;
  if (!username) throw new Error('SelfSubjectReview named no username');
  return username;
}

/**
 * Install mode (`make run`): the admission policies that ship beside the CRDs (identity, token and
 * status guards), their parameters pointed at the operator's namespace, and the status guard's
 * parameter naming this operator.
 */
export async function installGuards(kc: KubeConfig, crdDir: string, operatorNamespace: string): Promise<void> {
  const objects = readManifestDir(crdDir)
    .filter((o) => o.kind !== 'CustomResourceDefinition')
    .map((o) => {
      const spec = (o as { spec?: { paramRef?: Record<string, unknown> } }).spec;
      return o.kind === 'ValidatingAdmissionPolicyBinding' && spec?.paramRef ? { ...o, spec: { ...spec, paramRef: { ...spec.paramRef, namespace: operatorNamespace } } } : o;
    });
  const writer = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: STATUS_WRITER_CONFIGMAP, namespace: operatorNamespace }, data: { operator: await ownUsername(kc) } };
  await applyManifests(kc, [writer, ...objects]);
}

/** Task pod admission inside the API server (admission mode policy), beside the CRDs. */
export const POD_POLICY_DIR = 'policy-mode';

/** Whether the API server serves MutatingAdmissionPolicy (admissionregistration.k8s.io/v1; GA in Kubernetes 1.36). */
export async function servesMutatingAdmissionPolicies(kc: KubeConfig): Promise<boolean> {
  const res = await rest(kc, 'GET', '/apis/admissionregistration.k8s.io/v1');
  if (res.status === 404) return false;
  if (res.status !== 200) throw new Error(`discovering admissionregistration.k8s.io/v1: ${res.status} ${statusMessage(res.body)}`);
  const list = JSON.parse(res.body) as { resources?: Array<{ name: string }> };
  return (list.resources ?? []).some((r) => r.name === 'mutatingadmissionpolicies');
}

/**
 * Install mode, admission mode policy: the MutatingAdmissionPolicy and ValidatingAdmissionPolicies
 * that admit task pods with no webhook call (crds/policy-mode/). In webhook mode they are removed,
 * so a pod is never mutated twice by two paths after a change of mode.
 */
export async function installPodPolicies(kc: KubeConfig, crdDir: string, install: boolean): Promise<void> {
  const objects = readManifestDir(join(crdDir, POD_POLICY_DIR));
  if (install) return applyManifests(kc, objects);
  const paths = new ResourcePaths(kc);
  for (const object of objects) {
    const res = await rest(kc, 'DELETE', await paths.pathOf(object));
    if (res.status !== 200 && res.status !== 202 && res.status !== 404) throw new Error(`removing ${object.kind} ${object.metadata?.name ?? ''}: ${res.status} ${statusMessage(res.body)}`);
  }
}
