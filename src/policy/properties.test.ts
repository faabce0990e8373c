// Properties of the engine over open-ended intents (STYLE.md: fast-check where inputs are open-ended).
import { beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { SENSITIVITIES, type AgentTask, type PermissionRule, type PermissionTuple } from '../api/index.js';
import { silentLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import type { Decision } from './decision.js';
import { PolicyEngine } from './engine.js';
import type { DecisionInput } from './request.js';
import { readPolicyDir, type PolicySource } from './sources.js';

// Each Cedar call through wasm costs ~0.2 ms; these counts keep the file around a second.
const runs = { numRuns: 80 };
let schemaText: string;
let defaults: PolicySource[];

beforeAll(async () => {
  const dir = await readPolicyDir(fileURLToPath(new URL('../../policies', import.meta.url)));
  schemaText = dir.schemaText;
  defaults = dir.sources;
});

const engines = new Map<string, PolicyEngine>();
/** One engine per distinct policy set: loading validates the whole set, too slow to repeat per run. */
function engineWith(extra: string[], options: { defaults: boolean } = { defaults: true }): PolicyEngine {
  const key = JSON.stringify([options.defaults, extra]);
  let engine = engines.get(key);
  if (!engine) {
    engine = new PolicyEngine({ schemaText, logger: silentLogger(), metrics: new Metrics() });
    const sources = [...(options.defaults ? defaults : []), ...extra.map((text, i) => ({ origin: `test:extra-${i}.cedar`, text }))];
    const result = engine.load(sources);
    if (result.type !== 'loaded') throw new Error(result.errors.join('\n'));
    engines.set(key, engine);
  }
  return engine;
}

// Errors (Long overflow) for every tuple whose resource name starts with "x", and only those.
const erroringForbid = `@id("forbid-erroring")
forbid (principal, action, resource)
when { resource.name like "x*" && context.ttlSeconds * 4611686018427387904 > 0 };`;
const permitAll = `@id("permit-all")
permit (principal, action, resource);`;

const verbs = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'bind', 'escalate', 'impersonate', 'approve', 'use', 'frob'];
const groups = ['', 'apps', 'rbac.authorization.k8s.io', 'admissionregistration.k8s.io', 'taskgrant.io'];
const resources = ['pods', 'pods/log', 'pods/exec', 'secrets', 'configmaps', 'deployments', 'roles', 'serviceaccounts/token', 'taskapprovals', 'agenttasks'];

const rule = (verbs: string[], apiGroups: string[], resources: string[], names: string[]) =>
  fc
    .record({
      verbs: fc.uniqueArray(fc.constantFrom(...verbs), { minLength: 1, maxLength: 3 }),
      apiGroups: fc.uniqueArray(fc.constantFrom(...apiGroups), { minLength: 1, maxLength: 2 }),
      resources: fc.uniqueArray(fc.constantFrom(...resources), { minLength: 1, maxLength: 2 }),
      resourceNames: fc.uniqueArray(fc.constantFrom(...names), { maxLength: 2 }),
      namespace: fc.constantFrom('', 'team-a', 'team-b'),
    })
    .map(({ namespace, ...r }): PermissionRule => (namespace === '' ? r : { ...r, namespace }));

// Mostly rules the defaults could allow, so allows, approvals and denies all turn up often;
// sometimes anything from the wider vocabulary (escalation verbs, RBAC, secrets, unknown verbs).
const ruleArb: fc.Arbitrary<PermissionRule> = fc.oneof(
  { weight: 3, arbitrary: rule(['get', 'list', 'watch'], ['', 'apps'], ['pods', 'pods/log', 'configmaps', 'deployments'], ['x-one', 'web']) },
  { weight: 1, arbitrary: rule(verbs, groups, resources, ['x-one', 'web', 'db']) },
);

const weighted = <T>(usual: fc.Arbitrary<T>, edge: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: usual }, { weight: 1, arbitrary: edge });

const inputArb: fc.Arbitrary<DecisionInput> = fc
  .record({
    permissions: fc.array(ruleArb, { minLength: 1, maxLength: 2 }),
    sensitivity: fc.constantFrom(...SENSITIVITIES),
    ttl: weighted(fc.integer({ min: 10, max: 3600 }), fc.oneof(fc.constantFrom(3601, 14400, 14401), fc.integer({ min: 10, max: 20000 }))),
    approved: fc.boolean(),
    recentGrants: weighted(fc.integer({ min: 0, max: 19 }), fc.integer({ min: 20, max: 22 })),
    recentGrantSeconds: weighted(fc.integer({ min: 0, max: 14400 }), fc.integer({ min: 14400, max: 30000 })),
    delegationDepth: weighted(fc.integer({ min: 0, max: 2 }), fc.constant(3)),
  })
  .map(({ permissions, sensitivity, ttl, ...rest }) => ({
    ...rest,
    task: {
      apiVersion: 'taskgrant.io/v1alpha1',
      kind: 'AgentTask',
      metadata: { name: 'prop', namespace: 'team-a', uid: 'u' },
      spec: { agent: 'agent', ttl: `${ttl}s`, intent: { objective: 'property', sensitivity, permissions } },
    } satisfies AgentTask,
  }));

const extraForbidArb: fc.Arbitrary<string> = fc
  .oneof(
    fc.constantFrom('get', 'list', 'create', 'delete', 'patch').map((v) => `forbid (principal, action == Action::"${v}", resource);`),
    fc.constantFrom(...resources).map((r) => `forbid (principal, action, resource) when { resource.resource == "${r}" };`),
    fc.constantFrom('team-a', 'team-b').map((ns) => `forbid (principal, action, resource) when { resource.namespace == "${ns}" };`),
    fc.constantFrom(...SENSITIVITIES).map((s) => `forbid (principal, action, resource) when { context.sensitivity == "${s}" } unless { context.approved };`),
    fc.constantFrom(600, 3600, 7200).map((n) => `forbid (principal, action, resource) when { context.ttlSeconds > ${n} };`),
    fc.constant(erroringForbid.replace('@id("forbid-erroring")\n', '')),
  )
  .map((body) => `@id("extra-forbid")\n${body}`);

function singleTuple(input: DecisionInput, t: PermissionTuple): DecisionInput {
  const rule: PermissionRule = { apiGroups: [t.apiGroup], resources: [t.resource], verbs: [t.verb], resourceNames: t.name ? [t.name] : [], namespace: t.namespace };
  const { task } = input;
  return { ...input, task: { ...task, spec: { ...task.spec, intent: { ...task.spec.intent, permissions: [rule] } } } };
}

const tuplesOf = (d: Decision) => (d.type === 'error' ? [] : d.tuples);

describe('policy engine properties', () => {
  it('(a) an evaluation error never allows', () => {
    const withDefaults = engineWith([erroringForbid]);
    const onlyErroring = engineWith([permitAll, erroringForbid], { defaults: false });
    fc.assert(
      fc.property(inputArb, (input) => {
        for (const engine of [withDefaults, onlyErroring]) {
          const d = engine.evaluate(input);
          expect(d.type).not.toBe('error');
          const erroring = tuplesOf(d).filter((t) => t.tuple.name.startsWith('x') && t.outcome !== 'invalid_request');
          expect(erroring.every((t) => t.outcome === 'policy_error' && t.errors.some((e) => e.includes('forbid-erroring')))).toBe(true);
          if (erroring.length > 0) expect(d).toMatchObject({ type: 'deny', approvalWouldAllow: false, reason: expect.stringContaining('a policy errored') });
        }
        // With nothing else in the way, the erroring forbid (and an unknown verb) is exactly what denies.
        const d = onlyErroring.evaluate(input);
        const blocked = tuplesOf(d).some((t) => t.tuple.name.startsWith('x') || t.tuple.verb === 'frob');
        expect(d.type).toBe(blocked ? 'deny' : 'allow');
      }),
      runs,
    );
  });

  it('(b) adding a forbid never turns a deny into an allow', () => {
    const base = engineWith([]);
    fc.assert(
      fc.property(inputArb, extraForbidArb, (input, extra) => {
        const before = base.evaluate(input);
        const after = engineWith([extra]).evaluate(input);
        if (before.type !== 'allow') expect(after.type).not.toBe('allow');
        if (before.type === 'deny' && !before.approvalWouldAllow) expect(after).toMatchObject({ type: 'deny', approvalWouldAllow: false });
        // Whatever the extra forbid newly denies, it is the one named (or the one that errored).
        if (before.type === 'allow' && after.type === 'deny') {
          const denied = after.tuples.filter((t) => t.outcome !== 'allowed');
          expect(denied.every((t) => t.determiningPolicies.includes('extra-forbid') || t.errors.some((e) => e.includes('extra-forbid')))).toBe(true);
        }
      }),
      runs,
    );
  });

  it('(c) a task is allowed exactly when each of its tuples, asked alone, is allowed', () => {
    const engine = engineWith([]);
    fc.assert(
      fc.property(inputArb, (input) => {
        const whole = engine.evaluate(input);
        if (whole.type === 'error') throw new Error(whole.reason);
        const alone = whole.tuples.map((t) => engine.evaluate(singleTuple(input, t.tuple)));
        expect(whole.type === 'allow').toBe(alone.every((d) => d.type === 'allow'));
        whole.tuples.forEach((t, i) => {
          const single = tuplesOf(alone[i]!)[0];
          expect(single && { outcome: single.outcome, policies: single.determiningPolicies }).toEqual({ outcome: t.outcome, policies: t.determiningPolicies });
        });
      }),
      runs,
    );
  });
});
