// Attacks on the lifecycle, with real credentials: finalizers held or stripped, a lying
// sensitivity, forged AdmissionReviews, a re-issuance flood and a webhook outage.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { API_SERVER_TOKEN_CACHE_MS, agentName, attackKit, group, pod, version } from './harness/attack-kit.js';
import { createNamespace, eventually, refusalMessage, statusOfCall, uniqueName } from './harness/kube.js';
import { startTestOperator, type TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { canApprove, canCreate, userWith, webhookCaPem, webhookRequest } from './harness/security.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import { ConfigMapLedger } from '../src/kube/ledger.js';
import { type AgentTask } from '../src/api/index.js';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;
let otherNs: string;

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns, otherNs] } = await startOperatorSuite(['atklc', 'atklc-other']));
});

afterAll(async () => {
  await operator?.stop();
});

const { createPod, podExists, granted, admittedTaskToken, expectNothingGranted } = attackKit(() => ({ admin, tasks, ns }));

describe('a foreign finalizer holding a deleted task', () => {
  it('still revokes the grant, admits no new pod, and lets go of its own finalizer', async () => {
    const name = uniqueName('held');
    const { task, token, asTask } = await admittedTaskToken(name);
    await tasks.custom.patchNamespacedCustomObject(
      { group, version, namespace: ns, plural: 'agenttasks', name, body: [{ op: 'add', path: '/metadata/finalizers/-', value: 'example.com/hold' }] },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    );
    await tasks.delete(ns, name);

    await eventually(async () => (await tasks.grantObjects(task.metadata.uid ?? '')).length === 0, 'grant objects to be deleted', 30_000, 25);
    await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: ns }))) >= 401, 'granted access to end', 30_000, 25);
    await eventually(async () => !(await tasks.tokenAuthenticates(token)), 'the token to be rejected', API_SERVER_TOKEN_CACHE_MS + 30_000, 100);

    const held = await eventually(async () => {
      const t = await tasks.get(ns, name);
      return t?.metadata.finalizers?.includes('taskgrant.io/revoke-grant') === false ? t : undefined;
    }, 'taskgrant to drop its own finalizer');
    expect(held.metadata.deletionTimestamp).toBeDefined();
    expect(held.metadata.finalizers).toEqual(['example.com/hold']);
    expect(held.status?.phase).toBe('Revoked');
    expect(held.status?.reason).toBe('TaskDeleted');

    expect(await refusalMessage(() => createPod(ns, pod(uniqueName('late'), { 'taskgrant.io/task': name })))).toMatch(/Revoked/);
    await expectNothingGranted(task.metadata.uid);

    await tasks.custom.patchNamespacedCustomObject(
      { group, version, namespace: ns, plural: 'agenttasks', name, body: [{ op: 'replace', path: '/metadata/finalizers', value: [] }] },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    );
    await eventually(async () => (await tasks.get(ns, name)) === undefined, 'the task to be gone once released');
  });
});

describe("stripping taskgrant's finalizer", () => {
  it('still ends the grant in every namespace once the task is deleted', async () => {
    const name = uniqueName('stripped');
    const created = await tasks.create(ns, name, { agent: agentName(), intent: intentOf(readPods, { ...readPods, namespace: otherNs }) });
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    // Someone allowed to approve in both namespaces approves, so the grant reaches otherNs.
    const approver = await userWith(admin, ns, uniqueName('both'), [canCreate('taskapprovals'), canApprove]);
    const role = uniqueName('both-approve');
    await tasks.rbac.createNamespacedRole({ namespace: otherNs, body: { metadata: { name: role }, rules: [canApprove] } });
    await tasks.rbac.createNamespacedRoleBinding({
      namespace: otherNs,
      body: { metadata: { name: role }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role }, subjects: [{ kind: 'ServiceAccount', name: approver.username.split(':').at(-1) ?? '', namespace: ns }] },
    });
    await approver.custom.createNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: 'taskapprovals',
      body: { apiVersion: `${group}/${version}`, kind: 'TaskApproval', metadata: { name: `${name}-ok` }, spec: { task: name, taskUID: created.metadata.uid, decision: 'Approve', reason: 'CHG-9' } },
    });
    const task = await tasks.waitForPhase(ns, name, 'Granted');
    const admitted = await createPod(ns, pod(`${name}-pod`, { 'taskgrant.io/task': name }));
    const asTask = tasks.asToken(await tasks.mintPodToken(ns, task.status?.grant?.serviceAccount ?? '', admitted));
    await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: otherNs }))) === 200, 'cross-namespace access');

    // Whoever may edit the task drops the finalizer and deletes it: the task vanishes at once.
    await tasks.custom.patchNamespacedCustomObject(
      { group, version, namespace: ns, plural: 'agenttasks', name, body: [{ op: 'replace', path: '/metadata/finalizers', value: [] }] },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    );
    await tasks.delete(ns, name);
    await eventually(async () => (await tasks.get(ns, name)) === undefined, 'the task to vanish');
    await eventually(async () => (await tasks.grantObjects(task.metadata.uid ?? '')).length === 0, 'every grant object to be deleted', 35_000, 25);
    for (const namespace of [ns, otherNs]) {
      await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace }))) >= 401, `access to ${namespace} to end`, 30_000, 25);
    }
  });
});

describe("the data owner's sensitivity floor (audit finding 14)", () => {
  it('decides on the namespace label when the requester declares less sensitive work', async () => {
    const restricted = await createNamespace(admin, 'atk-restricted');
    await tasks.core.patchNamespace({ name: restricted, body: { metadata: { labels: { 'taskgrant.io/sensitivity': 'restricted' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    // Reading pods for "public" work within the hour is baseline: granted without the label.
    const declaredPublic = (name: string, namespace: string) => tasks.create(namespace, name, { agent: agentName(), intent: { ...intentOf(readPods), sensitivity: 'public' } });
    const control = uniqueName('control');
    await declaredPublic(control, ns);
    await tasks.waitForPhase(ns, control, 'Granted');
    const liar = uniqueName('liar');
    await declaredPublic(liar, restricted);
    const held = await tasks.waitForPhase(restricted, liar, ['AwaitingApproval', 'Denied', 'Granted']);
    expect(held.status?.phase).toBe('AwaitingApproval');
    expect(held.status?.decision?.allowed).toBe(false);
  });
});

describe('the webhook port answers only the API server (audit finding 9)', () => {
  it('refuses forged AdmissionReviews from anyone else, so they hold no pod slot and probe no approver', async () => {
    const name = uniqueName('forged-slot');
    const task = await granted(name, { maxPods: 1 });
    const caPem = await webhookCaPem(admin, operator.config.namespace);
    const review = (path: string, object: unknown, kind: { group: string; version: string; kind: string }, resource: string) =>
      JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: uniqueName('forged'), kind, resource: { group: kind.group, version: kind.version, resource }, operation: 'CREATE', namespace: ns, userInfo: { username: 'alice' }, object },
      });
    const forgedPod = review('/mutate/pods', pod(`${name}-forged`, { 'taskgrant.io/task': name }), { group: '', version: 'v1', kind: 'Pod' }, 'pods');
    const probe = review('/validate/taskapprovals', { apiVersion: `${group}/${version}`, kind: 'TaskApproval', metadata: { name: 'probe' }, spec: { task: name, taskUID: task.metadata.uid, decision: 'Approve', approver: { username: 'bob' } } }, { group, version, kind: 'TaskApproval' }, 'taskapprovals');
    for (let i = 0; i < 3; i += 1) {
      for (const [path, body] of [['/mutate/pods', forgedPod], ['/validate/taskapprovals', probe]] as const) {
        const res = await webhookRequest(operator.webhookPort, caPem, { method: 'POST', path, body, headers: { 'Content-Type': 'application/json' } }, 'anyone');
        expect(res.status).toBe(403);
        expect(res.body).toMatch(/only the API server may call the admission routes/);
      }
    }
    // The one slot is still free for the task's real pod, admitted through the API server.
    const admitted = await createPod(ns, pod(`${name}-pod`, { 'taskgrant.io/task': name }));
    expect(admitted.spec?.serviceAccountName).toBe(task.status?.grant?.serviceAccount);
  });
});

describe('re-issuance flood', () => {
  it('holds the cap of 20 grants per agent across task deletion and an operator restart', async () => {
    const agent = agentName();
    const floodTask = (i: number) => `${agent}-${i}`;
    // Five waves of four, each granted then deleted: an agent cycling through short tasks.
    for (let wave = 0; wave < 5; wave += 1) {
      const names = Array.from({ length: 4 }, (_, i) => floodTask(wave * 4 + i));
      await Promise.all(names.map((n) => tasks.create(ns, n, { agent, ttl: '1m', intent: intentOf(readPods) })));
      await Promise.all(names.map((n) => tasks.waitForPhase(ns, n, 'Granted')));
      await Promise.all(names.map((n) => tasks.delete(ns, n)));
      await Promise.all(names.map((n) => eventually(async () => (await tasks.get(ns, n)) === undefined, `${n} to be gone`)));
    }
    const listed = (await tasks.custom.listNamespacedCustomObject({ group, version, namespace: ns, plural: 'agenttasks' })) as { items: AgentTask[] };
    expect(listed.items.filter((t) => t.spec.agent === agent)).toEqual([]);

    await tasks.create(ns, floodTask(20), { agent, ttl: '1m', intent: intentOf(readPods) });
    const twentyFirst = await tasks.waitForPhase(ns, floodTask(20), ['Denied', 'Granted']);
    expect(twentyFirst.status?.phase).toBe('Denied');
    expect(twentyFirst.status?.message).toMatch(/forbid-grant-rate/);

    const ledger = await tasks.core.readNamespacedConfigMap({ name: ConfigMapLedger.nameFor(ns, agent), namespace: operator.config.namespace });
    expect(JSON.parse(ledger.data?.grants ?? '[]')).toHaveLength(20);

    // A fresh operator over the same operator namespace reads the same ledger.
    const operatorNamespace = operator.config.namespace;
    await operator.stop();
    operator = await startTestOperator({ namespace: operatorNamespace });
    await tasks.create(ns, floodTask(21), { agent, ttl: '1m', intent: intentOf(readPods) });
    const afterRestart = await tasks.waitForPhase(ns, floodTask(21), ['Denied', 'Granted']);
    expect(afterRestart.status?.phase).toBe('Denied');
    expect(afterRestart.status?.message).toMatch(/forbid-grant-rate/);
  });
});

// Last: the webhook server cannot be restarted, so nothing after this may need it.
describe('webhook outage', () => {
  it('still refuses borrowing a task identity and relabelling task pods, with the webhook server stopped', async () => {
    const name = uniqueName('outage');
    const task = await granted(name);
    const admitted = await createPod(ns, pod(`${name}-pod`, { 'taskgrant.io/task': name }));
    const sa = task.status?.grant?.serviceAccount ?? '';
    await operator.stopWebhookOnly();

    const thief = uniqueName('thief');
    const message = await refusalMessage(() => createPod(ns, pod(thief, {}, { serviceAccountName: sa })));
    expect(message).toMatch(/ValidatingAdmissionPolicy 'taskgrant-identity-guard'/);
    expect(await podExists(ns, thief)).toBe(false);

    const relabel = (labels: Record<string, string | null>) =>
      tasks.core.patchNamespacedPod(
        { name: admitted.metadata?.name ?? '', namespace: ns, body: { metadata: { labels } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
    // The guard's first rule already catches it (the pod runs as a tg- account the new label does not match).
    expect(await refusalMessage(() => relabel({ 'taskgrant.io/task': 'someone-else' }))).toMatch(/ValidatingAdmissionPolicy 'taskgrant-identity-guard'/);
    expect(await refusalMessage(() => relabel({ 'taskgrant.io/task': null }))).toMatch(/ValidatingAdmissionPolicy 'taskgrant-identity-guard'/);
    const current = await tasks.core.readNamespacedPod({ name: admitted.metadata?.name ?? '', namespace: ns });
    expect(current.metadata?.labels?.['taskgrant.io/task']).toBe(name);

    // A labelled pod needs the (stopped) webhook: failurePolicy Fail refuses it.
    expect(await statusOfCall(() => createPod(ns, pod(uniqueName('p'), { 'taskgrant.io/task': name })))).toBeGreaterThanOrEqual(400);
  });
});
