import { beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import type { AgentTask, PermissionRule } from '../api/index.js';
import { silentLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import type { Decision } from './decision.js';
import { PolicyEngine } from './engine.js';
import type { DecisionInput } from './request.js';
import type { PolicySource } from './sources.js';

const schemaText = readFileSync(new URL('../../policies/schema.cedarschema', import.meta.url), 'utf8');

const permitReads = `// Reads are fine.
@id("permit-reads")
permit (principal, action in [Action::"get", Action::"list", Action::"watch"], resource);
`;
const permitApproved = `@id("permit-approved")
permit (principal, action, resource) when { context.approved };
`;
const forbidSecrets = `@id("forbid-secrets")
forbid (principal, action, resource) when { resource.resource == "secrets" };
`;
// Validates (Long + Long is well typed) but overflows for every ttl >= 1, so it errors on every request.
const erroringForbid = `@id("forbid-overflow")
forbid (principal, action, resource) when { context.ttlSeconds + 9223372036854775807 > 0 };
`;

const file = (name: string, text: string): PolicySource => ({ origin: `file:policies/${name}`, text });

function task(permissions: PermissionRule[], spec: Partial<AgentTask['spec']> = {}): AgentTask {
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name: 't', namespace: 'team-a', uid: 'u' },
    spec: { agent: 'agent', ttl: '15m', intent: { objective: 'test', sensitivity: 'internal', permissions }, ...spec },
  };
}

function input(permissions: PermissionRule[], extra: Partial<DecisionInput> = {}): DecisionInput {
  return { task: task(permissions), approved: false, recentGrants: 0, recentGrantSeconds: 0, delegationDepth: 0, ...extra };
}

const getPods: PermissionRule = { apiGroups: [''], resources: ['pods'], verbs: ['get'] };

function engine(metrics = new Metrics()): PolicyEngine {
  return new PolicyEngine({ schemaText, logger: silentLogger(), metrics });
}

async function counter(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

function expectDeny(d: Decision): Extract<Decision, { type: 'deny' }> {
  if (d.type !== 'deny') throw new Error(`expected a deny, got ${JSON.stringify(d)}`);
  return d;
}

describe('PolicyEngine.load', () => {
  it('loads a valid set and names it by a content revision independent of source order', () => {
    const a = engine().load([file('a.cedar', permitReads), file('b.cedar', forbidSecrets)]);
    const b = engine().load([file('b.cedar', forbidSecrets), file('a.cedar', permitReads)]);
    expect(a).toEqual({ type: 'loaded', revision: expect.stringMatching(/^[0-9a-f]{12}$/), policyCount: 2 });
    expect(b).toEqual(a);
    const c = engine().load([file('a.cedar', permitReads), file('b.cedar', forbidSecrets.replace('secrets', 'configmaps'))]);
    expect(c.type === 'loaded' && a.type === 'loaded' && c.revision !== a.revision).toBe(true);
  });

  it('refuses a syntax error, naming the origin and line', () => {
    const result = engine().load([file('ok.cedar', permitReads), file('bad.cedar', '\n\n@id("x")\npermit (principal, action, resource) when {')]);
    expect(result.type).toBe('rejected');
    if (result.type !== 'rejected') return;
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatch(/^file:policies\/bad\.cedar:4:\d+: /);
  });

  it('refuses a policy that does not validate against the schema', () => {
    const bad = '@id("typo")\npermit (principal, action, resource) when { context.aproved };';
    const result = engine().load([file('ok.cedar', permitReads), { origin: 'configmap:taskgrant-system/team-x#extra.cedar', text: bad }]);
    expect(result.type).toBe('rejected');
    if (result.type !== 'rejected') return;
    // One line per mistake, even though strict validation reports it once per action.
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatch(/^configmap:taskgrant-system\/team-x#extra\.cedar:2:\d+: policy "typo": .*aproved/);
  });

  it('refuses a type error that parses (String compared with Long)', () => {
    const result = engine().load([file('t.cedar', '@id("t")\nforbid (principal, action, resource) when { context.objective > 3 };')]);
    expect(result.type).toBe('rejected');
  });

  it('refuses a policy without @id', () => {
    const result = engine().load([file('a.cedar', `${permitReads}\npermit (principal, action, resource);`)]);
    expect(result).toEqual({ type: 'rejected', errors: [expect.stringMatching(/^file:policies\/a\.cedar:5: policy #2 has no @id/)], keptRevision: undefined });
  });

  it('refuses duplicate @id across sources, naming both places', () => {
    const result = engine().load([file('a.cedar', permitReads), file('b.cedar', permitReads.replace('permit (', 'forbid ('))]);
    expect(result.type).toBe('rejected');
    if (result.type !== 'rejected') return;
    expect(result.errors).toEqual([expect.stringContaining('duplicate @id("permit-reads"), also used at file:policies/a.cedar:2')]);
  });

  it('refuses ids that would not read well in a status, templates, and an empty set', () => {
    expect(engine().load([file('a.cedar', '@id("has space") permit (principal, action, resource);')]).type).toBe('rejected');
    expect(engine().load([file('a.cedar', '@id("tpl") permit (principal == ?principal, action, resource);')]).type).toBe('rejected');
    expect(engine().load([file('a.cedar', '// nothing here\n')]).type).toBe('rejected');
  });

  it('keeps the last good set when a reload is rejected, and reports it', async () => {
    const metrics = new Metrics();
    const e = engine(metrics);
    const good = e.load([file('a.cedar', permitReads)]);
    if (good.type !== 'loaded') throw new Error('expected a load');
    const bad = e.load([file('a.cedar', permitReads), file('b.cedar', 'forbid (principal, action, resource);')]);
    expect(bad).toEqual({ type: 'rejected', errors: [expect.stringContaining('no @id')], keptRevision: good.revision });
    expect(e.revision).toBe(good.revision);
    const d = e.evaluate(input([getPods]));
    expect(d).toMatchObject({ type: 'allow', revision: good.revision, determiningPolicies: ['permit-reads'] });
    expect(await counter(metrics, 'taskgrant_policy_reloads_total', { result: 'success' })).toBe(1);
    expect(await counter(metrics, 'taskgrant_policy_reloads_total', { result: 'rejected' })).toBe(1);
  });

  it('replaces the set on a good reload', () => {
    const e = engine();
    e.load([file('a.cedar', permitReads)]);
    expect(e.evaluate(input([{ ...getPods, resources: ['secrets'] }])).type).toBe('allow');
    e.load([file('a.cedar', permitReads), file('b.cedar', forbidSecrets)]);
    expect(e.evaluate(input([{ ...getPods, resources: ['secrets'] }])).type).toBe('deny');
    expect(e.policyIds()).toEqual(['forbid-secrets', 'permit-reads']);
  });

  it('keeps engines in one process apart (cedar-wasm caches sets process-wide)', () => {
    const lenient = engine();
    const strict = engine();
    lenient.load([file('a.cedar', permitReads)]);
    strict.load([file('a.cedar', permitReads), file('b.cedar', forbidSecrets)]);
    const secrets = input([{ ...getPods, resources: ['secrets'] }]);
    expect([lenient.evaluate(secrets).type, strict.evaluate(secrets).type]).toEqual(['allow', 'deny']);
  });

  it('keeps each policy text with its leading comment for explain', () => {
    const e = engine();
    e.load([file('a.cedar', `// header\n\n${permitReads}\n${forbidSecrets}`)]);
    expect(e.policyText('permit-reads')).toBe(permitReads.trimEnd());
    expect(e.policyText('forbid-secrets')).toBe(forbidSecrets.trimEnd());
    expect(e.policy('forbid-secrets')).toMatchObject({ origin: 'file:policies/a.cedar', line: 7 });
    expect(e.policyText('nope')).toBeUndefined();
  });

  it('throws on a schema that does not parse', () => {
    expect(() => new PolicyEngine({ schemaText: 'entity Agent = {', logger: silentLogger(), metrics: new Metrics() })).toThrow(/Cedar schema is invalid/);
  });
});

describe('PolicyEngine.evaluate', () => {
  it('is an error, never an allow, before the first good load', async () => {
    const metrics = new Metrics();
    const e = engine(metrics);
    expect(e.ready).toBe(false);
    e.load([file('bad.cedar', 'permit (principal, action, resource);')]);
    expect(e.ready).toBe(false);
    expect(e.evaluate(input([getPods]))).toEqual({ type: 'error', revision: undefined, reason: 'policies not loaded yet', errors: [] });
    expect(await counter(metrics, 'taskgrant_policy_decisions_total', { result: 'error' })).toBe(1);
  });

  it('allows when every tuple is allowed, citing the permits', () => {
    const e = engine();
    e.load([file('a.cedar', permitReads)]);
    const d = e.evaluate(input([{ apiGroups: ['', 'apps'], resources: ['pods'], verbs: ['get', 'list'] }]));
    expect(d.type).toBe('allow');
    if (d.type !== 'allow') return;
    expect(d.tuples).toHaveLength(4);
    expect(d.determiningPolicies).toEqual(['permit-reads']);
  });

  it('denies the whole task when one tuple is forbidden, naming it and the forbid', () => {
    const e = engine();
    e.load([file('a.cedar', permitReads), file('b.cedar', forbidSecrets)]);
    const d = expectDeny(e.evaluate(input([{ apiGroups: [''], resources: ['pods', 'secrets'], verbs: ['get'], resourceNames: ['db'] }])));
    expect(d.reason).toBe('get secrets "db" in team-a is not allowed (forbidden by forbid-secrets)');
    expect(d.determiningPolicies).toEqual(['forbid-secrets']);
    expect(d.tuples.map((t) => t.outcome)).toEqual(['allowed', 'forbidden']);
    expect(d.approvalWouldAllow).toBe(false);
  });

  it('says no policy permits it when nothing matched', () => {
    const e = engine();
    e.load([file('a.cedar', permitReads)]);
    const d = expectDeny(e.evaluate(input([{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['patch'] }])));
    expect(d.reason).toBe('patch deployments.apps in team-a is not allowed (no policy permits it)');
    expect(d.determiningPolicies).toEqual([]);
  });

  it('reports approvalWouldAllow when an approved evaluation allows cleanly', async () => {
    const metrics = new Metrics();
    const e = engine(metrics);
    e.load([file('a.cedar', permitReads + permitApproved)]);
    const d = expectDeny(e.evaluate(input([{ ...getPods, verbs: ['create'] }])));
    expect(d.approvalWouldAllow).toBe(true);
    expect(d.reason).toBe('create pods in team-a needs approval (no policy permits it)');
    expect(await counter(metrics, 'taskgrant_policy_decisions_total', { result: 'approval_required' })).toBe(1);
    // Already approved and still denied: approval cannot help.
    e.load([file('a.cedar', permitReads + permitApproved), file('b.cedar', forbidSecrets)]);
    const approved = expectDeny(e.evaluate(input([{ ...getPods, resources: ['secrets'] }], { approved: true })));
    expect(approved.approvalWouldAllow).toBe(false);
    expect(await counter(metrics, 'taskgrant_policy_decisions_total', { result: 'deny' })).toBe(1);
  });

  it('never allows when a forbid errors at runtime, even though Cedar itself says allow', () => {
    const e = engine();
    e.load([file('a.cedar', permitReads + permitApproved), file('b.cedar', erroringForbid)]);
    const d = expectDeny(e.evaluate(input([getPods], { approved: true })));
    expect(d.tuples[0]).toMatchObject({ outcome: 'policy_error', determiningPolicies: ['permit-approved', 'permit-reads'] });
    expect(d.errors).toEqual([expect.stringMatching(/^get pods in team-a: policy forbid-overflow errored: .*overflow/)]);
    expect(d.reason).toMatch(/^get pods in team-a is not allowed: a policy errored while evaluating it/);
    // The approved re-evaluation errors too, so approval is not offered as a way out.
    expect(expectDeny(e.evaluate(input([getPods]))).approvalWouldAllow).toBe(false);
  });

  it('explains a deny by the errored tuple first', () => {
    const e = engine();
    const onlyForPods = erroringForbid.replace('when {', 'when { resource.resource == "pods" &&');
    e.load([file('a.cedar', permitReads), file('b.cedar', onlyForPods)]);
    const d = expectDeny(e.evaluate(input([{ apiGroups: [''], resources: ['configmaps', 'pods'], verbs: ['get', 'create'] }])));
    expect(d.tuples.map((t) => t.outcome)).toEqual(['allowed', 'policy_error', 'not_permitted', 'policy_error']);
    expect(d.reason).toContain('get pods in team-a is not allowed: a policy errored');
  });

  it('denies an unknown verb with a clear reason instead of throwing', () => {
    const e = engine();
    e.load([file('a.cedar', permitApproved)]);
    const d = expectDeny(e.evaluate(input([{ ...getPods, verbs: ['get', 'frob'] }], { approved: true })));
    expect(d.reason).toBe('frob pods in team-a is not allowed: unknown verb "frob": the policy schema declares no such action');
    expect(d.tuples.map((t) => t.outcome)).toEqual(['allowed', 'invalid_request']);
  });

  it('denies input that does not fit the schema', () => {
    const e = engine();
    e.load([file('a.cedar', permitApproved)]);
    for (const bad of [{ recentGrants: -1 }, { recentGrantSeconds: 1.5 }, { delegationDepth: Number.NaN }] as Partial<DecisionInput>[]) {
      const d = expectDeny(e.evaluate(input([getPods], { approved: true, ...bad })));
      expect(d.reason).toMatch(/^the task could not be evaluated: \w+ must be a non-negative integer/);
    }
    const badTtl = { ...input([getPods], { approved: true }), task: task([getPods], { ttl: 'forever' }) };
    expect(expectDeny(e.evaluate(badTtl)).reason).toContain('spec.ttl "forever" is not a positive duration');
    const none = { ...input([], { approved: true }) };
    expect(expectDeny(e.evaluate(none)).reason).toContain('asks for no permissions');
  });

  it('denies a task too broad to evaluate', () => {
    const e = engine();
    e.load([file('a.cedar', permitApproved)]);
    const wide: PermissionRule = { apiGroups: [''], resources: Array.from({ length: 32 }, (_, i) => `r${i}`), verbs: ['get', 'list'], resourceNames: Array.from({ length: 32 }, (_, i) => `n${i}`) };
    const d = expectDeny(e.evaluate(input([wide], { approved: true })));
    expect(d.reason).toContain('asks for 2048 permission tuples; at most 1024');
  });

  it('turns an exception into an error decision', async () => {
    const metrics = new Metrics();
    const e = engine(metrics);
    e.load([file('a.cedar', permitApproved)]);
    const broken = { ...input([getPods]), task: { metadata: { name: 't', namespace: 'team-a' } } as unknown as AgentTask };
    const d = e.evaluate(broken);
    expect(d).toMatchObject({ type: 'error', revision: e.revision, reason: expect.stringMatching(/^policy evaluation failed: /) });
    expect(await counter(metrics, 'taskgrant_policy_decisions_total', { result: 'error' })).toBe(1);
  });

  it('records the evaluation duration', async () => {
    const metrics = new Metrics();
    const e = engine(metrics);
    e.load([file('a.cedar', permitReads)]);
    e.evaluate(input([getPods]));
    e.evaluate(input([getPods]));
    const { values } = await metrics.policyEvaluationSeconds.get();
    expect(values.find((v) => v.metricName === 'taskgrant_policy_evaluation_seconds_count')?.value).toBe(2);
  });
});

describe('PolicyEngine with the real schema', () => {
  let e: PolicyEngine;
  beforeAll(() => {
    e = engine();
  });
  it('knows every standard Kubernetes verb', () => {
    expect(e.verbs).toEqual(
      ['approve', 'attest', 'bind', 'create', 'delete', 'deletecollection', 'escalate', 'get', 'impersonate', 'list', 'patch', 'sign', 'update', 'use', 'watch'],
    );
  });
});

describe('policyRevision', () => {
  it('names the same policies the same, wherever the directory is mounted', async () => {
    const { policyRevision } = await import('./compile.js');
    const text = '@id("p")\npermit (principal, action, resource);\n';
    const a = policyRevision('schema', [{ origin: 'file:/work/main/policies/a.cedar', text }]);
    const b = policyRevision('schema', [{ origin: 'file:/etc/taskgrant/policies/a.cedar', text }]);
    const c = policyRevision('schema', [{ origin: 'file:/etc/taskgrant/policies/a.cedar', text: text.replace('permit', 'forbid') }]);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });
});

describe('PolicyEngine: decisions kept for inputs seen before', () => {
  it('answers the same requests under the same revision from what it decided, and decides again under a new one', () => {
    const e = engine();
    e.load([file('reads.cedar', permitReads)]);
    const first = e.evaluate(input([getPods]));
    expect(first.type).toBe('allow');
    expect(e.evaluate(input([getPods]))).toBe(first);
    // Another input is decided on its own.
    expect(e.evaluate(input([getPods], { recentGrants: 1 }))).not.toBe(first);
    e.load([file('reads.cedar', permitReads), file('secrets.cedar', `@id("forbid-pods")\nforbid (principal, action, resource) when { resource.resource == "pods" };\n`)]);
    expect(e.evaluate(input([getPods])).type).toBe('deny');
  });

  it('never keeps a verdict with an error in it: an erroring policy is evaluated again each time', () => {
    const e = engine();
    e.load([file('reads.cedar', permitReads), file('overflow.cedar', erroringForbid)]);
    const first = expectDeny(e.evaluate(input([getPods])));
    expect(first.tuples[0]?.outcome).toBe('policy_error');
    const again = e.evaluate(input([getPods]));
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
  });

  it('keeps at most decisionCacheSize verdicts, the least recently used going first; 0 keeps none', () => {
    const e = new PolicyEngine({ schemaText, logger: silentLogger(), metrics: new Metrics(), decisionCacheSize: 2 });
    e.load([file('reads.cedar', permitReads)]);
    const a = e.evaluate(input([getPods], { recentGrants: 1 }));
    const b = e.evaluate(input([getPods], { recentGrants: 2 }));
    expect(e.evaluate(input([getPods], { recentGrants: 1 }))).toBe(a); // a is now the most recent
    e.evaluate(input([getPods], { recentGrants: 3 })); // b goes
    expect(e.evaluate(input([getPods], { recentGrants: 1 }))).toBe(a);
    expect(e.evaluate(input([getPods], { recentGrants: 2 }))).not.toBe(b);
    const none = new PolicyEngine({ schemaText, logger: silentLogger(), metrics: new Metrics(), decisionCacheSize: 0 });
    none.load([file('reads.cedar', permitReads)]);
    expect(none.evaluate(input([getPods]))).not.toBe(none.evaluate(input([getPods])));
  });
});
