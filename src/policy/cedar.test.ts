import { describe, expect, it } from '@jest/globals';
import { authorize, cedarVersion, type CedarEntity, preparePolicySet, prepareSchema, splitPolicies, validatePolicies } from './cedar.js';

const schema = `entity User = { n: Long };
entity Doc;
action read appliesTo { principal: User, resource: Doc, context: { k: Long } };`;

describe('cedar adapter', () => {
  it('runs the Cedar 4 engine', () => {
    expect(cedarVersion()).toMatch(/^4\./);
  });

  it('prepares a schema and lists its actions, or reports why not', () => {
    expect(prepareSchema('cedar-test-schema', schema)).toEqual({ type: 'ok', actions: ['read'] });
    expect(prepareSchema('cedar-test-bad', 'entity User = {').type).toBe('error');
  });

  it('splits a file into policies with their text and annotations', () => {
    const split = splitPolicies('@id("a") @note("x")\npermit (principal, action, resource);\n// c\nforbid (principal, action, resource);');
    expect(split).toEqual({
      type: 'ok',
      templateCount: 0,
      policies: [
        { text: '@id("a") @note("x")\npermit (principal, action, resource);', annotations: { id: 'a', note: 'x' } },
        { text: 'forbid (principal, action, resource);', annotations: {} },
      ],
    });
    expect(splitPolicies('permit (principal, action').type).toBe('error');
  });

  it('validates strictly, attributing errors to policy ids', () => {
    expect(validatePolicies(schema, { ok: 'permit (principal, action, resource) when { context.k > 1 };' })).toEqual({ type: 'ok', warnings: [] });
    const bad = validatePolicies(schema, { bad: 'permit (principal, action, resource) when { context.k == "1" };' });
    expect(bad.type === 'error' && bad.errors.every((e) => e.policyId === 'bad')).toBe(true);
  });

  it('reports policies that error during evaluation alongside the decision', () => {
    expect(prepareSchema('cedar-test-schema', schema).type).toBe('ok');
    const policies = {
      allow: 'permit (principal, action, resource);',
      boom: 'forbid (principal, action, resource) when { principal.n * context.k > 0 };',
    };
    expect(preparePolicySet('cedar-test-set', policies)).toEqual({ type: 'ok' });
    const request = {
      schemaId: 'cedar-test-schema',
      policySetId: 'cedar-test-set',
      principal: { type: 'User', id: 'u' },
      action: { type: 'Action', id: 'read' },
      resource: { type: 'Doc', id: 'd' },
      entities: [{ uid: { type: 'User', id: 'u' }, attrs: { n: 2 ** 62 } }, { uid: { type: 'Doc', id: 'd' }, attrs: {} }] as CedarEntity[],
    };
    const answer = authorize({ ...request, context: { k: 2 } });
    expect(answer).toMatchObject({ type: 'decided', allowed: true, determiningPolicies: ['allow'], errors: [{ policyId: 'boom', message: expect.stringContaining('overflow') }] });
    expect(authorize({ ...request, context: { k: 0 } })).toEqual({ type: 'decided', allowed: true, determiningPolicies: ['allow'], errors: [] });
    expect(authorize({ ...request, context: { k: 'x' } }).type).toBe('invalid');
    expect(authorize({ ...request, action: { type: 'Action', id: 'write' }, context: { k: 0 } }).type).toBe('invalid');
  });
});
