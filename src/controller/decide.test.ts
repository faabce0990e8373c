// Deciding without a cluster: the prechecks and what each policy outcome plans.
import { describe, expect, it } from '@jest/globals';
import { MAX_DELEGATION_DEPTH, type AgentTask, type TaskApproval } from '../api/index.js';
import type { Decision } from '../policy/index.js';
import { plan, precheck, widerThanParent, type PolicyDecider } from './decide.js';
import { taskFixture } from './fakes.test-support.js';

const live = (task: AgentTask): AgentTask => ({ ...task, status: { phase: 'Granted' } });
const facts = (task: AgentTask, more: Partial<Parameters<typeof precheck>[0]> = {}) => ({ task, parent: undefined, depth: 0, approval: undefined, operatorNamespace: 'taskgrant-system', ...more });

function decider(decision: Partial<Decision> & Pick<Decision, 'type'>): PolicyDecider {
  const full = { revision: 'r1', reason: 'because', determiningPolicies: [], errors: [], tuples: [], approvalWouldAllow: false, ...decision } as Decision;
  return { ready: true, revision: 'r1', evaluate: () => full };
}

describe('precheck', () => {
  it("denies the operator's namespace as a target before anything else", () => {
    const task = taskFixture('x', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], namespace: 'taskgrant-system' }] } });
    expect(precheck(facts(task))).toMatchObject({ type: 'deny', reason: 'OperatorNamespace' });
  });

  it('waits for a parent not yet granted and denies one that ended or is missing', () => {
    const child = taskFixture('c', { parentTask: 'p' });
    expect(precheck(facts(child))).toMatchObject({ type: 'deny', reason: 'ParentNotFound' });
    expect(precheck(facts(child, { parent: { ...taskFixture('p'), status: { phase: 'AwaitingApproval' } } }))).toMatchObject({ type: 'wait' });
    expect(precheck(facts(child, { parent: { ...taskFixture('p'), status: { phase: 'Revoked' } } }))).toMatchObject({ type: 'deny', reason: 'ParentNotActive' });
    expect(precheck(facts(child, { parent: live(taskFixture('p')), depth: MAX_DELEGATION_DEPTH }))).toMatchObject({ type: 'deny', reason: 'DelegationInvalid' });
    expect(precheck(facts(child, { parent: live(taskFixture('p')), depth: 1 }))).toEqual({ type: 'ok' });
  });

  it("refuses a task identity's task that is not a child of the identity's own task (audit finding 7)", () => {
    const parent = live(taskFixture('p'));
    const account = `system:serviceaccount:team-a:tg-p-${(parent.metadata.uid ?? '').slice(0, 8)}`;
    const orphan = taskFixture('c', { requester: { username: account } });
    expect(precheck(facts(orphan))).toMatchObject({ type: 'deny', reason: 'DelegationRequired' });
    const elsewhere = taskFixture('c', { parentTask: 'q', requester: { username: account } });
    expect(precheck(facts(elsewhere, { parent: live(taskFixture('q')), depth: 1 }))).toMatchObject({ type: 'deny', reason: 'DelegationRequired' });
    const child = taskFixture('c', { parentTask: 'p', requester: { username: account } });
    expect(precheck(facts(child, { parent, depth: 1 }))).toEqual({ type: 'ok' });
  });

  it('denies on a Deny approval, naming the approver', () => {
    const task = taskFixture('t');
    const approval = { metadata: { name: 'a', namespace: 'team-a' }, spec: { task: 't', taskUID: task.metadata.uid, decision: 'Deny', reason: 'no', approver: { username: 'carol' } } } as TaskApproval;
    expect(precheck(facts(task, { approval }))).toMatchObject({ type: 'deny', reason: 'ApprovalDenied', message: 'Denied by carol: no.' });
  });

  it('finds nothing wider in a child that asks for the same or less', () => {
    const parent = taskFixture('p', { maxPods: 2, token: { expirationSeconds: 3600, audiences: ['vault'] } });
    expect(widerThanParent(taskFixture('c', { maxPods: 1, token: { expirationSeconds: 600, audiences: ['vault'] } }), parent)).toEqual([]);
    expect(widerThanParent(taskFixture('c', { maxPods: 3 }), parent)).toHaveLength(2);
  });
});

describe('plan', () => {
  const task = taskFixture('t');
  const base = { task, approved: false, recent: [], depth: 0, reissueWindowMs: 3_600_000 };

  it('grants on allow, retries on a policy error, never grants on either deny', () => {
    expect(plan(decider({ type: 'allow' }), base).type).toBe('grant');
    expect(plan(decider({ type: 'error' }), base).type).toBe('retry');
    expect(plan(decider({ type: 'deny' }), base).type).toBe('deny');
    expect(plan(decider({ type: 'deny', approvalWouldAllow: true }), base).type).toBe('await-approval');
    // Already approved and still denied: a deny, not another wait.
    expect(plan(decider({ type: 'deny', approvalWouldAllow: true }), { ...base, approved: true }).type).toBe('deny');
  });

  it('turns a throwing engine into a retry, never a grant', () => {
    const throwing: PolicyDecider = { ready: true, revision: 'r1', evaluate: () => { throw new Error('boom'); } };
    expect(plan(throwing, base)).toMatchObject({ type: 'retry', message: expect.stringMatching(/boom/) });
  });

  it('tells a rate-limited agent when its oldest grant leaves the window', () => {
    const recent = [{ uid: 'u', task: 'old', at: Date.parse('2026-11-22T09:30:00Z'), ttlSeconds: 600 }];
    expect(plan(decider({ type: 'deny', reason: 'too often' }), { ...base, recent })).toMatchObject({ message: expect.stringMatching(/oldest leaves the window at 2026-11-22T10:30:00.000Z/) });
  });

  it("passes the namespaces' sensitivity floor to policy", () => {
    let seen: unknown;
    const spy: PolicyDecider = { ready: true, revision: 'r1', evaluate: (input) => ((seen = input.sensitivityFloor), { type: 'allow', revision: 'r1', determiningPolicies: [], tuples: [] } as unknown as Decision) };
    plan(spy, { ...base, sensitivityFloor: 'restricted' });
    expect(seen).toBe('restricted');
  });
});
