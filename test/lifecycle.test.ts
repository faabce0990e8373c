// The grant lifecycle end to end against the real control plane: Cedar decides, one identity
// per task, and every revocation trigger kills the task's token — proven by using the token.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { eventually, statusOfCall, uniqueName } from './harness/kube.js';
import { startTestOperator, type TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import { canApprove, canCreate, userWith } from './harness/security.js';
import type { AgentTask } from '../src/api/index.js';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;
let otherNs: string;

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns, otherNs] } = await startOperatorSuite(['life', 'life-other']));
});

afterAll(async () => {
  await operator?.stop();
});

/** Grants a read-pods task, starts its pod, and returns a working pod-bound token. */
async function grantedTaskWithToken(name: string, spec: Partial<AgentTask['spec']> = {}) {
  await tasks.create(ns, name, { intent: intentOf(readPods), ...spec });
  const task = await tasks.waitForPhase(ns, name, 'Granted');
  const pod = await tasks.createTaskPod(task, `${name}-pod`);
  const token = await tasks.mintPodToken(ns, task.status?.grant?.serviceAccount ?? '', pod);
  const asTask = tasks.asToken(token);
  await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: ns }))) === 200, 'the task token to work');
  await tasks.waitForPhase(ns, name, 'Active');
  return { task, pod, token, asTask };
}

/**
 * After a trigger: no object of the task remains and the token can no longer do what it was
 * granted (RBAC is decided per request, uncached). Authentication itself ends once the API
 * server's token cache lets go: kube-apiserver caches a successful token authentication for 10 s
 * (not configurable), so a token used just before revocation authenticates, powerless, for up to
 * 10 s more before it is rejected outright. How fast each step happens is make bench's to measure
 * (revoke.*); here only that it happens, with room for a busy machine.
 */
async function expectRevoked(task: AgentTask, token: string) {
  const asTask = tasks.asToken(token);
  await eventually(async () => (await tasks.grantObjects(task.metadata.uid ?? '')).length === 0, 'grant objects to be deleted', 30_000, 25);
  await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: ns }))) >= 401, 'granted access to end', 30_000, 25);
  await eventually(async () => !(await tasks.tokenAuthenticates(token)), 'the token to be rejected', API_SERVER_TOKEN_CACHE_MS + 30_000, 100);
  expect(await statusOfCall(() => asTask.listNamespacedPod({ namespace: ns }))).toBe(401);
}

/** kube-apiserver's TokenSuccessCacheTTL. */
const API_SERVER_TOKEN_CACHE_MS = 10_000;

describe('granting', () => {
  it('creates one ServiceAccount, Role and RoleBinding holding exactly what was asked', async () => {
    const name = uniqueName('grant');
    const { task, asTask } = await grantedTaskWithToken(name);
    const grant = task.status?.grant;
    expect(grant?.serviceAccount).toMatch(/^tg-grant-/);
    expect(task.status?.reason).toBe('PolicyAllowed');
    expect(task.status?.decision?.allowed).toBe(true);
    expect(task.status?.decision?.determiningPolicies).toContain('permit-read-own-namespace');
    expect(Date.parse(grant?.expiresAt ?? '') - Date.parse(grant?.issuedAt ?? '')).toBe(15 * 60_000);
    expect(task.metadata.finalizers ?? (await tasks.get(ns, name))?.metadata.finalizers).toContain('taskgrant.io/revoke-grant');

    const role = await tasks.rbac.readNamespacedRole({ name: grant?.role ?? '', namespace: ns });
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }]);
    expect(role.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'taskgrant', 'taskgrant.io/task': name, 'taskgrant.io/task-uid': task.metadata.uid });
    expect(role.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'AgentTask', name, uid: task.metadata.uid });

    // Granted: list pods here. Everything else: 403.
    expect(await statusOfCall(() => asTask.listNamespacedSecret({ namespace: ns }))).toBe(403);
    expect(await statusOfCall(() => asTask.listNamespacedPod({ namespace: otherNs }))).toBe(403);
    expect(await statusOfCall(() => asTask.deleteNamespacedPod({ name: `${name}-pod`, namespace: ns }))).toBe(403);
    expect(await statusOfCall(() => asTask.listNamespacedConfigMap({ namespace: ns }))).toBe(403);
  });

  it('denies by policy and creates nothing', async () => {
    const name = uniqueName('denied');
    const created = await tasks.create(ns, name, { intent: intentOf({ apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['create'] }) });
    const task = await tasks.waitForPhase(ns, name, 'Denied');
    expect(task.status?.reason).toBe('PolicyDenied');
    expect(task.status?.message).toMatch(/forbid-rbac-writes/);
    expect(task.status?.decision?.allowed).toBe(false);
    expect(await tasks.grantObjects(created.metadata.uid ?? '')).toEqual([]);
    // Never given the finalizer: it held nothing, so nothing holds its deletion.
    expect(task.metadata.finalizers ?? []).not.toContain('taskgrant.io/revoke-grant');
  });

  it('holds a task that policy would allow with approval in AwaitingApproval', async () => {
    const name = uniqueName('approval');
    const created = await tasks.create(ns, name, { intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) });
    const task = await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    expect(task.status?.reason).toBe('ApprovalRequired');
    expect(await tasks.grantObjects(created.metadata.uid ?? '')).toEqual([]);
  });

  it('grants across namespaces once approved, one Role and RoleBinding per namespace', async () => {
    const name = uniqueName('cross');
    const created = await tasks.create(ns, name, { intent: intentOf(readPods, { ...readPods, namespace: otherNs }) });
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    // Approval comes from someone else than the requester (the admin here), holding `approve`
    // in every namespace the task reaches.
    const approver = await userWith(admin, ns, uniqueName('approver'), [canCreate('taskapprovals'), canApprove]);
    const saName = approver.username.split(':').at(-1) ?? '';
    await tasks.rbac.createNamespacedRole({ namespace: otherNs, body: { metadata: { name: saName }, rules: [canApprove] } });
    await tasks.rbac.createNamespacedRoleBinding({
      namespace: otherNs,
      body: { metadata: { name: saName }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: saName }, subjects: [{ kind: 'ServiceAccount', name: saName, namespace: ns }] },
    });
    await eventually(async () => {
      await approver.custom.createNamespacedCustomObject({
        group: 'taskgrant.io',
        version: 'v1alpha1',
        namespace: ns,
        plural: 'taskapprovals',
        body: { apiVersion: 'taskgrant.io/v1alpha1', kind: 'TaskApproval', metadata: { name: uniqueName(`${name}-ok`) }, spec: { task: name, taskUID: created.metadata.uid, decision: 'Approve', reason: 'on-call approved' } },
      });
      return true;
    }, 'the approval to be accepted (RBAC for the approver propagating)');
    const task = await tasks.waitForPhase(ns, name, 'Granted');
    expect(task.status?.grant?.namespaces).toEqual([ns, otherNs].sort());
    const objects = await tasks.grantObjects(task.metadata.uid ?? '');
    expect(objects.sort()).toEqual(
      [`ServiceAccount ${ns}/${task.status?.grant?.serviceAccount}`, ...[ns, otherNs].flatMap((n) => [`Role ${n}/${task.status?.grant?.role}`, `RoleBinding ${n}/${task.status?.grant?.roleBinding}`])].sort(),
    );
    const pod = await tasks.createTaskPod(task, `${name}-pod`);
    const asTask = tasks.asToken(await tasks.mintPodToken(ns, task.status?.grant?.serviceAccount ?? '', pod));
    await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: otherNs }))) === 200, 'cross-namespace access');
  });

  it('repairs a Role someone widened', async () => {
    const name = uniqueName('drift');
    const { task, asTask } = await grantedTaskWithToken(name);
    const role = task.status?.grant?.role ?? '';
    await tasks.rbac.patchNamespacedRole(
      { name: role, namespace: ns, body: { rules: [{ apiGroups: [''], resources: ['pods', 'secrets'], verbs: ['get', 'list'] }] } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await eventually(async () => {
      const current = await tasks.rbac.readNamespacedRole({ name: role, namespace: ns });
      return JSON.stringify(current.rules) === JSON.stringify([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }]);
    }, 'the Role to be put back');
    await eventually(async () => (await statusOfCall(() => asTask.listNamespacedSecret({ namespace: ns }))) === 403, 'secrets to be forbidden again');
  });
});

describe('revocation', () => {
  it('never waits behind a burst of grants: a revocation goes ahead of the queued tasks', async () => {
    const live = uniqueName('urgent');
    await tasks.create(ns, live, { agent: uniqueName('agent'), intent: intentOf(readPods) });
    await tasks.waitForPhase(ns, live, 'Granted');
    // While the operator is away, 200 tasks arrive and the live one is revoked: on its return
    // all of them are queued at once, and the revocation must not wait behind the grants.
    const operatorNamespace = operator.config.namespace;
    await operator.stop();
    const burst = Array.from({ length: 200 }, (_, i) => `${uniqueName('burst')}-${i}`);
    try {
      for (let i = 0; i < burst.length; i += 50) {
        await Promise.all(burst.slice(i, i + 50).map((name) => tasks.create(ns, name, { agent: uniqueName('agent'), intent: intentOf(readPods) })));
      }
      await tasks.annotate(ns, live, { 'taskgrant.io/revoke': 'during a burst' });
    } finally {
      operator = await startTestOperator({ namespace: operatorNamespace });
    }
    await tasks.waitForPhase(ns, live, 'Revoked', 60_000);
    const list = (await tasks.custom.listNamespacedCustomObject({ group: 'taskgrant.io', version: 'v1alpha1', namespace: ns, plural: 'agenttasks' })) as { items: AgentTask[] };
    const undecided = list.items.filter((t) => burst.includes(t.metadata.name) && t.status?.phase === undefined).length;
    // In one FIFO queue the revocation would have waited for all but the few in flight (8 workers).
    expect(undecided).toBeGreaterThan(burst.length / 2);
    for (const name of burst) await tasks.waitForPhase(ns, name, ['Granted', 'Denied'], 120_000);
  }, 300_000);

  it('completes when the task pod succeeds', async () => {
    const name = uniqueName('done');
    const { task, token } = await grantedTaskWithToken(name);
    await tasks.setPodPhase(ns, `${name}-pod`, 'Succeeded');
    await expectRevoked(task, token);
    const done = await tasks.waitForPhase(ns, name, 'Completed');
    expect(done.status?.reason).toBe('PodSucceeded');
    expect(done.status?.revokedAt).toBeDefined();
    expect(done.status?.conditions?.find((c) => c.type === 'Revoked')?.status).toBe('True');
  });

  it('revokes when the task pod fails', async () => {
    const name = uniqueName('fail');
    const { task, token } = await grantedTaskWithToken(name);
    await tasks.setPodPhase(ns, `${name}-pod`, 'Failed');
    await expectRevoked(task, token);
    expect((await tasks.waitForPhase(ns, name, 'Revoked')).status?.reason).toBe('PodFailed');
  });

  it('revokes when the task pod is deleted', async () => {
    const name = uniqueName('podgone');
    const { task, token } = await grantedTaskWithToken(name);
    await tasks.core.deleteNamespacedPod({ name: `${name}-pod`, namespace: ns, gracePeriodSeconds: 0 });
    await expectRevoked(task, token);
    expect((await tasks.waitForPhase(ns, name, 'Revoked')).status?.reason).toBe('PodDeleted');
  });

  it('expires at expiresAt', async () => {
    const name = uniqueName('ttl');
    const { task, token } = await grantedTaskWithToken(name, { ttl: '10s' });
    const expiresAt = Date.parse(task.status?.grant?.expiresAt ?? '');
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() - 500)));
    // Not revoked early: asked before expiresAt (a busy machine may wake us too late to ask).
    const works = await tasks.tokenAuthenticates(token);
    if (Date.now() < expiresAt) expect(works).toBe(true);
    await expectRevoked(task, token);
    expect((await tasks.waitForPhase(ns, name, 'Expired')).status?.reason).toBe('TTLExpired');
  });

  it('revokes on the revoke annotation', async () => {
    const name = uniqueName('manual');
    const { task, token } = await grantedTaskWithToken(name);
    await tasks.annotate(ns, name, { 'taskgrant.io/revoke': 'incident closed' });
    await expectRevoked(task, token);
    const revoked = await tasks.waitForPhase(ns, name, 'Revoked');
    expect(revoked.status?.reason).toBe('Manual');
    expect(revoked.status?.message).toContain('incident closed');
  });

  it('revokes before letting a deleted task go', async () => {
    const name = uniqueName('deleted');
    const { task, token } = await grantedTaskWithToken(name);
    await tasks.delete(ns, name);
    await expectRevoked(task, token);
    await eventually(async () => (await tasks.get(ns, name)) === undefined, 'the task to be gone');
  });

  it('revokes when a policy reload no longer allows the task', async () => {
    const name = uniqueName('policy');
    const agent = uniqueName('doomed-agent');
    const { task, token } = await grantedTaskWithToken(name, { agent });
    await tasks.core.createNamespacedConfigMap({
      namespace: operator.config.namespace,
      body: {
        metadata: { name: 'ban-agent', labels: { 'taskgrant.io/policy': 'true' } },
        data: { 'ban.cedar': `// Test: this agent is banned.\n@id("ban-agent")\nforbid (principal, action, resource) when { principal.name == "${agent}" };\n` },
      },
    });
    await expectRevoked(task, token);
    const revoked = await tasks.waitForPhase(ns, name, 'Revoked');
    expect(revoked.status?.reason).toBe('PolicyChanged');
    expect(revoked.status?.message).toMatch(/ban-agent/);
    await tasks.core.deleteNamespacedConfigMap({ name: 'ban-agent', namespace: operator.config.namespace });
  });
});

describe('re-issuance limits', () => {
  it('grants exactly 20 of 25 simultaneous tasks of one agent', async () => {
    const agent = uniqueName('burst');
    const names = Array.from({ length: 25 }, (_, i) => `${agent}-${i}`);
    await Promise.all(names.map((n) => tasks.create(ns, n, { agent, intent: intentOf(readPods) })));
    const final = await Promise.all(names.map((n) => tasks.waitForPhase(ns, n, ['Granted', 'Denied'], 30_000)));
    const granted = final.filter((t) => t.status?.phase === 'Granted');
    const denied = final.filter((t) => t.status?.phase === 'Denied');
    expect(granted).toHaveLength(20);
    expect(denied).toHaveLength(5);
    for (const t of denied) expect(t.status?.message).toMatch(/forbid-grant-rate/);
    for (const t of denied) expect(t.status?.message).toMatch(/leaves the window at/);
  });
});

describe('audit', () => {
  it('writes one audit line and one Event per transition, and never a token', async () => {
    const name = uniqueName('audit');
    const { task, token } = await grantedTaskWithToken(name);
    await tasks.setPodPhase(ns, `${name}-pod`, 'Succeeded');
    await tasks.waitForPhase(ns, name, 'Completed');
    // Each audit line comes a moment after its transition's status.
    const completedLine = (l: string) => l.includes(`"uid":"${task.metadata.uid ?? ''}"`) && l.includes('"audit":true') && l.includes('"to":"Completed"');
    await eventually(async () => readFileSync(operator.logFile, 'utf8').split('\n').some(completedLine), 'the Completed audit line');
    const lines = readFileSync(operator.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes(task.metadata.uid ?? 'none') && l.includes('"audit":true'))
      .map((l) => JSON.parse(l) as { to: string; objective: string; requestedPermissions: unknown[] });
    expect(lines.map((l) => l.to)).toEqual(['Granted', 'Active', 'Completed']);
    expect(lines[0]?.objective).toBe('Summarize error logs for INC-1234');
    expect(lines[0]?.requestedPermissions).toHaveLength(2);
    const events = await eventually(async () => {
      const list = await tasks.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.uid=${task.metadata.uid}` });
      return list.items.length >= 3 ? list.items : undefined;
    }, 'three events');
    expect(events.map((e) => e.reason).sort()).toEqual(['PodAdmitted', 'PodSucceeded', 'PolicyAllowed']);
    expect(readFileSync(operator.logFile, 'utf8')).not.toContain(token);
    expect(readFileSync(operator.logFile, 'utf8')).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
  });
});
