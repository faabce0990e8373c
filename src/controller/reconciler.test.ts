// The reconciler against in-memory fakes and the real default policies: requests, from the
// decision to the grant. Delegation is in reconciler-delegation.test.ts; revocation, retention and
// metrics in reconciler-revocation.test.ts; the shared setup in reconciler.test-support.ts.
import { describe, expect, it } from '@jest/globals';
import type { PolicyEngine } from '../policy/index.js';
import { taskServiceAccountName } from '../api/index.js';
import type { RoleBindingObject, RoleObject } from '../kube/objects.js';
import { taskFixture } from './fakes.test-support.js';
import { approvalOf, approvedByAlice, engine, loadDefaultPolicies, setup } from './reconciler.test-support.js';

loadDefaultPolicies();

describe('Reconciler: requests', () => {
  it('grants: finalizer first, then ServiceAccount, Role, RoleBinding, then status; timer at expiry', async () => {
    const { cluster, run, requeues, ledger } = setup();
    const task = cluster.put(taskFixture('read'));
    const after = await run(task);
    expect(cluster.writes.slice(0, 5)).toEqual([
      'finalizers [taskgrant.io/revoke-grant]',
      expect.stringMatching(/^create ServiceAccount team-a\/tg-read-/),
      expect.stringMatching(/^create Role team-a\/tg-read-/),
      expect.stringMatching(/^create RoleBinding team-a\/tg-read-/),
      'status Granted',
    ]);
    expect(after?.status?.grant?.expiresAt).toBe('2026-11-22T10:15:00.000Z');
    expect(requeues).toContainEqual(['team-a/read', 15 * 60_000]);
    expect(await ledger.entries('team-a', 'log-summarizer')).toHaveLength(1);
    expect(cluster.events.map((e) => e.reason)).toEqual(['PolicyAllowed']);
  });

  it('makes no RoleBinding before the finalizer is written: a task deleted meanwhile leaves nothing usable', async () => {
    const { cluster, run } = setup();
    const task = cluster.put(taskFixture('unheld'));
    cluster.failFinalizerWrites = true;
    await expect(run(task)).rejects.toThrow(/reconciling task team-a\/unheld/);
    expect([...cluster.objects.values()].map((o) => o.kind)).not.toContain('RoleBinding');
    expect(cluster.task('team-a', 'unheld')?.status?.phase).toBeUndefined();
    cluster.failFinalizerWrites = false;
    expect((await run(cluster.task('team-a', 'unheld')!))?.status?.phase).toBe('Granted');
  });

  it('never writes Granted when the ledger entry was not written, and the retry grants once', async () => {
    const { cluster, run, ledger } = setup();
    const task = cluster.put(taskFixture('lost-entry'));
    ledger.failAppends = true;
    await expect(run(task)).rejects.toThrow(/reconciling task team-a\/lost-entry/);
    expect(cluster.task('team-a', 'lost-entry')?.status?.phase).toBeUndefined();
    expect(cluster.writes).not.toContain('status Granted');
    ledger.failAppends = false;
    const after = await run(cluster.task('team-a', 'lost-entry')!);
    expect(after?.status?.phase).toBe('Granted');
    expect(await ledger.entries('team-a', 'log-summarizer')).toHaveLength(1);
    expect([...cluster.objects.values()].map((o) => o.kind).sort()).toEqual(['Role', 'RoleBinding', 'ServiceAccount']);
  });

  it('removes what a failed attempt left when the retry is denied', async () => {
    let deny = false;
    const policy = {
      get ready() {
        return engine.ready;
      },
      get revision() {
        return engine.revision;
      },
      evaluate: (input: Parameters<PolicyEngine['evaluate']>[0]) =>
        deny ? { type: 'deny' as const, revision: engine.revision ?? '', reason: 'the agent asked too often', determiningPolicies: ['test'], errors: [], tuples: [], approvalWouldAllow: false } : engine.evaluate(input),
    };
    const { cluster, run, ledger } = setup(policy);
    const task = cluster.put(taskFixture('left-over'));
    ledger.failAppends = true;
    await expect(run(task)).rejects.toThrow();
    expect(cluster.objects.size).toBe(3); // written beside the lost ledger entry
    ledger.failAppends = false;
    deny = true;
    const after = await run(cluster.task('team-a', 'left-over')!);
    expect(after?.status?.phase).toBe('Denied');
    expect(cluster.objects.size).toBe(0);
    expect(await ledger.entries('team-a', 'log-summarizer')).toHaveLength(0);
  });

  it('is idempotent: a second reconcile of a granted task writes nothing', async () => {
    const { cluster, run } = setup();
    const task = cluster.put(taskFixture('twice'));
    await run(task);
    const writes = cluster.writes.length;
    await run(cluster.task('team-a', 'twice')!);
    expect(cluster.writes.length).toBe(writes);
  });

  it('denies a forbidden request and creates nothing', async () => {
    const { cluster, run } = setup();
    const task = cluster.put(taskFixture('bind', { intent: { objective: 'x', permissions: [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], verbs: ['bind'] }] } }));
    const after = await run(task);
    expect(after?.status?.phase).toBe('Denied');
    expect(after?.status?.reason).toBe('PolicyDenied');
    expect(cluster.objects.size).toBe(0);
    expect(after?.metadata.finalizers).toBeUndefined();
    // A denial is its status (and Event): no finalizer is added, so none has to be released.
    expect(cluster.writes).toEqual(['status Denied']);
  });

  it('is idempotent across namespaces too: objects in another namespace carry no owner reference and are left alone', async () => {
    const { cluster, run } = setup();
    const task = cluster.put(taskFixture('wide', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, { apiGroups: [''], resources: ['pods'], verbs: ['get'], namespace: 'team-b' }] } }));
    expect((await run(task))?.status?.phase).toBe('AwaitingApproval');
    cluster.approvals.push(approvedByAlice(task));
    expect((await run(cluster.task('team-a', 'wide')!))?.status?.phase).toBe('Granted');
    const writes = cluster.writes.length;
    await run(cluster.task('team-a', 'wide')!);
    await run(cluster.task('team-a', 'wide')!);
    expect(cluster.writes.slice(writes)).toEqual([]);
    expect([...cluster.objects.keys()].filter((k) => k.includes('/team-b/')).sort()).toEqual([expect.stringMatching(/^Role\/team-b\//), expect.stringMatching(/^RoleBinding\/team-b\//)]);
  });

  it('holds what approval would allow, then grants once approved', async () => {
    const { cluster, run } = setup();
    const task = cluster.put(taskFixture('secret', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } }));
    expect((await run(task))?.status?.phase).toBe('AwaitingApproval');
    cluster.approvals.push(approvedByAlice(task));
    const granted = await run(cluster.task('team-a', 'secret')!);
    expect(granted?.status?.phase).toBe('Granted');
    expect(granted?.status?.approval?.username).toBe('alice');
  });

  it("re-checks the approver's right at grant time: an approver who lost it does not count (audit finding 2)", async () => {
    const { cluster, run, approvers } = setup();
    const task = cluster.put(taskFixture('secret', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } }));
    expect((await run(task))?.status?.phase).toBe('AwaitingApproval');
    approvers.rights.set('alice', new Set(['team-b']));
    cluster.approvals.push(approvedByAlice(task));
    const waiting = await run(cluster.task('team-a', 'secret')!);
    expect(waiting?.status?.phase).toBe('AwaitingApproval');
    expect(waiting?.status?.message).toMatch(/approval by alice does not count: alice may not approve AgentTasks in namespace team-a/);
    expect(approvers.asked).toContain('alice@team-a');
    expect([...cluster.objects.keys()]).toEqual([]);
    approvers.rights.set('alice', new Set(['team-a']));
    expect((await run(cluster.task('team-a', 'secret')!))?.status?.phase).toBe('Granted');
  });

  it('asks for the right to approve in every namespace the task reaches', async () => {
    const { cluster, run, approvers } = setup();
    const task = cluster.put(taskFixture('wide', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], namespace: 'team-b' }] } }));
    approvers.rights.set('alice', new Set(['team-a']));
    cluster.approvals.push(approvedByAlice(task));
    const waiting = await run(task);
    expect(waiting?.status?.phase).toBe('AwaitingApproval');
    expect(waiting?.status?.message).toMatch(/may not approve AgentTasks in namespace team-b/);
  });

  it('never counts an approval by whoever requested the task or a task it was delegated from (audit finding 7)', async () => {
    const { cluster, run, approvers } = setup();
    approvers.rights.set('bob', new Set(['*']));
    const secrets = { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] };
    const root = cluster.put(taskFixture('root', { requester: { username: 'alice' }, intent: secrets }));
    cluster.approvals.push(approvalOf(root, 'alice', 'by-alice'));
    const self = await run(root);
    expect(self?.status?.phase).toBe('AwaitingApproval');
    expect(self?.status?.message).toMatch(/approval by alice does not count: alice requested this task/);
    cluster.approvals.push(approvalOf(root, 'bob', 'by-bob'));
    expect((await run(cluster.task('team-a', 'root')!))?.status?.phase).toBe('Granted');
    // The granted agent asks for a child: alice, the human behind it, is no independent approver.
    const child = cluster.put(taskFixture('child', { parentTask: 'root', requester: { username: `system:serviceaccount:team-a:${taskServiceAccountName('root', root.metadata.uid ?? '')}` }, intent: secrets }));
    cluster.approvals.push(approvalOf(child, 'alice', 'child-by-alice'));
    const waiting = await run(child);
    expect(waiting?.status?.phase).toBe('AwaitingApproval');
    expect(waiting?.status?.message).toMatch(/alice requested task root, which this task was delegated from/);
    cluster.approvals.push(approvalOf(child, 'bob', 'child-by-bob'));
    expect((await run(cluster.task('team-a', 'child')!))?.status?.phase).toBe('Granted');
  });

  it("decides on the namespace's sensitivity floor when the requester declares less (audit finding 14)", async () => {
    const { cluster, run } = setup();
    cluster.sensitivityLabels.set('team-a', 'restricted');
    const task = cluster.put(taskFixture('liar', { intent: { objective: 'x', sensitivity: 'public', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] } }));
    const decided = await run(task);
    expect(decided?.status?.phase).not.toBe('Granted');
    expect([...cluster.objects.keys()]).toEqual([]);
    // The same task where no floor is set is granted: the label made the difference.
    const control = cluster.put(taskFixture('honest', { intent: { objective: 'x', sensitivity: 'public', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] } }, 'team-c'));
    expect((await run(control))?.status?.phase).toBe('Granted');
  });

  it('ignores an approval that names another uid (a recreated task)', async () => {
    const { cluster, run } = setup();
    const task = cluster.put(taskFixture('stale', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } }));
    cluster.approvals.push({
      apiVersion: 'taskgrant.io/v1alpha1',
      kind: 'TaskApproval',
      metadata: { name: 'old', namespace: 'team-a' },
      spec: { task: 'stale', taskUID: 'some-older-uid', decision: 'Approve' },
    });
    expect((await run(task))?.status?.phase).toBe('AwaitingApproval');
  });

  it('stays Pending, granting nothing, while policies are not loaded', async () => {
    const notReady = { ready: false, revision: undefined, evaluate: () => ({ type: 'error' as const, revision: undefined, reason: 'not loaded', errors: [] }) };
    const { cluster, run, requeues } = setup(notReady);
    const after = await run(cluster.put(taskFixture('early')));
    expect(after?.status?.phase).toBe('Pending');
    expect(after?.status?.reason).toBe('PolicyUnavailable');
    expect(cluster.objects.size).toBe(0);
    expect(requeues).toContainEqual(['team-a/early', 5_000]);
  });

  it('treats a throwing policy engine as a deny, never a grant', async () => {
    const throwing = { ready: true, revision: 'r1', evaluate: () => { throw new Error('wasm trap'); } };
    const { cluster, run } = setup(throwing);
    const after = await run(cluster.put(taskFixture('trap')));
    expect(after?.status?.phase).toBe('Pending');
    expect(after?.status?.message).toMatch(/wasm trap/);
    expect(cluster.objects.size).toBe(0);
  });

  it("denies anything in the operator's own namespace, even approved", async () => {
    const { cluster, run } = setup();
    const task = cluster.put(taskFixture('keys', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'], namespace: 'taskgrant-system' }] } }));
    const after = await run(task);
    expect(after?.status?.phase).toBe('Denied');
    expect(after?.status?.reason).toBe('OperatorNamespace');
    expect(cluster.objects.size).toBe(0);
  });

  it('grants on the first attempt when the API server checks each RoleBinding against its Role (the operator may not bind)', async () => {
    const { cluster, run } = setup();
    cluster.checkBindingsAgainstRoles = true;
    const after = await run(cluster.put(taskFixture('bound')));
    expect(after?.status?.phase).toBe('Granted');
    const creates = cluster.writes.filter((w) => w.startsWith('create '));
    expect(creates.findIndex((w) => w.startsWith('create Role '))).toBeGreaterThanOrEqual(0);
    expect(creates.findIndex((w) => w.startsWith('create RoleBinding '))).toBeGreaterThan(creates.findIndex((w) => w.startsWith('create Role ')));
  });

  it('never adopts objects someone made first under the grant\'s names: rules, binding and marks are made ours', async () => {
    const { cluster, run } = setup();
    const task = cluster.put(taskFixture('squat'));
    const name = taskServiceAccountName('squat', task.metadata.uid ?? '');
    const ns = 'team-a';
    // Made by someone allowed to create Roles and RoleBindings in team-a, before the operator.
    cluster.objects.set(`ServiceAccount/${ns}/${name}`, { kind: 'ServiceAccount', object: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns, resourceVersion: '7' } } });
    cluster.objects.set(`Role/${ns}/${name}`, {
      kind: 'Role',
      object: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: ns, resourceVersion: '8' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] }] },
    });
    cluster.objects.set(`RoleBinding/${ns}/${name}`, {
      kind: 'RoleBinding',
      object: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name, namespace: ns, resourceVersion: '9' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
        subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
      },
    });
    expect((await run(task))?.status?.phase).toBe('Granted');
    const role = cluster.objects.get(`Role/${ns}/${name}`)?.object as RoleObject;
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }]);
    const binding = cluster.objects.get(`RoleBinding/${ns}/${name}`)?.object as RoleBindingObject;
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name });
    for (const kind of ['ServiceAccount', 'Role', 'RoleBinding']) {
      const object = cluster.objects.get(`${kind}/${ns}/${name}`)?.object;
      expect({ kind, uid: object?.metadata.labels?.['taskgrant.io/task-uid'], owner: (object?.metadata.ownerReferences as { uid: string }[] | undefined)?.[0]?.uid }).toEqual({ kind, uid: task.metadata.uid, owner: task.metadata.uid });
    }
    expect(cluster.writes.filter((w) => w.startsWith('replace ') || w.startsWith('delete '))).toEqual([
      `replace ServiceAccount ${ns}/${name}`,
      `replace Role ${ns}/${name}`,
      `delete RoleBinding ${ns}/${name}`,
    ]);
  });

  it('never grants on a status it did not write: a forged Granted is revoked and nothing is created (audit finding 1)', async () => {
    const { cluster, run } = setup();
    // Secrets need an approval; whoever may write agenttasks/status writes Granted instead.
    const denied = taskFixture('forged', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } });
    const issuedAt = new Date('2026-11-22T10:00:00Z');
    const forged = cluster.put({
      ...denied,
      metadata: { ...denied.metadata, finalizers: ['taskgrant.io/revoke-grant'] },
      status: {
        phase: 'Granted',
        reason: 'PolicyAllowed',
        grant: { serviceAccount: 'tg-forged-x', role: 'tg-forged-x', roleBinding: 'tg-forged-x', namespaces: ['team-a'], issuedAt: issuedAt.toISOString(), expiresAt: '2099-01-01T00:00:00Z', pods: [] },
        decision: { allowed: true, determiningPolicies: [], errors: [], policyRevision: engine.revision ?? '', evaluatedAt: '2026-11-22T10:00:00Z' },
        approval: { username: 'nobody', reason: 'forged', approvedAt: issuedAt.toISOString(), approval: 'none' },
      },
    });
    const after = await run(forged);
    expect(after?.status?.phase).toBe('Revoked');
    expect(after?.status?.reason).toBe('GrantUnverified');
    expect(after?.status?.message).toMatch(/no grant to this task is recorded in the ledger/);
    expect(cluster.writes.filter((w) => w.startsWith('create '))).toEqual([]);
  });

  it('revokes a live grant whose named approval is not a TaskApproval of this uid', async () => {
    const { cluster, run, ledger } = setup();
    const task = taskFixture('unapproved', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } });
    const issuedAt = Date.parse('2026-11-22T10:00:00Z');
    await ledger.append('team-a', 'log-summarizer', { uid: task.metadata.uid ?? '', task: task.metadata.name, at: issuedAt, ttlSeconds: 900 });
    const live = cluster.put({
      ...task,
      status: {
        phase: 'Granted',
        grant: { serviceAccount: 'tg-x', role: 'tg-x', roleBinding: 'tg-x', namespaces: ['team-a'], issuedAt: new Date(issuedAt).toISOString(), expiresAt: new Date(issuedAt + 900_000).toISOString(), pods: [] },
        decision: { allowed: true, determiningPolicies: [], errors: [], policyRevision: engine.revision ?? '', evaluatedAt: '2026-11-22T10:00:00Z' },
        approval: { username: 'alice', reason: 'forged', approvedAt: new Date(issuedAt).toISOString(), approval: 'gone' },
      },
    });
    const after = await run(live);
    expect(after?.status?.reason).toBe('GrantUnverified');
    expect(after?.status?.message).toMatch(/policy does not allow it without an approval of this uid/);
  });

  it('fails a grant the API server refuses as above the ceiling and leaves nothing', async () => {
    const { cluster, run } = setup();
    cluster.refuseRoles = true;
    const after = await run(cluster.put(taskFixture('ceiling')));
    expect(after?.status?.phase).toBe('Failed');
    expect(after?.status?.reason).toBe('CeilingExceeded');
    expect(cluster.objects.size).toBe(0);
  });
});
