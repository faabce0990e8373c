import { describe, expect, it } from '@jest/globals';
import { decisionResult, describeTuple, tupleReason } from './decision.js';

const t = (verb: string, apiGroup: string, resource: string, name = '', namespace = 'team-a') => ({ verb, apiGroup, resource, name, namespace });

describe('describeTuple', () => {
  it('names resources the way kubectl users do', () => {
    expect(describeTuple(t('get', '', 'pods'))).toBe('get pods in team-a');
    expect(describeTuple(t('get', '', 'secrets', 'db'))).toBe('get secrets "db" in team-a');
    expect(describeTuple(t('patch', 'apps', 'deployments/scale', '', 'team-b'))).toBe('patch deployments.apps/scale in team-b');
  });
});

describe('tupleReason', () => {
  it('distinguishes what approval can fix from what it cannot', () => {
    const forbidden = { tuple: t('get', '', 'secrets'), outcome: 'forbidden' as const, determiningPolicies: ['a', 'b'], errors: [] };
    expect(tupleReason(forbidden, false)).toBe('get secrets in team-a is not allowed (forbidden by a, b)');
    expect(tupleReason(forbidden, true)).toBe('get secrets in team-a needs approval (forbidden by a, b)');
    expect(tupleReason({ ...forbidden, outcome: 'allowed' }, false)).toBeUndefined();
  });
});

describe('decisionResult', () => {
  it('labels decisions with bounded values', () => {
    expect(decisionResult({ type: 'allow', revision: 'r', determiningPolicies: [], tuples: [] })).toBe('allow');
    const deny = { type: 'deny' as const, revision: 'r', reason: 'x', determiningPolicies: [], errors: [], tuples: [] };
    expect(decisionResult({ ...deny, approvalWouldAllow: false })).toBe('deny');
    expect(decisionResult({ ...deny, approvalWouldAllow: true })).toBe('approval_required');
    expect(decisionResult({ type: 'error', revision: undefined, reason: 'x', errors: [] })).toBe('error');
  });
});
