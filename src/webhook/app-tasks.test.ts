// The webhook app's AgentTask and TaskApproval routes: stamping the requester and the approver,
// and checking who may approve (shared setup in app.test-support.ts).
import { beforeEach, describe, expect, it } from '@jest/globals';
import type { AdmissionResponse } from './admission.js';
import { decodePatch, liveTask, review, type Json } from './fixtures/kit.js';
import { admit, cluster, decisions, expectDenied, logLines, patched, start, startAppForEachTest, type Review } from './app.test-support.js';

startAppForEachTest();

describe('POST /mutate/agenttasks', () => {
  it('overwrites a forged requester with the authenticated caller', async () => {
    const r = review('agenttask-create-forged-requester');
    const response = await admit('/mutate/agenttasks', r);
    expect(decodePatch(response.patch)).toEqual([
      {
        op: 'add',
        path: '/spec/requester',
        value: {
          username: 'system:serviceaccount:team-a:orchestrator',
          uid: '8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a',
          groups: ['system:serviceaccounts', 'system:serviceaccounts:team-a', 'system:authenticated'],
          podName: 'orchestrator-5c9d7f6b8-kq2xz',
        },
      },
    ]);
    const task = patched<{ spec: { requester: unknown; agent: string }; metadata: { finalizers?: string[] } }>(r, response);
    expect(task.spec.agent).toBe('log-summarizer');
    // No finalizer at birth: the controller adds it before it binds anything.
    expect(task.metadata.finalizers).toBeUndefined();
    // userInfo.extra carries a credential id: it must reach neither the object nor the logs.
    expect(JSON.stringify(task)).not.toMatch(/JTI=/);
    expect(logLines.join('')).not.toMatch(/JTI=|credential-id/);
  });

  it('adds a requester to a manifest without one, omitting podName for a non-pod caller', async () => {
    const r = review('agenttask-create-forged-requester');
    delete (r.request.object.spec as Record<string, Json>).requester;
    r.request.userInfo = { username: 'alice@example.com', groups: ['team-a-devs'] };
    const task = patched<{ spec: { requester: unknown } }>(r, await admit('/mutate/agenttasks', r));
    expect(task.spec.requester).toEqual({ username: 'alice@example.com', groups: ['team-a-devs'] });
  });

  it('refuses a caller without a username and a task without spec', async () => {
    const anonymous = review('agenttask-create-forged-requester');
    anonymous.request.userInfo = {};
    expectDenied(await admit('/mutate/agenttasks', anonymous), /no authenticated username/);
    const noSpec = review('agenttask-create-forged-requester');
    delete noSpec.request.object.spec;
    expectDenied(await admit('/mutate/agenttasks', noSpec), 'AgentTask spec is required');
  });

  it('refuses an object of another kind sent to this path', async () => {
    expectDenied(await admit('/mutate/agenttasks', review('taskapproval-create')), /stamps AgentTask objects, not TaskApproval/);
  });

  it("makes a task identity's new task a child of its own task (audit finding 7)", async () => {
    cluster.managedAccounts.set('team-a/tg-root-0a1b2c3d', 'root');
    const r = review('agenttask-create-forged-requester');
    r.request.userInfo = { username: 'system:serviceaccount:team-a:tg-root-0a1b2c3d', groups: ['system:serviceaccounts'] };
    const task = patched<{ spec: { parentTask?: string } }>(r, await admit('/mutate/agenttasks', r));
    expect(task.spec.parentTask).toBe('root');
    // Naming another parent, another namespace, or an unknown tg-* account: refused.
    (r.request.object.spec as Record<string, Json>).parentTask = 'someone-else';
    expectDenied(await admit('/mutate/agenttasks', r), /spec.parentTask must be root/);
    delete (r.request.object.spec as Record<string, Json>).parentTask;
    r.request.namespace = 'team-b';
    expectDenied(await admit('/mutate/agenttasks', r), /only in its own namespace team-a, as children of task root/);
    r.request.namespace = 'team-a';
    r.request.userInfo = { username: 'system:serviceaccount:team-a:tg-unknown-12345678' };
    expectDenied(await admit('/mutate/agenttasks', r), /belongs to no task taskgrant knows/);
  });

  it('does not patch UPDATEs', async () => {
    const r = review('agenttask-create-forged-requester');
    r.request.operation = 'UPDATE';
    r.request.oldObject = r.request.object;
    expect(await admit('/mutate/agenttasks', r)).toEqual({ uid: r.request.uid, allowed: true });
  });
});

describe('TaskApproval admission', () => {
  beforeEach(() => {
    cluster.addTask(liveTask('AwaitingApproval'));
    cluster.approvers.add('team-a/bob@example.com');
  });

  /** Runs the recorded create through the mutating webhook, then the validating one, like the API server. */
  async function approve(r: Review): Promise<AdmissionResponse> {
    const mutated = await admit('/mutate/taskapprovals', r);
    const stamped = structuredClone(r);
    stamped.request.object = patched(r, mutated);
    return admit('/validate/taskapprovals', stamped);
  }

  it('stamps the approver over a forged one', async () => {
    const r = review('taskapproval-create');
    const approval = patched<{ spec: { approver: unknown } }>(r, await admit('/mutate/taskapprovals', r));
    expect(approval.spec.approver).toEqual({ username: 'bob@example.com', uid: 'oidc:19bd33', groups: ['sre-oncall', 'system:authenticated'] });
  });

  it('admits an approval by a permitted caller, asking with the full userInfo', async () => {
    const response = await approve(review('taskapproval-create'));
    expect(response).toEqual({ uid: review('taskapproval-create').request.uid, allowed: true });
    expect(cluster.reviews).toEqual([{ namespace: 'team-a', user: review('taskapproval-create').request.userInfo }]);
    expect(logLines.join('')).not.toMatch(/X509SHA256|credential-id/);
  });

  it('refuses when the task does not exist', async () => {
    cluster.tasks.clear();
    expectDenied(await approve(review('taskapproval-create')), 'AgentTask team-a/summarize-errors not found');
  });

  it('refuses a stale task uid without revealing the current one', async () => {
    cluster.addTask({ ...liveTask('AwaitingApproval'), metadata: { name: 'summarize-errors', namespace: 'team-a', uid: 'a1b2c3d4-0000-4000-8000-000000000000' } });
    const response = await approve(review('taskapproval-create'));
    expectDenied(response, /spec.taskUID 0f6a1c2e-5b7d-4e8a-9c3f-2d1e0b9a8c7d is stale: .*approvals never carry over to a recreated task/);
    expect(response.status?.message).not.toMatch(/a1b2c3d4/);
  });

  it('refuses the requester approving their own task', async () => {
    const r = review('taskapproval-create');
    r.request.userInfo = { username: 'alice@example.com', groups: ['team-a-devs'] };
    cluster.approvers.add('team-a/alice@example.com');
    expectDenied(await approve(r), 'alice@example.com requested AgentTask team-a/summarize-errors and cannot approve it');
    expect(cluster.reviews).toEqual([]);
  });

  it('refuses when the task has no recorded requester', async () => {
    const task = liveTask('AwaitingApproval');
    delete task.spec.requester;
    cluster.addTask(task);
    expectDenied(await approve(review('taskapproval-create')), /has no recorded requester/);
  });

  it('refuses a caller without approve on agenttasks', async () => {
    cluster.approvers.clear();
    expectDenied(await approve(review('taskapproval-create')), 'bob@example.com may not approve AgentTasks in namespace team-a: it needs verb approve on agenttasks.taskgrant.io');
    expect(cluster.reviews).toHaveLength(1);
  });

  it('refuses an approver the mutating webhook did not stamp', async () => {
    // The fixture still carries the forged approver (alice) because /mutate/taskapprovals is skipped.
    expectDenied(await admit('/validate/taskapprovals', review('taskapproval-create')), /spec.approver does not match the caller/);
  });

  it('refuses an invalid approval', async () => {
    const r = review('taskapproval-create');
    (r.request.object.spec as Record<string, Json>).decision = 'Maybe';
    expectDenied(await approve(r), 'invalid TaskApproval: spec.decision must be Approve or Deny');
  });

  it('fails closed when the access review fails', async () => {
    cluster.reviewFailure = new Error('connect ECONNREFUSED 10.96.0.1:443');
    const response = await approve(review('taskapproval-create'));
    expectDenied(response, /internal error in validate-taskapprovals/, 500);
    expect(response.status?.message).not.toMatch(/10\.96/);
    expect(await decisions('validate-taskapprovals', 'error')).toBe(1);
  });

  it('fails closed, and answers, when the access review hangs', async () => {
    cluster.reviewHangs = true;
    await start({ handlerTimeoutMs: 50 });
    const started = Date.now();
    expectDenied(await approve(review('taskapproval-create')), /within 50 ms \(validate-taskapprovals\)/, 500);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('refuses an UPDATE that changes spec and allows one that does not', async () => {
    const r = review('taskapproval-create');
    r.request.operation = 'UPDATE';
    r.request.oldObject = structuredClone(r.request.object);
    (r.request.object.metadata as Record<string, Json>).labels = { team: 'sre' };
    expect((await admit('/validate/taskapprovals', r)).allowed).toBe(true);
    (r.request.object.spec as Record<string, Json>).decision = 'Deny';
    expectDenied(await admit('/validate/taskapprovals', r), /spec is immutable/);
  });
});
