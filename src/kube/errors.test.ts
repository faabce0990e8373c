// Refusals told apart by the API server's Status fields, as the real API server sends them.
import { describe, expect, it } from '@jest/globals';
import { KubeError } from './api.js';
import { isEscalationRefused, isNamespaceTerminating } from './errors.js';

const rolePath = '/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles';

describe('API server refusals', () => {
  it('reads an escalation refusal from a Forbidden Role or RoleBinding write, through a cause chain', () => {
    const refused = new KubeError(403, 'POST', rolePath, 'anything at all', 'Forbidden', { kind: 'roles', causes: [] });
    expect(isEscalationRefused(refused)).toBe(true);
    expect(isEscalationRefused(new Error('granting', { cause: refused }))).toBe(true);
    expect(isEscalationRefused(new KubeError(403, 'POST', rolePath, '', 'Forbidden', { kind: 'rolebindings' }))).toBe(true);
  });

  it('is not fooled by message text, other resources, other codes or a terminating namespace', () => {
    expect(isEscalationRefused(new Error('403 is attempting to grant RBAC permissions not currently held'))).toBe(false);
    expect(isEscalationRefused(new KubeError(403, 'POST', '/api/v1/namespaces/team-a/serviceaccounts', '', 'Forbidden', { kind: 'serviceaccounts' }))).toBe(false);
    expect(isEscalationRefused(new KubeError(409, 'POST', rolePath, '', 'AlreadyExists', { kind: 'roles' }))).toBe(false);
    expect(isEscalationRefused(new KubeError(403, 'POST', rolePath, '', 'Forbidden', { kind: 'roles', causes: ['NamespaceTerminating'] }))).toBe(false);
  });

  it('names the namespace a write was refused in because it is being deleted', () => {
    const refused = new KubeError(403, 'POST', rolePath, 'unrelated words', 'Forbidden', { kind: 'roles', causes: ['NamespaceTerminating'] });
    expect(isNamespaceTerminating(new Error('ensuring objects', { cause: refused }))).toBe('team-a');
    expect(isNamespaceTerminating(new KubeError(403, 'POST', rolePath, 'because it is being terminated', 'Forbidden', { kind: 'roles' }))).toBeUndefined();
    expect(isNamespaceTerminating(new Error('unable to create new content in namespace x because it is being terminated'))).toBeUndefined();
  });
});
