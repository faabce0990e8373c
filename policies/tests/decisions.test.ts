// The default policies in policies/, loaded by the real engine, against the table in cases.ts.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { fileURLToPath } from 'node:url';
import type { AgentTask } from '../../src/api/index.js';
import { checkPolicyDir, type Decision, type PolicyEngine } from '../../src/policy/index.js';
import { cases, type DecisionCase, type Expectation } from './cases.js';

const policyDir = fileURLToPath(new URL('..', import.meta.url));
let engine: PolicyEngine;

beforeAll(async () => {
  const check = await checkPolicyDir(policyDir);
  if (check.type !== 'loaded') throw new Error(`default policies rejected:\n${check.errors.join('\n')}`);
  engine = check.engine;
});

function taskFor(c: DecisionCase): AgentTask {
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name: 'case', namespace: 'team-a', uid: 'uid-1' },
    spec: {
      agent: 'log-summarizer',
      ttl: c.ttl ?? '15m',
      requester: { username: 'alice@example.com' },
      intent: { objective: c.name, tools: c.tools ?? [], sensitivity: c.sensitivity ?? 'internal', permissions: c.permissions },
    },
  };
}

function decide(c: DecisionCase): Decision {
  return engine.evaluate({
    task: taskFor(c),
    approved: c.approved ?? false,
    recentGrants: c.recentGrants ?? 0,
    recentGrantSeconds: c.recentGrantSeconds ?? 0,
    delegationDepth: c.delegationDepth ?? 0,
    ...(c.risk ? { risk: c.risk } : {}),
  });
}

function outcome(d: Decision): Expectation | 'error' {
  switch (d.type) {
    case 'allow':
      return 'allow';
    case 'deny':
      return d.approvalWouldAllow ? 'approval-required' : 'deny';
    case 'error':
      return 'error';
  }
}

describe('default policies', () => {
  it('holds at least 40 cases with unique names', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const d = decide(c);
    expect(outcome(d)).toBe(c.expect);
    if (d.type === 'error') return;
    if (c.policies) expect(d.determiningPolicies).toEqual(expect.arrayContaining(c.policies));
    if (c.policies?.length === 0) expect(d.determiningPolicies).toEqual([]);
    if (d.type === 'allow') {
      expect(d.tuples.every((t) => t.outcome === 'allowed' && t.determiningPolicies.length > 0)).toBe(true);
    } else {
      expect(d.tuples.some((t) => t.outcome !== 'allowed')).toBe(true);
      if (c.reason) expect(d.reason).toContain(c.reason);
    }
  });

  it('exercises every default policy as a determining policy', () => {
    const seen = new Set(cases.flatMap((c) => {
      const d = decide(c);
      return d.type === 'error' ? [] : d.determiningPolicies;
    }));
    expect(engine.policyIds().filter((id) => !seen.has(id))).toEqual([]);
  });

  it('documents every policy with a comment saying what it protects', () => {
    for (const id of engine.policyIds()) {
      const text = engine.policyText(id) ?? '';
      expect({ id, documented: text.startsWith('//') && /Protects:/.test(text) }).toEqual({ id, documented: true });
    }
  });

  it('names policies from their files', () => {
    expect(engine.policy('forbid-rbac-writes')?.origin).toMatch(/^file:.*policies\/guardrails\.cedar$/);
  });
});
