// The default runtime policies (policies/*.runtime.cedar), loaded by the real engine against
// policies/runtime.cedarschema, decided for API calls the way the request-time authorizer builds them.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { fileURLToPath } from 'node:url';
import type { AgentTask, PermissionTuple, RiskLevel } from '../../src/api/index.js';
import { PolicyEngine, buildRuntimeRequest, readPolicyDir, type TupleOutcome } from '../../src/policy/index.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { createLogger } from '../../src/telemetry/logger.js';

const policyDir = fileURLToPath(new URL('..', import.meta.url));
let engine: PolicyEngine;

beforeAll(async () => {
  const dir = await readPolicyDir(policyDir, 'runtime');
  engine = new PolicyEngine({ schemaText: dir.schemaText, logger: createLogger('fatal'), metrics: new Metrics(), family: 'runtime' });
  const loaded = engine.load(dir.sources);
  if (loaded.type !== 'loaded') throw new Error(`default runtime policies rejected:\n${loaded.errors.join('\n')}`);
});

interface RuntimeCase {
  name: string;
  call: Partial<PermissionTuple>;
  risk?: RiskLevel;
  approved?: boolean;
  sensitivity?: 'internal' | 'restricted';
  requests?: number;
  expect: TupleOutcome;
  policies?: string[];
}

const cases: RuntimeCase[] = [
  { name: 'a read inside the grant at normal risk', call: { verb: 'list' }, expect: 'allowed', policies: ['runtime-within-grant'] },
  { name: 'a write inside the grant at normal risk', call: { verb: 'delete', name: 'web-0' }, expect: 'allowed' },
  { name: 'lockdown refuses a read', call: { verb: 'get', name: 'web-0' }, risk: 'lockdown', approved: true, expect: 'forbidden', policies: ['runtime-lockdown'] },
  { name: 'elevated keeps an own-namespace read', call: { verb: 'get', name: 'web-0' }, risk: 'elevated', expect: 'allowed' },
  { name: 'elevated refuses an unapproved write', call: { verb: 'delete', name: 'web-0' }, risk: 'elevated', expect: 'forbidden', policies: ['runtime-elevated-read-only'] },
  { name: 'elevated refuses an unapproved read elsewhere', call: { verb: 'list', namespace: 'team-b' }, risk: 'elevated', expect: 'forbidden', policies: ['runtime-elevated-read-only'] },
  { name: 'elevated lets an approved task write', call: { verb: 'delete', name: 'web-0' }, risk: 'elevated', approved: true, expect: 'allowed' },
  { name: 'restricted data: listing within the first 100 calls', call: { verb: 'list' }, sensitivity: 'restricted', requests: 99, expect: 'allowed' },
  { name: 'restricted data: listing after 100 calls', call: { verb: 'list' }, sensitivity: 'restricted', requests: 100, expect: 'forbidden', policies: ['runtime-restricted-no-bulk-reads'] },
  { name: 'restricted data: a single get after 100 calls', call: { verb: 'get', name: 'web-0' }, sensitivity: 'restricted', requests: 500, expect: 'allowed' },
];

const task: AgentTask = {
  apiVersion: 'taskgrant.io/v1alpha1',
  kind: 'AgentTask',
  metadata: { name: 'case', namespace: 'team-a', uid: 'uid-1' },
  spec: { agent: 'log-summarizer', intent: { objective: 'Summarize error logs', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'delete'] }] } },
  status: { phase: 'Granted', grant: { serviceAccount: 'tg-case-uid1', role: 'r', roleBinding: 'rb', issuedAt: '2026-12-07T10:00:00Z', expiresAt: '2026-12-07T11:00:00Z' } },
};

function decide(c: RuntimeCase) {
  const call: PermissionTuple = { verb: 'get', apiGroup: '', resource: 'pods', name: '', namespace: 'team-a', ...c.call };
  const withSensitivity: AgentTask = { ...task, spec: { ...task.spec, intent: { ...task.spec.intent, sensitivity: c.sensitivity ?? 'internal' } } };
  const built = buildRuntimeRequest({ task: withSensitivity, call, requests: c.requests ?? 0, denied: 0, risk: c.risk ?? 'normal', approved: c.approved ?? false, delegationDepth: 0, now: new Date('2026-12-07T10:05:00Z') });
  return engine.decideRequest(built.request, built.context);
}

describe('default runtime policies', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const d = decide(c);
    expect({ outcome: d.outcome, errors: d.errors }).toEqual({ outcome: c.expect, errors: [] });
    if (c.policies) expect(d.determiningPolicies).toEqual(expect.arrayContaining(c.policies));
  });

  it('exercises every default runtime policy as a determining policy', () => {
    const seen = new Set(cases.flatMap((c) => decide(c).determiningPolicies));
    expect(engine.policyIds().filter((id) => !seen.has(id))).toEqual([]);
  });

  it('documents every runtime policy with a comment saying what it protects', () => {
    for (const id of engine.policyIds()) expect({ id, documented: /^\/\/[\s\S]*Protects:/.test(engine.policyText(id) ?? '') }).toEqual({ id, documented: true });
  });

  it('refuses when no policy set is loaded (fail closed)', () => {
    const empty = new PolicyEngine({ schemaText: 'entity A;', logger: createLogger('fatal'), metrics: new Metrics(), family: 'runtime' });
    const built = buildRuntimeRequest({ task, call: { verb: 'get', apiGroup: '', resource: 'pods', name: '', namespace: 'team-a' }, requests: 0, denied: 0, risk: 'normal', approved: false, delegationDepth: 0, now: new Date() });
    expect(empty.decideRequest(built.request, built.context).outcome).toBe('policy_error');
  });
});
