// The request-time decision without a cluster: a task fixture, a pod table and a stand-in for the
// runtime policy family, against a real UsageBook.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { AgentTask, Phase, PodFacts, RiskLevel } from '../api/index.js';
import { taskServiceAccountName } from '../api/index.js';
import type { TupleDecision } from '../policy/index.js';
import { EXTRA_POD_NAME, EXTRA_POD_UID, RequestAuthorizer, type RuntimePolicy } from './authorizer.js';
import { reviewAnswer, type AccessRequest } from './review.js';
import { UsageBook } from './usage.js';

const NOW = new Date('2026-12-07T10:05:00Z');
const UID = '11112222-aaaa-4bbb-8ccc-dddddddddddd';

function liveTask(overrides: { maxRequests?: number; phase?: Phase; expiresAt?: string; usage?: { requests: number; denied: number } } = {}): AgentTask {
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name: 'logs', namespace: 'team-a', uid: UID, resourceVersion: '7' },
    spec: {
      agent: 'log-summarizer',
      intent: {
        objective: 'Summarize error logs',
        permissions: [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] }],
        ...(overrides.maxRequests ? { maxRequests: overrides.maxRequests } : {}),
      },
    },
    status: {
      phase: overrides.phase ?? 'Active',
      grant: { serviceAccount: taskServiceAccountName('logs', UID), role: 'r', roleBinding: 'rb', issuedAt: '2026-12-07T10:00:00Z', expiresAt: overrides.expiresAt ?? '2026-12-07T10:15:00Z' },
      ...(overrides.usage ? { usage: overrides.usage } : {}),
    },
  };
}

class Fixture {
  task: AgentTask | undefined = liveTask();
  risk: RiskLevel = 'normal';
  readonly pods = new Map<string, PodFacts>([['agent-0', { uid: 'pod-uid-0', labels: {}, annotations: { 'taskgrant.io/task-uid': UID }, phase: 'Running', terminating: false }]]);
  readonly usage = new UsageBook();
  readonly policyCalls: string[] = [];
  policyOutcome: TupleDecision['outcome'] = 'allowed';
  readonly authorizer = new RequestAuthorizer({
    taskOf: (namespace, sa) => (this.task && namespace === this.task.metadata.namespace && sa === this.task.status?.grant?.serviceAccount ? this.task : undefined),
    pod: (_namespace, name) => this.pods.get(name),
    risk: () => this.risk,
    policy: this.policy(),
    usage: this.usage,
    approved: () => false,
    delegationDepth: () => 0,
    sensitivityFloor: () => undefined,
    now: () => NOW,
  });

  private policy(): RuntimePolicy {
    return {
      decideRequest: (request) => {
        this.policyCalls.push(`${request.action.id} ${request.resource.id}`);
        const outcome = this.policyOutcome;
        return { tuple: request.tuple, outcome, determiningPolicies: outcome === 'forbidden' ? ['runtime-test-forbid'] : ['runtime-within-grant'], errors: outcome === 'policy_error' ? ['boom'] : [] };
      },
    };
  }
}

const user = `system:serviceaccount:team-a:${taskServiceAccountName('logs', UID)}`;
const podExtra = { [EXTRA_POD_NAME]: ['agent-0'], [EXTRA_POD_UID]: ['pod-uid-0'] };
const call = (verb: string, resource = 'pods', extra: Partial<NonNullable<AccessRequest['resource']>> = {}, who = user): AccessRequest => ({
  user: who,
  extra: podExtra,
  resource: { verb, group: '', resource, subresource: '', name: '', namespace: 'team-a', ...extra },
});

describe('RequestAuthorizer', () => {
  it('has no opinion on a call inside a live grant, and counts it against the permission it used', () => {
    const f = new Fixture();
    expect(f.authorizer.review(call('list'))).toEqual({ type: 'no-opinion' });
    expect(f.authorizer.review(call('get', 'pods', { subresource: 'log', name: 'web-0' }))).toEqual({ type: 'no-opinion' });
    expect(f.policyCalls).toEqual(['list team-a//pods/', 'get team-a//pods/log/web-0']);
    expect(f.usage.seen(f.task!)).toEqual({ requests: 2, denied: 0 });
  });

  it('has no opinion on identities that are not task identities, and counts nothing', () => {
    const f = new Fixture();
    expect(f.authorizer.review(call('delete', 'secrets', {}, 'system:serviceaccount:team-a:default'))).toEqual({ type: 'no-opinion' });
    expect(f.usage.pending()).toEqual([]);
  });

  it.each([
    ['no task holds the ServiceAccount', (f: Fixture) => (f.task = undefined), /no AgentTask holds ServiceAccount team-a\/tg-logs-/],
    ['the task was revoked', (f: Fixture) => (f.task = liveTask({ phase: 'Revoked' })), /AgentTask team-a\/logs is Revoked/],
    ['the task is still pending', (f: Fixture) => (f.task = liveTask({ phase: 'Pending' })), /is Pending/],
    ['the grant expired (the controller has not caught up)', (f: Fixture) => (f.task = liveTask({ expiresAt: '2026-12-07T10:04:59Z' })), /expired at 2026-12-07T10:04:59Z/],
    ['the token comes from another pod', (f: Fixture) => f.pods.set('agent-0', { uid: 'another-uid', labels: {}, annotations: {}, terminating: false }), /is not a pod of AgentTask/],
    ["the token's pod is being deleted", (f: Fixture) => f.pods.set('agent-0', { uid: 'pod-uid-0', labels: {}, annotations: { 'taskgrant.io/task-uid': UID }, phase: 'Running', terminating: true }), /no longer holds the grant/],
    ["the token's pod ended", (f: Fixture) => f.pods.set('agent-0', { uid: 'pod-uid-0', labels: {}, annotations: { 'taskgrant.io/task-uid': UID }, phase: 'Succeeded', terminating: false }), /no longer holds the grant/],
    ['the cluster is in lockdown', (f: Fixture) => (f.risk = 'lockdown'), /risk level is lockdown/],
    ['a runtime policy forbids it', (f: Fixture) => (f.policyOutcome = 'forbidden'), /list pods in team-a: forbidden by runtime-test-forbid/],
    ['a runtime policy errored', (f: Fixture) => (f.policyOutcome = 'policy_error'), /boom/],
    ['no runtime policy permits it', (f: Fixture) => (f.policyOutcome = 'not_permitted'), /no runtime policy permits it/],
  ])('denies when %s', (_what, arrange, reason) => {
    const f = new Fixture();
    arrange(f);
    const verdict = f.authorizer.review(call('list'));
    expect(verdict).toEqual({ type: 'deny', reason: expect.stringMatching(reason) });
  });

  it('denies a call outside the granted tuples without asking the runtime policies', () => {
    const f = new Fixture();
    expect(f.authorizer.review(call('delete', 'pods', { name: 'web-0' }))).toEqual({ type: 'deny', reason: 'delete pods "web-0" in team-a is outside AgentTask team-a/logs\'s grant' });
    expect(f.authorizer.review(call('list', 'pods', { namespace: 'team-b' })).type).toBe('deny');
    expect(f.authorizer.review(call('list', 'secrets')).type).toBe('deny');
    expect(f.policyCalls).toEqual([]);
    expect(f.usage.seen(f.task!)).toEqual({ requests: 3, denied: 3 });
  });

  it('refuses every call beyond spec.intent.maxRequests, counting what the status already holds', () => {
    const f = new Fixture();
    f.task = liveTask({ maxRequests: 3, usage: { requests: 1, denied: 0 } });
    expect([1, 2, 3].map(() => f.authorizer.review(call('list')).type)).toEqual(['no-opinion', 'no-opinion', 'deny']);
    expect(f.authorizer.review(call('list'))).toEqual({ type: 'deny', reason: 'AgentTask team-a/logs has used its budget of 3 requests (spec.intent.maxRequests)' });
  });

  it('lets discovery and self-reviews through uncounted, and refuses any other non-resource path', () => {
    const f = new Fixture();
    expect(f.authorizer.review({ user, extra: podExtra, nonResource: { verb: 'get', path: '/apis/apps/v1' } })).toEqual({ type: 'no-opinion' });
    expect(f.authorizer.review(call('create', 'selfsubjectaccessreviews', { group: 'authorization.k8s.io', namespace: '' }))).toEqual({ type: 'no-opinion' });
    expect(f.usage.pending()).toEqual([]);
    expect(f.authorizer.review({ user, extra: podExtra, nonResource: { verb: 'get', path: '/metrics' } }).type).toBe('deny');
  });

  it('a token bound to no pod (minted by a cluster admin) is judged on the task alone', () => {
    const f = new Fixture();
    expect(f.authorizer.review({ ...call('list'), extra: {} })).toEqual({ type: 'no-opinion' });
  });

  it('never answers allowed, whatever it is asked (property)', () => {
    const f = new Fixture();
    const text = fc.string({ maxLength: 12 });
    fc.assert(
      fc.property(fc.record({ user: fc.oneof(fc.constant(user), text.map((s) => `system:serviceaccount:team-a:tg-${s}`), text), verb: text, resource: text, namespace: fc.constantFrom('team-a', 'team-b', '') }), (r) => {
        const verdict = f.authorizer.review({ user: r.user, extra: podExtra, resource: { verb: r.verb, group: '', resource: r.resource, subresource: '', name: '', namespace: r.namespace } });
        expect(reviewAnswer(verdict).status.allowed).toBe(false);
      }),
    );
  });
});
