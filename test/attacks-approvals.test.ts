// Attacks on approvals and delegation, with real credentials: replayed and self-approvals,
// approvers without the right (or who lost it), tasks created by task identities, squatted
// Roles and audit Events.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { agentName, attackKit, group, pod, version } from './harness/attack-kit.js';
import { eventually, refusalMessage, statusOfCall, tokenConfig, uniqueName } from './harness/kube.js';
import { type TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { canApprove, canCreate, userWith, type TestUser } from './harness/security.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import { taskServiceAccountName, type AgentTask, type Phase } from '../src/api/index.js';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;
let otherNs: string;

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns, otherNs] } = await startOperatorSuite(['atkap', 'atkap-other']));
});

afterAll(async () => {
  await operator?.stop();
});

const { createPod, expectNothingGranted } = attackKit(() => ({ admin, tasks, ns }));

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
