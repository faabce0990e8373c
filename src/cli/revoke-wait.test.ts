// `revoke --wait` (and the chart's uninstall hook through it): when a revocation counts as done.
import { describe, expect, it } from '@jest/globals';
import type { AgentTask } from '../api/index.js';
import { stillRevoking } from './commands/revoke.js';

function task(phase: string | undefined, finalizers: string[] = [], uid = 'u-1'): AgentTask {
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name: 't', namespace: 'team-a', uid, finalizers },
    spec: {} as AgentTask['spec'],
    ...(phase ? { status: { phase } as AgentTask['status'] } : {}),
  };
}

describe('revoke --wait', () => {
  const asked = task('Active', ['taskgrant.io/revoke-grant']);

  it('waits while the task is live', () => {
    expect(stillRevoking(asked, task('Active', ['taskgrant.io/revoke-grant']))).toBe(true);
  });

  it('waits while a terminal task still holds the finalizer: its objects are being deleted', () => {
    expect(stillRevoking(asked, task('Revoked', ['taskgrant.io/revoke-grant']))).toBe(true);
  });

  it('is done once the task is terminal and the finalizer is gone', () => {
    expect(stillRevoking(asked, task('Revoked', ['example.com/hold']))).toBe(false);
  });

  it('is done when the task is gone or replaced by another of the same name', () => {
    expect(stillRevoking(asked, undefined)).toBe(false);
    expect(stillRevoking(asked, task('Active', ['taskgrant.io/revoke-grant'], 'u-2'))).toBe(false);
  });
});
