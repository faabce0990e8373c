// Attacks on a task's identity, each tried with real credentials against the real API server:
// borrowing it, forging its status, minting its tokens outside pods, asking for more than a task
// may hold, and climbing out of a granted token.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { agentName, attackKit, group, pod, version } from './harness/attack-kit.js';
import { eventually, refusalMessage, statusOfCall, uniqueName } from './harness/kube.js';
import { type TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { apiServerRequest, canCreate, userWith } from './harness/security.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import { taskServiceAccountName, type AgentTask, type Phase } from '../src/api/index.js';

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

const { createPod, podExists, granted, admittedTaskToken, expectNothingGranted } = attackKit(() => ({ admin, tasks, ns }));

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
