// Admission through the real API server: it calls taskgrant's webhooks over HTTPS (self-managed
// CA in the caBundle), which mutate task pods, refuse the rest, and stamp who asked.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { eventually, refusalMessage, statusOfCall, tokenConfig, uniqueName } from './harness/kube.js';
import type { TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import type { AgentTask } from '../src/api/index.js';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;

const group = 'taskgrant.io';
const version = 'v1alpha1';

function podBody(name: string, labels: Record<string, string>, spec: Partial<k8s.V1PodSpec> = {}): k8s.V1Pod {
  return {
    metadata: { name, labels },
    spec: {
      initContainers: [{ name: 'init', image: 'registry.invalid/init:1', env: [{ name: 'KEEP', value: 'me' }] }],
      containers: [
        { name: 'agent', image: 'registry.invalid/agent:1', volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] },
        { name: 'sidecar', image: 'registry.invalid/sidecar:1' },
      ],
      volumes: [{ name: 'scratch', emptyDir: {} }],
      ...spec,
    },
  };
}

/** A user of the cluster, as a ServiceAccount token with the given RBAC rules in `ns`. */
async function userWith(name: string, rules: k8s.V1PolicyRule[]): Promise<{ kc: k8s.KubeConfig; username: string }> {
  await tasks.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  await tasks.rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name }, rules } });
  await tasks.rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace: ns }] },
  });
  const token = (await tasks.core.createNamespacedServiceAccountToken({ name, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 600 } } })).status?.token ?? '';
  return { kc: tokenConfig(admin, token), username: `system:serviceaccount:${ns}:${name}` };
}

const canCreate = (resource: string): k8s.V1PolicyRule => ({ apiGroups: [group], resources: [resource], verbs: ['create', 'get', 'list'] });
const canApprove: k8s.V1PolicyRule = { apiGroups: [group], resources: ['agenttasks'], verbs: ['approve'] };

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns] } = await startOperatorSuite(['adm']));
});

afterAll(async () => {
  await operator?.stop();
});

async function granted(name: string, spec: Partial<AgentTask['spec']> = {}): Promise<AgentTask> {
  await tasks.create(ns, name, { intent: intentOf(readPods), ...spec });
  return tasks.waitForPhase(ns, name, 'Granted');
}

describe('pod mutation', () => {
  it('runs a labelled pod as the task identity with a projected, read-only, audience-bound token', async () => {
    const task = await granted(uniqueName('mut'), { token: { audiences: ['tools.example.com'], expirationSeconds: 900 } });
    const pod = await tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name, app: 'agent' }) });
    const spec = pod.spec!;
    expect(spec.serviceAccountName).toBe(task.status?.grant?.serviceAccount);
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.volumes?.some((v) => v.name.startsWith('kube-api-access-'))).toBe(false);
    const tokenVolume = spec.volumes?.find((v) => v.projected?.sources?.some((s) => s.serviceAccountToken));
    expect(tokenVolume?.projected?.sources?.[0]?.serviceAccountToken).toMatchObject({ path: 'token', audience: 'tools.example.com', expirationSeconds: 900 });
    expect(spec.volumes?.map((v) => v.name)).toContain('scratch');
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const mount = c.volumeMounts?.find((m) => m.name === tokenVolume?.name);
      expect(mount).toMatchObject({ mountPath: '/var/run/secrets/taskgrant.io/', readOnly: true });
      expect(c.volumeMounts?.some((m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount')).toBe(false);
      expect(c.env?.find((e) => e.name === 'TASKGRANT_TOKEN_FILE')?.value).toBe('/var/run/secrets/taskgrant.io/token');
    }
    expect(spec.initContainers?.[0]?.env?.find((e) => e.name === 'KEEP')?.value).toBe('me');
    expect(spec.containers[0]?.volumeMounts?.find((m) => m.name === 'scratch')?.mountPath).toBe('/scratch');
    expect(pod.metadata?.annotations?.['taskgrant.io/task-uid']).toBe(task.metadata.uid);
    expect(pod.metadata?.labels?.app).toBe('agent');
    await tasks.waitForPhase(ns, task.metadata.name, 'Active');
  });

  it.each([
    ['a missing task', async () => 'no-such-task', /no-such-task.*(not found|does not exist)/i],
    ['a denied task', async () => {
      const name = uniqueName('den');
      await tasks.create(ns, name, { intent: intentOf({ apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] }) });
      await tasks.waitForPhase(ns, name, 'Denied');
      return name;
    }, /Denied/],
    ['a task awaiting approval', async () => {
      const name = uniqueName('wait');
      await tasks.create(ns, name, { intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) });
      await tasks.waitForPhase(ns, name, 'AwaitingApproval');
      return name;
    }, /AwaitingApproval/],
    ['an expired task', async () => {
      const name = uniqueName('exp');
      await granted(name, { ttl: '10s' });
      await tasks.waitForPhase(ns, name, 'Expired', 20_000);
      return name;
    }, /Expired/],
    ['a revoked task', async () => {
      const name = uniqueName('rev');
      await granted(name);
      await tasks.annotate(ns, name, { 'taskgrant.io/revoke': 'test' });
      await tasks.waitForPhase(ns, name, 'Revoked');
      return name;
    }, /Revoked/],
  ])('refuses a pod for %s', async (_title, taskName, expected) => {
    const name = await taskName();
    const message = await refusalMessage(() => tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('p'), { 'taskgrant.io/task': name }) }));
    expect(message).toMatch(expected);
  });

  it('refuses a pod beyond maxPods', async () => {
    const task = await granted(uniqueName('max'));
    await tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name }) });
    const message = await refusalMessage(() => tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name }) }));
    expect(message).toMatch(/maxPods/);
  });

  it('refuses a task pod that names another ServiceAccount instead of rewriting it', async () => {
    const task = await granted(uniqueName('other-sa'));
    await tasks.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'builder' } } });
    const message = await refusalMessage(() =>
      tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name }, { serviceAccountName: 'builder' }) }),
    );
    expect(message).toMatch(/builder/);
  });

  it('refuses relabelling a task pod', async () => {
    const task = await granted(uniqueName('relabel'));
    const pod = await tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name }) });
    const message = await refusalMessage(() =>
      tasks.core.patchNamespacedPod(
        { name: pod.metadata?.name ?? '', namespace: ns, body: { metadata: { labels: { 'taskgrant.io/task': 'someone-else' } } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      ),
    );
    expect(message).toMatch(/taskgrant\.io\/task/);
  });
});

describe('stamping and approvals', () => {
  it('overwrites a forged requester with the authenticated caller', async () => {
    const carol = await userWith('carol', [canCreate('agenttasks')]);
    const custom = carol.kc.makeApiClient(k8s.CustomObjectsApi);
    const name = uniqueName('forged');
    const created = (await custom.createNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: 'agenttasks',
      body: { apiVersion: `${group}/${version}`, kind: 'AgentTask', metadata: { name }, spec: { agent: 'x', intent: intentOf(readPods), requester: { username: 'admin', groups: ['system:masters'] } } },
    })) as AgentTask;
    expect(created.spec.requester?.username).toBe(carol.username);
    expect(created.spec.requester?.groups).not.toContain('system:masters');
  });

  it('accepts an approval only from someone allowed to approve, not the requester, for the current uid', async () => {
    const requester = await userWith('dave', [canCreate('agenttasks'), canCreate('taskapprovals'), canApprove]);
    const approver = await userWith('erin', [canCreate('taskapprovals'), canApprove]);
    const bystander = await userWith('frank', [canCreate('taskapprovals')]);
    const name = uniqueName('appr');
    const task = (await requester.kc.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: 'agenttasks',
      body: { apiVersion: `${group}/${version}`, kind: 'AgentTask', metadata: { name }, spec: { agent: 'x', intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) } },
    })) as AgentTask;
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    const approve = (who: { kc: k8s.KubeConfig }, uid: string) =>
      who.kc.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({
        group,
        version,
        namespace: ns,
        plural: 'taskapprovals',
        body: { apiVersion: `${group}/${version}`, kind: 'TaskApproval', metadata: { name: uniqueName('a') }, spec: { task: name, taskUID: uid, decision: 'Approve', reason: 'ok', approver: { username: 'mallory' } } },
      });
    expect(await refusalMessage(() => approve(requester, task.metadata.uid ?? ''))).toMatch(/requested .* cannot approve it/);
    expect(await refusalMessage(() => approve(bystander, task.metadata.uid ?? ''))).toMatch(/approve/);
    expect(await refusalMessage(() => approve(approver, '00000000-0000-4000-8000-000000000000'))).toMatch(/uid/i);
    const accepted = (await approve(approver, task.metadata.uid ?? '')) as { spec: { approver: { username: string } } };
    expect(accepted.spec.approver.username).toBe(approver.username);
    const grantedTask = await tasks.waitForPhase(ns, name, 'Granted');
    expect(grantedTask.status?.approval?.username).toBe(approver.username);
  });
});

describe('webhook outage', () => {
  it('refuses task pods but admits unrelated pods while the webhook server is down', async () => {
    const task = await granted(uniqueName('down'));
    await operator.stopWebhookOnly();
    expect(await statusOfCall(() => tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name }) }))).toBeGreaterThanOrEqual(400);
    await eventually(async () => (await statusOfCall(() => tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('plain'), { app: 'web' }) }))) === 200, 'an unrelated pod to be admitted');
  });
});
