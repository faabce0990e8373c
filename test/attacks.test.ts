// Attacks on taskgrant, each tried with real credentials against the real API server: borrowing a
// task's identity, asking for more than a task may hold, climbing out of a granted token,
// replaying approvals, flooding re-issuance, and holding a deleted task with a foreign finalizer.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { createNamespace, eventually, refusalMessage, statusOfCall, tokenConfig, uniqueName } from './harness/kube.js';
import { startTestOperator, type TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { apiServerRequest, canApprove, canCreate, userWith, webhookCaPem, webhookRequest, type TestUser } from './harness/security.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import { ConfigMapLedger } from '../src/kube/ledger.js';
import { taskServiceAccountName, type AgentTask, type Phase } from '../src/api/index.js';

const group = 'taskgrant.io';
const version = 'v1alpha1';
/** kube-apiserver's TokenSuccessCacheTTL: a deleted ServiceAccount's token may authenticate this long. */
const API_SERVER_TOKEN_CACHE_MS = 10_000;

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;
let otherNs: string;

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns, otherNs] } = await startOperatorSuite(['atk', 'atk-other']));
});

afterAll(async () => {
  await operator?.stop();
});

/** Every task gets its own agent: re-issuance limits count per agent, and this file grants many. */
const agentName = () => uniqueName('agent');

async function granted(name: string, spec: Partial<AgentTask['spec']> = {}): Promise<AgentTask> {
  await tasks.create(ns, name, { agent: agentName(), intent: intentOf(readPods), ...spec });
  return tasks.waitForPhase(ns, name, 'Granted');
}

function pod(name: string, labels: Record<string, string> = {}, spec: Partial<k8s.V1PodSpec> = {}, annotations: Record<string, string> = {}): k8s.V1Pod {
  return { metadata: { name, labels, annotations }, spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }], ...spec } };
}

const createPod = (namespace: string, body: k8s.V1Pod) => tasks.core.createNamespacedPod({ namespace, body });
const podExists = async (namespace: string, name: string) => (await statusOfCall(() => tasks.core.readNamespacedPod({ namespace, name }))) === 200;

/** A granted task whose pod the webhook admitted (from the label alone), and a working token bound to that pod. */
async function admittedTaskToken(name: string, spec: Partial<AgentTask['spec']> = {}) {
  const task = await granted(name, spec);
  const admitted = await createPod(ns, pod(`${name}-pod`, { 'taskgrant.io/task': name }));
  const serviceAccount = admitted.spec?.serviceAccountName ?? '';
  expect(serviceAccount).toBe(task.status?.grant?.serviceAccount);
  const token = await tasks.mintPodToken(ns, serviceAccount, admitted);
  const asTask = tasks.asToken(token);
  await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: ns }))) === 200, 'the task token to work');
  return { task, pod: admitted, serviceAccount, token, asTask, kc: tokenConfig(admin, token) };
}

async function expectNothingGranted(uid: string | undefined): Promise<void> {
  expect(await tasks.grantObjects(uid ?? '')).toEqual([]);
}

describe('borrowing a task identity', () => {
  it('refuses an unlabelled pod that names a task ServiceAccount, in either field', async () => {
    const task = await granted(uniqueName('borrow'));
    const sa = task.status?.grant?.serviceAccount ?? '';
    const viaName = await refusalMessage(() => createPod(ns, pod(uniqueName('thief'), { app: 'x' }, { serviceAccountName: sa })));
    expect(viaName).toMatch(/ValidatingAdmissionPolicy/);
    expect(viaName).toContain(sa);
    // The deprecated alias: the API server copies it into serviceAccountName before admission.
    const viaAlias = await refusalMessage(() => createPod(ns, pod(uniqueName('thief'), {}, { serviceAccount: sa })));
    expect(viaAlias).toContain(sa);
    // The whole tg- prefix is reserved, not just names the operator made.
    await tasks.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'tg-lookalike-00000000' } } });
    expect(await refusalMessage(() => createPod(ns, pod(uniqueName('thief'), {}, { serviceAccountName: 'tg-lookalike-00000000' })))).toContain('tg-lookalike-00000000');
  });

  it("refuses task A's pod that names task B's ServiceAccount", async () => {
    const a = await granted(uniqueName('task-a'));
    const b = await granted(uniqueName('task-b'));
    const bSa = b.status?.grant?.serviceAccount ?? '';
    const name = uniqueName('cross');
    const message = await refusalMessage(() => createPod(ns, pod(name, { 'taskgrant.io/task': a.metadata.name }, { serviceAccountName: bSa })));
    expect(message).toContain(bSa);
    // Forging B's uid annotation on A's pod does not help either.
    const forged = await refusalMessage(() =>
      createPod(ns, pod(uniqueName('cross'), { 'taskgrant.io/task': a.metadata.name }, { serviceAccountName: bSa }, { 'taskgrant.io/task-uid': b.metadata.uid ?? '' })),
    );
    expect(forged).toContain(bSa);
    expect(await podExists(ns, name)).toBe(false);
  });

  it("refuses a copy of an admitted pod's labels, annotation and ServiceAccount beyond maxPods", async () => {
    const name = uniqueName('copy');
    await granted(name, { maxPods: 2 });
    const first = await createPod(ns, pod(`${name}-1`, { 'taskgrant.io/task': name }));
    const copy = (n: string): k8s.V1Pod => ({
      metadata: { name: n, labels: { ...first.metadata?.labels }, annotations: { ...first.metadata?.annotations } },
      spec: { serviceAccountName: first.spec?.serviceAccountName ?? '', automountServiceAccountToken: false, containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] },
    });
    await createPod(ns, copy(`${name}-2`));
    for (const extra of [`${name}-3`, `${name}-4`]) {
      expect(await refusalMessage(() => createPod(ns, copy(extra)))).toMatch(/maxPods 2/);
      expect(await podExists(ns, extra)).toBe(false);
    }
    const active = await tasks.waitForPhase(ns, name, 'Active');
    await eventually(async () => ((await tasks.get(ns, name))?.status?.grant?.pods?.length === 2 ? true : undefined), 'two pods on the grant');
    expect(active.status?.grant?.serviceAccount).toBe(first.spec?.serviceAccountName);
  });

  it('admits exactly maxPods of many concurrent pods carrying the label', async () => {
    const name = uniqueName('race');
    await granted(name, { maxPods: 2 });
    const names = Array.from({ length: 8 }, (_, i) => `${name}-${i}`);
    const results = await Promise.all(names.map((n) => statusOfCall(() => createPod(ns, pod(n, { 'taskgrant.io/task': name })))));
    expect(results.filter((s) => s === 200)).toHaveLength(2);
    expect(results.filter((s) => s !== 200).every((s) => s >= 400)).toBe(true);
    expect((await tasks.core.listNamespacedPod({ namespace: ns, labelSelector: `taskgrant.io/task=${name}` })).items).toHaveLength(2);
  });

  it('refuses a pod labelled with the name of a task in another namespace', async () => {
    const task = await granted(uniqueName('elsewhere'));
    const labelled = await refusalMessage(() => createPod(otherNs, pod(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name })));
    expect(labelled).toMatch(/not found/);
    // Naming the task's ServiceAccount too: it does not exist over there, and tg- names are reserved anyway.
    expect(await statusOfCall(() => createPod(otherNs, pod(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name }, { serviceAccountName: task.status?.grant?.serviceAccount ?? '' })))).toBeGreaterThanOrEqual(400);
    expect((await tasks.core.listNamespacedPod({ namespace: otherNs })).items).toEqual([]);
  });
});

describe('status is not proof of a grant (audit finding 1)', () => {
  const forgedStatus = (task: AgentTask) => ({
    status: {
      phase: 'Granted',
      reason: 'PolicyAllowed',
      message: 'forged',
      grant: {
        serviceAccount: taskServiceAccountName(task.metadata.name, task.metadata.uid ?? ''),
        role: taskServiceAccountName(task.metadata.name, task.metadata.uid ?? ''),
        roleBinding: taskServiceAccountName(task.metadata.name, task.metadata.uid ?? ''),
        namespaces: [ns],
        issuedAt: new Date().toISOString(),
        expiresAt: '2099-01-01T00:00:00Z',
        pods: [],
      },
    },
  });
  const writeStatus = (custom: k8s.CustomObjectsApi, task: AgentTask) =>
    custom.patchNamespacedCustomObjectStatus(
      { group, version, namespace: ns, plural: 'agenttasks', name: task.metadata.name, body: forgedStatus(task) },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );

  it('refuses anyone but the operator writing a task status (the status guard)', async () => {
    const name = uniqueName('forge');
    await tasks.create(ns, name, { agent: agentName(), intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) });
    const task = await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    // CRD RBAC as it is often written: every resource of the group, status included.
    const writer = await userWith(admin, ns, uniqueName('status-forger'), [{ apiGroups: [group], resources: ['*'], verbs: ['get', 'list', 'patch', 'update'] }]);
    expect(await refusalMessage(() => writeStatus(writer.custom, task))).toMatch(/the status of an AgentTask is taskgrant's own record: only the operator writes it, not system:serviceaccount:/);
    expect((await tasks.get(ns, name))?.status?.phase).toBe('AwaitingApproval');
    await expectNothingGranted(task.metadata.uid);
  });

  it('grants nothing on a forged Granted that got through (a cluster admin, or no guard): it is revoked unverified', async () => {
    const name = uniqueName('forged');
    await tasks.create(ns, name, { agent: agentName(), intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) });
    const task = await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    await writeStatus(tasks.custom, task);
    const revoked = await tasks.waitForPhase(ns, name, 'Revoked', 30_000);
    expect(revoked.status?.reason).toBe('GrantUnverified');
    expect(revoked.status?.message).toMatch(/no grant to this task is recorded in the ledger/);
    await expectNothingGranted(task.metadata.uid);
  });
});

describe('namespaces the pod webhooks skip (audit finding 2)', () => {
  it('still stamps the requester of a task written there, over a forged one', async () => {
    // The operator's own namespace: its pods skip the webhooks so they start during an outage.
    const where = operator.config.namespace;
    const author = await userWith(admin, where, uniqueName('author'), [canCreate('agenttasks')]);
    const name = uniqueName('skipped');
    const body = { apiVersion: `${group}/${version}`, kind: 'AgentTask', metadata: { name }, spec: { agent: agentName(), requester: { username: 'alice' }, intent: intentOf(readPods) } };
    const created = (await author.custom.createNamespacedCustomObject({ group, version, namespace: where, plural: 'agenttasks', body })) as AgentTask;
    expect(created.spec.requester?.username).toBe(author.username);
    // And nothing is granted there, whoever asks.
    const denied = await tasks.waitForPhase(where, name, 'Denied');
    expect(denied.status?.reason).toBe('OperatorNamespace');
  });
});

describe('pod-supplied token volumes (audit finding 3)', () => {
  const yearLong = { name: 'year-long', projected: { sources: [{ serviceAccountToken: { path: 't', audience: 'vault.example.com', expirationSeconds: 31_536_000 } }] } };

  it("refuses a task pod that asks the kubelet for a year-long token of the task's identity", async () => {
    const task = await granted(uniqueName('tokvol'));
    const message = await refusalMessage(() => createPod(ns, pod(uniqueName('p'), { 'taskgrant.io/task': task.metadata.name }, { volumes: [yearLong] })));
    expect(message).toMatch(/projects its own ServiceAccount token \(volume year-long\)/);
    expect((await tasks.core.listNamespacedPod({ namespace: ns, labelSelector: `taskgrant.io/task=${task.metadata.name}` })).items).toEqual([]);
  });

  it('is refused inside the API server too, where no webhook looks (the identity guard)', async () => {
    // The webhooks never see the operator's own namespace; the identity guard sees every namespace.
    const where = operator.config.namespace;
    const serviceAccount = 'tg-x-12345678';
    await tasks.core.createNamespacedServiceAccount({ namespace: where, body: { metadata: { name: serviceAccount } } }).catch(() => undefined);
    const asTaskPod = (volumes: k8s.V1Volume[]) => pod(uniqueName('p'), { 'taskgrant.io/task': 'x' }, { serviceAccountName: serviceAccount, automountServiceAccountToken: false, volumes });
    const dryRun = (body: k8s.V1Pod) => tasks.core.createNamespacedPod({ namespace: where, body, dryRun: 'All' });
    expect(await statusOfCall(() => dryRun(asTaskPod([])))).toBe(200);
    expect(await refusalMessage(() => dryRun(asTaskPod([yearLong])))).toMatch(/may not project ServiceAccount tokens of its own/);
  });
});

describe('labels through pods/status (audit finding 10)', () => {
  it("refuses a status writer moving a task pod to another task's label", async () => {
    const name = uniqueName('status');
    await granted(name);
    const admitted = await createPod(ns, pod(`${name}-pod`, { 'taskgrant.io/task': name }));
    // What a controller or node agent with status rights holds.
    const writer = await userWith(admin, ns, uniqueName('status-writer'), [{ apiGroups: [''], resources: ['pods/status'], verbs: ['get', 'patch', 'update'] }]);
    const asWriter = writer.kc.makeApiClient(k8s.CoreV1Api);
    const relabel = (labels: Record<string, string | null>) =>
      asWriter.patchNamespacedPodStatus({ name: admitted.metadata?.name ?? '', namespace: ns, body: { metadata: { labels } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    expect(await refusalMessage(() => relabel({ 'taskgrant.io/task': 'someone-else' }))).toMatch(/ValidatingAdmissionPolicy 'taskgrant-identity-guard'/);
    expect(await refusalMessage(() => relabel({ 'taskgrant.io/task': null }))).toMatch(/ValidatingAdmissionPolicy 'taskgrant-identity-guard'/);
    expect((await tasks.core.readNamespacedPod({ namespace: ns, name: admitted.metadata?.name ?? '' })).metadata?.labels?.['taskgrant.io/task']).toBe(name);
    // Status itself still moves, as a kubelet's would.
    expect(await statusOfCall(() => asWriter.patchNamespacedPodStatus({ name: admitted.metadata?.name ?? '', namespace: ns, body: { status: { phase: 'Running' } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)))).toBe(200);
  });
});

describe('task identities outside pods (audit finding 4)', () => {
  it("refuses a namespace editor minting the task identity's tokens, or a legacy token Secret for it", async () => {
    const task = await granted(uniqueName('mint'));
    const serviceAccount = task.status?.grant?.serviceAccount ?? '';
    // What the built-in edit and admin roles hold in a namespace.
    const editor = await userWith(admin, ns, uniqueName('editor'), [
      { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create', 'get'] },
    ]);
    const asEditor = editor.kc.makeApiClient(k8s.CoreV1Api);
    const minted = await refusalMessage(() => asEditor.createNamespacedServiceAccountToken({ name: serviceAccount, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 600 } } }));
    expect(minted).toMatch(new RegExp(`ServiceAccount ${serviceAccount} is a taskgrant task identity: its tokens are minted only by the kubelet`));
    const legacy = await refusalMessage(() =>
      asEditor.createNamespacedSecret({ namespace: ns, body: { metadata: { name: uniqueName('forever'), annotations: { 'kubernetes.io/service-account.name': serviceAccount } }, type: 'kubernetes.io/service-account-token' } }),
    );
    expect(legacy).toMatch(/a legacy token Secret may not name a taskgrant task identity/);
    // Ordinary ServiceAccounts are not the guard's business.
    await tasks.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'plain-robot' } } }).catch(() => undefined);
    expect(await statusOfCall(() => asEditor.createNamespacedServiceAccountToken({ name: 'plain-robot', namespace: ns, body: { spec: { audiences: [], expirationSeconds: 600 } } }))).toBe(200);
  });
});

describe('tasks asking for what no task may hold', () => {
  const rbac = 'rbac.authorization.k8s.io';
  const admission = 'admissionregistration.k8s.io';
  const cases: Array<[string, Array<Record<string, unknown>>, Phase, string | undefined]> = [
    ['bind on roles', [{ apiGroups: [rbac], resources: ['roles', 'clusterroles'], verbs: ['bind'] }], 'Denied', 'forbid-escalation-verbs'],
    ['escalate on clusterroles', [{ apiGroups: [rbac], resources: ['clusterroles'], verbs: ['escalate'] }], 'Denied', 'forbid-escalation-verbs'],
    ['impersonate users and groups', [{ apiGroups: [''], resources: ['users', 'groups'], verbs: ['impersonate'] }], 'Denied', 'forbid-escalation-verbs'],
    ['impersonate serviceaccounts', [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['impersonate'] }], 'Denied', 'forbid-escalation-verbs'],
    ['a token for another ServiceAccount', [{ apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] }], 'Denied', 'forbid-serviceaccount-token'],
    ['creating Roles', [{ apiGroups: [rbac], resources: ['roles'], verbs: ['create'] }], 'Denied', 'forbid-rbac-writes'],
    ['creating RoleBindings', [{ apiGroups: [rbac], resources: ['rolebindings'], verbs: ['create', 'patch'] }], 'Denied', 'forbid-rbac-writes'],
    ['creating ClusterRoleBindings', [{ apiGroups: [rbac], resources: ['clusterrolebindings'], verbs: ['create'] }], 'Denied', 'forbid-rbac-writes'],
    ['writing webhook configurations', [{ apiGroups: [admission], resources: ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations'], verbs: ['update', 'delete'] }], 'Denied', 'forbid-admission-writes'],
    ['writing admission policies', [{ apiGroups: [admission], resources: ['validatingadmissionpolicies', 'validatingadmissionpolicybindings'], verbs: ['create', 'patch'] }], 'Denied', 'forbid-admission-writes'],
    ['approving tasks itself', [{ apiGroups: [group], resources: ['agenttasks'], verbs: ['approve'] }], 'Denied', 'forbid-taskgrant-self-approval'],
    ['writing TaskApprovals', [{ apiGroups: [group], resources: ['taskapprovals'], verbs: ['create'] }], 'Denied', 'forbid-taskgrant-self-approval'],
    ['bind hidden behind a harmless first rule', [readPods, { apiGroups: [rbac], resources: ['roles'], verbs: ['bind'], resourceNames: ['admin'] }], 'Denied', 'forbid-escalation-verbs'],
    ['another namespace without approval', [{ ...readPods, namespace: 'kube-system' }], 'AwaitingApproval', undefined],
    ['Secrets without approval', [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }], 'AwaitingApproval', undefined],
  ];

  it.each(cases)('ends a task asking for %s without creating anything', async (_title, permissions, phase, policy) => {
    const name = uniqueName('greedy');
    const created = await tasks.create(ns, name, { agent: agentName(), intent: intentOf(...permissions) });
    const task = await tasks.waitForPhase(ns, name, phase);
    // A guardrail is final: had an approval been able to unlock it, the phase would be AwaitingApproval.
    expect(task.status?.phase).toBe(phase);
    expect(task.status?.decision?.allowed).toBe(false);
    if (policy) expect(task.status?.decision?.determiningPolicies).toContain(policy);
    if (policy) expect(task.status?.message).toContain(policy);
    await expectNothingGranted(created.metadata.uid);
  });

  it.each([
    ['verbs', { apiGroups: [''], resources: ['pods'], verbs: ['*'] }],
    ['resources', { apiGroups: [''], resources: ['*'], verbs: ['get'] }],
    ['a subresource', { apiGroups: [''], resources: ['pods/*'], verbs: ['get'] }],
    ['apiGroups', { apiGroups: ['*'], resources: ['pods'], verbs: ['get'] }],
    ['resourceNames', { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['db-*'] }],
  ])("refuses '*' in %s at the CRD, so no task exists", async (field, rule) => {
    const name = uniqueName('star');
    const message = await refusalMessage(() => tasks.create(ns, name, { agent: agentName(), intent: intentOf(rule) }));
    expect(message).toMatch(/wildcards are never grantable/);
    expect(message).toContain(field === 'a subresource' ? 'resources' : field);
    expect(await tasks.get(ns, name)).toBeUndefined();
  });
});

describe('from inside a granted task token', () => {
  let holder: Awaited<ReturnType<typeof admittedTaskToken>>;
  const victim = 'victim';

  beforeAll(async () => {
    holder = await admittedTaskToken(uniqueName('inside'));
    await tasks.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: victim } } });
    await tasks.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'db' }, stringData: { password: 'hunter2' } } });
  });

  /** Each refusal must be RBAC saying no to a live token, not a dead token: the grant still works. */
  async function expectStillGranted(): Promise<void> {
    expect(await statusOfCall(() => holder.asTask.listNamespacedPod({ namespace: ns }))).toBe(200);
  }

  it('cannot mint a token for another ServiceAccount, or for its own', async () => {
    for (const name of [victim, holder.serviceAccount]) {
      expect(await statusOfCall(() => holder.asTask.createNamespacedServiceAccountToken({ name, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 600 } } }))).toBe(403);
    }
    await expectStillGranted();
  });

  it('cannot create a pod under another ServiceAccount', async () => {
    const name = uniqueName('escape');
    expect(await statusOfCall(() => holder.asTask.createNamespacedPod({ namespace: ns, body: pod(name, {}, { serviceAccountName: victim }) }))).toBe(403);
    expect(await podExists(ns, name)).toBe(false);
    await expectStillGranted();
  });

  it('cannot create RoleBindings or Roles', async () => {
    const rbacAsTask = holder.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    const binding = {
      metadata: { name: uniqueName('climb') },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
      subjects: [{ kind: 'ServiceAccount', name: holder.serviceAccount, namespace: ns }],
    };
    expect(await statusOfCall(() => rbacAsTask.createNamespacedRoleBinding({ namespace: ns, body: binding }))).toBe(403);
    expect(await statusOfCall(() => rbacAsTask.createClusterRoleBinding({ body: binding }))).toBe(403);
    expect(await statusOfCall(() => rbacAsTask.createNamespacedRole({ namespace: ns, body: { metadata: { name: uniqueName('climb') }, rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }] } }))).toBe(403);
    await expectStillGranted();
  });

  it('cannot read Secrets, or anything outside its namespace', async () => {
    expect(await statusOfCall(() => holder.asTask.readNamespacedSecret({ name: 'db', namespace: ns }))).toBe(403);
    expect(await statusOfCall(() => holder.asTask.listNamespacedSecret({ namespace: ns }))).toBe(403);
    expect(await statusOfCall(() => holder.asTask.listNamespacedPod({ namespace: otherNs }))).toBe(403);
    await expectStillGranted();
  });

  it('cannot impersonate anyone', async () => {
    const impersonations: Array<Record<string, string>> = [
      { 'Impersonate-User': 'kubernetes-admin' },
      { 'Impersonate-User': 'system:admin', 'Impersonate-Group': 'system:masters' },
      { 'Impersonate-User': `system:serviceaccount:${ns}:${victim}` },
      { 'Impersonate-Uid': '00000000-0000-0000-0000-000000000000', 'Impersonate-User': 'someone' },
    ];
    for (const headers of impersonations) {
      const res = await apiServerRequest(admin, { method: 'GET', path: `/api/v1/namespaces/${ns}/pods`, headers }, holder.token);
      expect(res.status).toBe(403);
      expect(res.body).toMatch(/cannot impersonate/);
    }
    await expectStillGranted();
  });

  it('cannot create AgentTasks or TaskApprovals to widen its own access', async () => {
    const customAsTask = holder.kc.makeApiClient(k8s.CustomObjectsApi);
    const wider = { apiVersion: `${group}/${version}`, kind: 'AgentTask', metadata: { name: uniqueName('wider') }, spec: { agent: 'x', intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) } };
    expect(await statusOfCall(() => customAsTask.createNamespacedCustomObject({ group, version, namespace: ns, plural: 'agenttasks', body: wider }))).toBe(403);
    const approval = { apiVersion: `${group}/${version}`, kind: 'TaskApproval', metadata: { name: uniqueName('self') }, spec: { task: holder.task.metadata.name, taskUID: holder.task.metadata.uid, decision: 'Approve' } };
    expect(await statusOfCall(() => customAsTask.createNamespacedCustomObject({ group, version, namespace: ns, plural: 'taskapprovals', body: approval }))).toBe(403);
    await expectStillGranted();
  });
});

describe('approvals', () => {
  let requester: TestUser;
  let approver: TestUser;

  beforeAll(async () => {
    requester = await userWith(admin, ns, uniqueName('req'), [canCreate('agenttasks'), canCreate('taskapprovals'), canApprove]);
    approver = await userWith(admin, ns, uniqueName('appr'), [canCreate('taskapprovals'), canApprove]);
  });

  const createTaskAs = async (who: TestUser, name: string, agent: string, permissions: Array<Record<string, unknown>>): Promise<AgentTask> =>
    (await who.custom.createNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: 'agenttasks',
      body: { apiVersion: `${group}/${version}`, kind: 'AgentTask', metadata: { name }, spec: { agent, intent: intentOf(...permissions) } },
    })) as AgentTask;

  const approveAs = (who: TestUser, task: string, taskUID: string, extra: Record<string, unknown> = {}) =>
    who.custom.createNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: 'taskapprovals',
      body: { apiVersion: `${group}/${version}`, kind: 'TaskApproval', metadata: { name: uniqueName('ok') }, spec: { task, taskUID, decision: 'Approve', reason: 'CHG-1', ...extra } },
    });

  const readSecrets = { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['db'] };

  /** The phase holds for `ms`: nothing the attack did moved it. */
  async function expectPhaseHolds(name: string, phase: Phase, ms = 2_500): Promise<AgentTask> {
    const deadline = Date.now() + ms;
    let task: AgentTask | undefined;
    do {
      task = await tasks.get(ns, name);
      expect(task?.status?.phase).toBe(phase);
      await new Promise((r) => setTimeout(r, 250));
    } while (Date.now() < deadline);
    return task as AgentTask;
  }

  it('never carries an approval over to a task recreated under the same name', async () => {
    const name = uniqueName('replay');
    const agent = agentName();
    const first = await createTaskAs(requester, name, agent, [readSecrets]);
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    await approveAs(approver, name, first.metadata.uid ?? '');
    await tasks.waitForPhase(ns, name, 'Granted');

    await tasks.delete(ns, name);
    await eventually(async () => (await tasks.get(ns, name)) === undefined, 'the first task to be gone');
    const second = await createTaskAs(requester, name, agent, [readSecrets]);
    expect(second.metadata.uid).not.toBe(first.metadata.uid);
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');

    // The old approval is still there, naming the old uid: it must not count.
    const approvals = (await tasks.custom.listNamespacedCustomObject({ group, version, namespace: ns, plural: 'taskapprovals' })) as { items: Array<{ spec: { task: string; taskUID: string } }> };
    expect(approvals.items.some((a) => a.spec.task === name && a.spec.taskUID === first.metadata.uid)).toBe(true);
    // And a new approval naming the old uid is refused outright.
    expect(await refusalMessage(() => approveAs(approver, name, first.metadata.uid ?? ''))).toMatch(/stale/);

    const held = await expectPhaseHolds(name, 'AwaitingApproval');
    expect(held.status?.message).toContain(second.metadata.uid);
    await expectNothingGranted(second.metadata.uid);
  });

  it('refuses self-approval, even with a forged approver', async () => {
    const name = uniqueName('self');
    const task = await createTaskAs(requester, name, agentName(), [readSecrets]);
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    expect(await refusalMessage(() => approveAs(requester, name, task.metadata.uid ?? ''))).toMatch(/cannot approve it/);
    expect(await refusalMessage(() => approveAs(requester, name, task.metadata.uid ?? '', { approver: { username: approver.username } }))).toMatch(/cannot approve it/);
    await expectPhaseHolds(name, 'AwaitingApproval');
    await expectNothingGranted(task.metadata.uid);
  });

  it('refuses an approver whose approve right is in another namespace only', async () => {
    const elsewhere = await userWith(admin, ns, uniqueName('far'), [canCreate('taskapprovals')]);
    const role = uniqueName('far-approve');
    await tasks.rbac.createNamespacedRole({ namespace: otherNs, body: { metadata: { name: role }, rules: [canApprove] } });
    await tasks.rbac.createNamespacedRoleBinding({
      namespace: otherNs,
      body: { metadata: { name: role }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role }, subjects: [{ kind: 'ServiceAccount', name: elsewhere.username.split(':').at(-1) ?? '', namespace: ns }] },
    });
    const name = uniqueName('far');
    const task = await createTaskAs(requester, name, agentName(), [readSecrets]);
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    expect(await refusalMessage(() => approveAs(elsewhere, name, task.metadata.uid ?? ''))).toMatch(/may not approve AgentTasks in namespace/);
    await expectPhaseHolds(name, 'AwaitingApproval', 1_000);
  });

  it('needs approve rights in every namespace an approved task would reach', async () => {
    const name = uniqueName('reach');
    const task = await createTaskAs(requester, name, agentName(), [readPods, { ...readPods, namespace: otherNs }]);
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    // The approver may approve in the task's namespace only: not enough to open up otherNs.
    expect(await refusalMessage(() => approveAs(approver, name, task.metadata.uid ?? ''))).toContain(`asks for access in namespace ${otherNs}`);
    await expectPhaseHolds(name, 'AwaitingApproval', 1_000);
    await expectNothingGranted(task.metadata.uid);

    const role = uniqueName('reach-approve');
    await tasks.rbac.createNamespacedRole({ namespace: otherNs, body: { metadata: { name: role }, rules: [canApprove] } });
    await tasks.rbac.createNamespacedRoleBinding({
      namespace: otherNs,
      body: { metadata: { name: role }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role }, subjects: [{ kind: 'ServiceAccount', name: approver.username.split(':').at(-1) ?? '', namespace: ns }] },
    });
    await eventually(async () => (await statusOfCall(() => approveAs(approver, name, task.metadata.uid ?? ''))) === 200, 'the approval to be accepted once the approver may approve in both namespaces');
    expect((await tasks.waitForPhase(ns, name, 'Granted')).status?.grant?.namespaces).toEqual([ns, otherNs].sort());
  });

  it('never binds a Role someone made first under the grant\'s name (audit finding 13)', async () => {
    const name = uniqueName('squat');
    const task = await createTaskAs(requester, name, agentName(), [readSecrets]);
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    // The names are predictable once the task exists; a namespace admin gets there first.
    const grantName = taskServiceAccountName(name, task.metadata.uid ?? '');
    const squatter = await userWith(admin, ns, uniqueName('squatter'), [
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles'], verbs: ['create'] },
      { apiGroups: [''], resources: ['configmaps', 'secrets'], verbs: ['get', 'list', 'delete'] },
    ]);
    const asSquatter = squatter.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await asSquatter.createNamespacedRole({ namespace: ns, body: { metadata: { name: grantName }, rules: [{ apiGroups: [''], resources: ['configmaps', 'secrets'], verbs: ['get', 'list', 'delete'] }] } });
    await approveAs(approver, name, task.metadata.uid ?? '');
    await tasks.waitForPhase(ns, name, 'Granted');
    const role = await tasks.rbac.readNamespacedRole({ namespace: ns, name: grantName });
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['db'] }]);
    expect(role.metadata?.labels?.['taskgrant.io/task-uid']).toBe(task.metadata.uid);
    // And the grant's token holds exactly that.
    const pod = await createPod(ns, { metadata: { name: `${name}-pod`, labels: { 'taskgrant.io/task': name } }, spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] } });
    const asTask = tasks.asToken(await tasks.mintPodToken(ns, grantName, pod));
    expect(await statusOfCall(() => asTask.listNamespacedConfigMap({ namespace: ns }))).toBe(403);
    expect(await statusOfCall(() => asTask.listNamespacedSecret({ namespace: ns }))).toBe(403);
  });

  it("makes a task identity's new tasks children of its own task, which its requester cannot approve (audit finding 7)", async () => {
    const createTasks = { apiGroups: [group], resources: ['agenttasks'], verbs: ['create'] };
    const parentName = uniqueName('delegator');
    const parent = await createTaskAs(requester, parentName, agentName(), [readPods, { ...readPods, resources: ['configmaps'] }, createTasks]);
    await tasks.waitForPhase(ns, parentName, 'AwaitingApproval');
    await approveAs(approver, parentName, parent.metadata.uid ?? '');
    const grantedParent = await tasks.waitForPhase(ns, parentName, 'Granted');
    const account = grantedParent.status?.grant?.serviceAccount ?? '';
    const agentPod = await createPod(ns, pod(`${parentName}-pod`, { 'taskgrant.io/task': parentName }));
    const asAgent = tokenConfig(admin, await tasks.mintPodToken(ns, account, agentPod)).makeApiClient(k8s.CustomObjectsApi);
    const childBody = (name: string, permissions: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}) => ({
      apiVersion: `${group}/${version}`,
      kind: 'AgentTask',
      metadata: { name },
      spec: { agent: agentName(), intent: intentOf(...permissions), ...extra },
    });
    const createAsAgent = (body: ReturnType<typeof childBody>) => asAgent.createNamespacedCustomObject({ group, version, namespace: ns, plural: 'agenttasks', body });

    // No parentTask named: it becomes a child of the agent's own task, and narrows it.
    const childName = uniqueName('child');
    // 409: an earlier attempt landed (the token's RBAC may take a moment to be seen first).
    await eventually(async () => [200, 409].includes(await statusOfCall(() => createAsAgent(childBody(childName, [readPods])))), "the agent's task token to create a task");
    const child = await tasks.waitForPhase(ns, childName, 'Granted');
    expect(child.spec.parentTask).toBe(parentName);
    expect(child.spec.requester?.username).toBe(`system:serviceaccount:${ns}:${account}`);
    expect(Date.parse(child.status?.grant?.expiresAt ?? '')).toBeLessThanOrEqual(Date.parse(grantedParent.status?.grant?.expiresAt ?? ''));
    // Another parent is refused; asking for what its own task was not granted is Denied.
    expect(await refusalMessage(() => createAsAgent(childBody(uniqueName('elsewhere'), [readPods], { parentTask: 'someone-else' })))).toMatch(`spec.parentTask must be ${parentName}`);
    const greedy = uniqueName('greedy');
    await createAsAgent(childBody(greedy, [readSecrets]));
    expect((await tasks.waitForPhase(ns, greedy, 'Denied')).status?.reason).toBe('DelegationExceedsParent');

    // A child that needs an approval: the human behind the agent is not an independent approver.
    const writer = uniqueName('writer');
    const writing = (await createAsAgent(childBody(writer, [createTasks]))) as AgentTask;
    await tasks.waitForPhase(ns, writer, 'AwaitingApproval');
    await approveAs(requester, writer, writing.metadata.uid ?? '');
    await eventually(async () => ((await tasks.get(ns, writer))?.status?.message ?? '').includes(`requested task ${parentName}`) || undefined, 'the approval by the parent task requester to be refused');
    await expectPhaseHolds(writer, 'AwaitingApproval', 1_000);
    await approveAs(approver, writer, writing.metadata.uid ?? '');
    await tasks.waitForPhase(ns, writer, 'Granted');
  });

  it("re-checks the approver's right when granting: an approval whose approver lost it does not count (audit finding 2)", async () => {
    const fickle = await userWith(admin, ns, uniqueName('fickle'), [canCreate('taskapprovals'), canApprove]);
    // A child waits for its parent; meanwhile it is approved, and the approver then loses the right.
    const parentName = uniqueName('slow-parent');
    const parent = await createTaskAs(requester, parentName, agentName(), [readSecrets]);
    await tasks.waitForPhase(ns, parentName, 'AwaitingApproval');
    const childName = uniqueName('lapsed');
    const child = (await requester.custom.createNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: 'agenttasks',
      body: { apiVersion: `${group}/${version}`, kind: 'AgentTask', metadata: { name: childName }, spec: { agent: agentName(), parentTask: parentName, intent: intentOf(readSecrets) } },
    })) as AgentTask;
    await eventually(async () => ((await tasks.get(ns, childName))?.status?.reason === 'WaitingForParent') || undefined, 'the child to wait for its parent');
    await approveAs(fickle, childName, child.metadata.uid ?? '');
    await tasks.rbac.deleteNamespacedRoleBinding({ namespace: ns, name: fickle.username.split(':').at(-1) ?? '' });
    const authz = admin.makeApiClient(k8s.AuthorizationV1Api);
    const fickleMayApprove = async () =>
      (await authz.createSubjectAccessReview({ body: { spec: { user: fickle.username, groups: ['system:serviceaccounts', 'system:authenticated'], resourceAttributes: { namespace: ns, verb: 'approve', group, resource: 'agenttasks' } } } })).status?.allowed === true;
    await eventually(async () => !(await fickleMayApprove()) || undefined, "the API server to drop the approver's right");

    await approveAs(approver, parentName, parent.metadata.uid ?? '');
    await tasks.waitForPhase(ns, parentName, 'Granted');
    await eventually(async () => ((await tasks.get(ns, childName))?.status?.message ?? '').includes(`approval by ${fickle.username} does not count`) || undefined, 'the lapsed approval to be refused');
    await expectPhaseHolds(childName, 'AwaitingApproval', 1_000);
    await expectNothingGranted(child.metadata.uid);
  });

  it('records a transition whose predictable Event names someone created first (audit finding 8)', async () => {
    const squatter = await userWith(admin, ns, uniqueName('event-squatter'), [{ apiGroups: [''], resources: ['events'], verbs: ['create'] }]);
    const asSquatter = squatter.kc.makeApiClient(k8s.CoreV1Api);
    const name = uniqueName('audited');
    const task = await createTaskAs(requester, name, agentName(), [readSecrets]);
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    const uid = task.metadata.uid ?? '';
    // Every Event name that can be derived from the task alone, taken before the task is granted.
    for (const phase of ['granted', 'active', 'revoked', 'expired', 'completed']) {
      await asSquatter.createNamespacedEvent({
        namespace: ns,
        body: { metadata: { name: `${name}.${uid.slice(0, 8)}.${phase}` }, involvedObject: { apiVersion: `${group}/${version}`, kind: 'AgentTask', name, namespace: ns, uid }, reason: 'Nothing', message: 'nothing happened', type: 'Normal' },
      });
    }
    await approveAs(approver, name, uid);
    await tasks.waitForPhase(ns, name, 'Granted');
    const grantedLine = (l: string) => l.includes(`"uid":"${uid}"`) && l.includes('"audit":true') && l.includes('"to":"Granted"');
    await eventually(async () => readFileSync(operator.logFile, 'utf8').split('\n').some(grantedLine), 'the Granted audit line');
    const ours = await eventually(async () => {
      const list = await tasks.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.uid=${uid}` });
      const found = list.items.filter((e) => e.reportingComponent === 'taskgrant.io/controller' && e.reason === 'PolicyAllowed');
      return found.length > 0 ? found : undefined;
    }, "taskgrant's own Granted Event");
    expect(ours).toHaveLength(1);
  });

  it('changes nothing when approving a task that already ended', async () => {
    const denied = uniqueName('ended-denied');
    const deniedTask = await createTaskAs(requester, denied, agentName(), [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['create'] }]);
    await tasks.waitForPhase(ns, denied, 'Denied');
    const revoked = uniqueName('ended-revoked');
    const revokedTask = await createTaskAs(requester, revoked, agentName(), [readPods]);
    await tasks.waitForPhase(ns, revoked, 'Granted');
    await tasks.annotate(ns, revoked, { 'taskgrant.io/revoke': 'done' });
    await tasks.waitForPhase(ns, revoked, 'Revoked');

    for (const task of [deniedTask, revokedTask]) {
      // Whether the webhook admits the approval or not, the terminal phase must not move.
      await statusOfCall(() => approveAs(approver, task.metadata.name, task.metadata.uid ?? ''));
    }
    await expectPhaseHolds(denied, 'Denied');
    await expectPhaseHolds(revoked, 'Revoked', 500);
    await expectNothingGranted(deniedTask.metadata.uid);
    await expectNothingGranted(revokedTask.metadata.uid);
  });
});

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
