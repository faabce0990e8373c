// The CRDs as the API server enforces them: schema, defaults, CEL messages that name the field,
// immutability and printer columns.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { request, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { installCrds } from '../src/kube/manifests.js';
import { repoRoot } from './harness/paths.js';
import { adminConfig, createNamespace, refusalMessage, uniqueName } from './harness/kube.js';

type Manifest = Record<string, unknown> & { metadata: { name: string; namespace: string }; spec: Record<string, unknown> };

const group = 'taskgrant.io';
const version = 'v1alpha1';
let kc: k8s.KubeConfig;
let custom: k8s.CustomObjectsApi;
let ns: string;

function agentTask(name: string, spec: Record<string, unknown> = {}): Manifest {
  return {
    apiVersion: `${group}/${version}`,
    kind: 'AgentTask',
    metadata: { name, namespace: ns },
    spec: {
      agent: 'log-summarizer',
      intent: {
        objective: 'Summarize error logs for INC-1234',
        tools: ['kubectl-logs'],
        permissions: [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] }],
      },
      ...spec,
    },
  };
}

const intent = (over: Record<string, unknown>) => ({
  intent: { objective: 'Summarize error logs', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }], ...over },
});
const rule = (over: Record<string, unknown>) => intent({ permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'], ...over }] });

function createTask(body: Manifest) {
  return custom.createNamespacedCustomObject({ group, version, namespace: body.metadata.namespace, plural: 'agenttasks', body });
}

beforeAll(async () => {
  kc = adminConfig();
  await installCrds(kc, join(repoRoot(), 'crds'));
  custom = kc.makeApiClient(k8s.CustomObjectsApi);
  ns = await createNamespace(kc, 'crds');
});

describe('AgentTask CRD', () => {
  it('accepts a valid task and fills the defaults', async () => {
    const created = (await createTask(agentTask(uniqueName('ok')))) as Manifest;
    const spec = created.spec as { ttl: string; maxPods: number; intent: { sensitivity: string } };
    expect(spec.ttl).toBe('15m');
    expect(spec.maxPods).toBe(1);
    expect(spec.intent.sensitivity).toBe('internal');
  });

  const badTasks: Array<[string, (name: string) => Manifest, RegExp]> = [
    ['no agent', (n) => { const t = agentTask(n); delete t.spec.agent; return t; }, /spec\.agent: Required/],
    ['agent not a DNS label', (n) => agentTask(n, { agent: 'Log_Bot' }), /spec\.agent/],
    ['agent too long', (n) => agentTask(n, { agent: 'a'.repeat(64) }), /spec\.agent/],
    ['agent of the wrong type', (n) => agentTask(n, { agent: 42 }), /spec\.agent/],
    ['no intent', (n) => { const t = agentTask(n); delete t.spec.intent; return t; }, /spec\.intent: Required/],
    ['no objective', (n) => agentTask(n, { intent: { permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] } }), /spec\.intent\.objective: Required/],
    ['empty objective', (n) => agentTask(n, intent({ objective: '' })), /spec\.intent\.objective/],
    ['objective over 1024 characters', (n) => agentTask(n, intent({ objective: 'x'.repeat(1025) })), /spec\.intent\.objective/],
    ['33 tools', (n) => agentTask(n, intent({ tools: Array.from({ length: 33 }, (_, i) => `t${i}`) })), /spec\.intent\.tools/],
    ['unknown sensitivity', (n) => agentTask(n, intent({ sensitivity: 'top-secret' })), /spec\.intent\.sensitivity/],
    ['no permissions', (n) => agentTask(n, intent({ permissions: [] })), /spec\.intent\.permissions/],
    ['33 permission rules', (n) => agentTask(n, intent({ permissions: Array.from({ length: 33 }, () => ({ apiGroups: [''], resources: ['pods'], verbs: ['get'] })) })), /spec\.intent\.permissions/],
    ['wildcard verb', (n) => agentTask(n, rule({ verbs: ['*'] })), /verbs must not contain '\*'/],
    ['wildcard resource', (n) => agentTask(n, rule({ resources: ['*'] })), /resources must not contain '\*'/],
    ['wildcard subresource', (n) => agentTask(n, rule({ resources: ['pods/*'] })), /resources must not contain '\*'/],
    ['wildcard apiGroup', (n) => agentTask(n, rule({ apiGroups: ['*'] })), /apiGroups must not contain '\*'/],
    ['wildcard resourceName', (n) => agentTask(n, rule({ resourceNames: ['*'] })), /resourceNames must not contain '\*'/],
    ['empty verbs', (n) => agentTask(n, rule({ verbs: [] })), /spec\.intent\.permissions\[0\]\.verbs/],
    ['empty resources', (n) => agentTask(n, rule({ resources: [] })), /spec\.intent\.permissions\[0\]\.resources/],
    ['verbs not a list', (n) => agentTask(n, rule({ verbs: 'get' })), /spec\.intent\.permissions\[0\]\.verbs/],
    ['bad target namespace', (n) => agentTask(n, rule({ namespace: 'Team_A' })), /spec\.intent\.permissions\[0\]\.namespace/],
    ['ttl below 10s', (n) => agentTask(n, { ttl: '5s' }), /spec\.ttl must be a Go duration between 10s and 24h/],
    ['ttl above 24h', (n) => agentTask(n, { ttl: '25h' }), /spec\.ttl must be a Go duration between 10s and 24h/],
    ['ttl not a duration', (n) => agentTask(n, { ttl: 'forever' }), /spec\.ttl/],
    ['negative ttl', (n) => agentTask(n, { ttl: '-5m' }), /spec\.ttl/],
    ['token lifetime 3607', (n) => agentTask(n, { token: { expirationSeconds: 3607 } }), /spec\.token\.expirationSeconds must not be 3607/],
    ['token lifetime under 600', (n) => agentTask(n, { token: { expirationSeconds: 599 } }), /spec\.token\.expirationSeconds/],
    ['maxPods 0', (n) => agentTask(n, { maxPods: 0 }), /spec\.maxPods/],
    ['parentTask not a name', (n) => agentTask(n, { parentTask: 'Not A Task' }), /spec\.parentTask/],
    ['name longer than 63', () => agentTask(`t${'x'.repeat(63)}`), /metadata\.name must be at most 63 characters/],
    // Audit finding 11: escapes that would rewrite what `explain` shows an approver.
    ['a terminal escape in a resource', (n) => agentTask(n, rule({ resources: ['pods\u001b[2K\rsecrets'] })), /spec\.intent\.permissions\[\]\.resources\[\] must not contain control/],
    ['a bidi override in an apiGroup', (n) => agentTask(n, rule({ apiGroups: ['\u202eppa'] })), /spec\.intent\.permissions\[\]\.apiGroups\[\] must not contain control/],
    ['a control character in a verb', (n) => agentTask(n, rule({ verbs: ['get\u0007'] })), /spec\.intent\.permissions\[\]\.verbs\[\] must not contain control/],
    ['a zero-width space in a resourceName', (n) => agentTask(n, rule({ resourceNames: ['db\u200b'] })), /spec\.intent\.permissions\[\]\.resourceNames\[\] must not contain control/],
    ['a terminal escape in a tool', (n) => agentTask(n, intent({ tools: ['kubectl\u001b]0;pwned\u0007'] })), /spec\.intent\.tools\[\] must not contain control/],
    ['a control character in an audience', (n) => agentTask(n, { token: { audiences: ['vault\u0000'] } }), /spec\.token\.audiences\[\] must not contain control/],
  ];

  it.each(badTasks)('refuses %s with a message naming the field', async (_title, make, expected) => {
    const message = await refusalMessage(() => createTask(make(uniqueName('bad'))));
    expect(message).toMatch(expected);
  });

  it('refuses an edit of spec but accepts metadata edits', async () => {
    const name = uniqueName('immutable');
    await createTask(agentTask(name));
    const patch = (body: object) =>
      custom.patchNamespacedCustomObject({ group, version, namespace: ns, plural: 'agenttasks', name, body }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    expect(await refusalMessage(() => patch({ spec: { ttl: '20m' } }))).toMatch(/spec is immutable/);
    await patch({ metadata: { annotations: { 'taskgrant.io/revoke': 'no longer needed' } } });
  });

  it('serves the printer columns kubectl shows', async () => {
    const name = uniqueName('columns');
    await createTask(agentTask(name));
    const table = await getTable(`/apis/${group}/${version}/namespaces/${ns}/agenttasks`);
    expect(table.columnDefinitions.map((c) => c.name.toUpperCase())).toEqual(['NAME', 'AGENT', 'PHASE', 'SERVICEACCOUNT', 'EXPIRES', 'REASON', 'REQUESTS', 'AGE']);
    // REQUESTS (status.usage.requests) is a wide column: kubectl shows it with -o wide.
    expect(table.columnDefinitions.find((c) => c.name === 'Requests')?.priority).toBe(1);
    expect(table.rows.find((r) => r.cells[0] === name)?.cells[1]).toBe('log-summarizer');
  });

  it('is reachable by its short name and category', async () => {
    const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
    const crd = await api.readCustomResourceDefinition({ name: 'agenttasks.taskgrant.io' });
    expect(crd.spec.names.shortNames).toEqual(['atask']);
    expect(crd.spec.names.categories).toContain('taskgrant');
    expect(crd.spec.versions[0]?.subresources?.status).toBeDefined();
  });
});

describe('TaskApproval CRD', () => {
  const approval = (spec: Record<string, unknown>) => ({
    apiVersion: `${group}/${version}`,
    kind: 'TaskApproval',
    metadata: { name: uniqueName('approval'), namespace: ns },
    spec: { task: 'summarize-errors', taskUID: '0b6f3c9e-0000-4000-8000-000000000001', decision: 'Approve', reason: 'on-call approved', ...spec },
  });
  const create = (body: ReturnType<typeof approval>) => custom.createNamespacedCustomObject({ group, version, namespace: ns, plural: 'taskapprovals', body });

  it('accepts a valid approval', async () => {
    await create(approval({}));
  });

  it.each([
    ['an unknown decision', { decision: 'Maybe' }, /spec\.decision/],
    ['no task uid', { taskUID: undefined }, /spec\.taskUID: Required/],
    ['a reason over 1024 characters', { reason: 'r'.repeat(1025) }, /spec\.reason/],
  ])('refuses %s', async (_title, spec, expected) => {
    expect(await refusalMessage(() => create(approval(spec)))).toMatch(expected);
  });
});

interface Table {
  columnDefinitions: Array<{ name: string; priority?: number }>;
  rows: Array<{ cells: unknown[] }>;
}

async function getTable(path: string): Promise<Table> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no cluster');
  const options: RequestOptions = { headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } };
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = request(`${cluster.server}${path}`, options, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as Table) : reject(new Error(`${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}
