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
