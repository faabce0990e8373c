import { describe, expect, it } from '@jest/globals';
import type { PodObject } from '../kube/objects.js';
import { taskFixture } from './fakes.test-support.js';
import { firedTrigger } from './triggers.js';

const now = Date.parse('2026-11-22T10:05:00Z');
function live(extra: { annotations?: Record<string, string>; pods?: string[]; expiresAt?: string } = {}) {
  const t = taskFixture('t');
  return {
    ...t,
    metadata: { ...t.metadata, annotations: extra.annotations },
    status: { phase: 'Active' as const, grant: { serviceAccount: 'sa', role: 'sa', roleBinding: 'sa', issuedAt: '2026-11-22T10:00:00Z', expiresAt: extra.expiresAt ?? '2026-11-22T10:15:00Z', pods: extra.pods ?? [] } },
  };
}
const pod = (name: string, uid: string, phase: 'Running' | 'Succeeded' | 'Failed', deleting = false): PodObject => ({
  metadata: { name, namespace: 'team-a', labels: { 'taskgrant.io/task': 't' }, annotations: { 'taskgrant.io/task-uid': uid }, ...(deleting ? { deletionTimestamp: '2026-11-22T10:04:00Z' } : {}) },
  status: { phase },
});

describe('firedTrigger', () => {
  it('fires nothing for a healthy task', () => {
    const task = live({ pods: ['p'] });
    expect(firedTrigger({ task, pods: [pod('p', task.metadata.uid!, 'Running')], now })).toBeUndefined();
  });
  it('puts the manual annotation first, quoting its reason without control characters', () => {
    const task = live({ annotations: { 'taskgrant.io/revoke': 'stop\nnow' }, expiresAt: '2026-11-22T10:00:01Z' });
    expect(firedTrigger({ task, pods: [], now })).toMatchObject({ reason: 'Manual', message: 'Revoked by annotation: stop now.' });
  });
  it('revokes when a bound pod failed, even if another succeeded', () => {
    const task = live({ pods: ['a', 'b'] });
    const uid = task.metadata.uid!;
    expect(firedTrigger({ task, pods: [pod('a', uid, 'Succeeded'), pod('b', uid, 'Failed')], now })?.reason).toBe('PodFailed');
  });
  it('revokes when more pods carry the grant than maxPods allows (audit finding 5)', () => {
    const task = live({ pods: ['a'] });
    const uid = task.metadata.uid!;
    expect(firedTrigger({ task, pods: [pod('a', uid, 'Running'), pod('b', uid, 'Running')], now })).toMatchObject({ reason: 'MaxPodsExceeded', phase: 'Revoked', message: expect.stringMatching(/2 pods carry the grant .* \(a, b\), more than its maxPods 1/) });
    // Finished or terminating pods hold no slot.
    expect(firedTrigger({ task, pods: [pod('a', uid, 'Running'), pod('b', uid, 'Succeeded')], now })).toBeUndefined();
    expect(firedTrigger({ task: { ...task, spec: { ...task.spec, maxPods: 2 } }, pods: [pod('a', uid, 'Running'), pod('b', uid, 'Running')], now })).toBeUndefined();
  });
  it('completes only when every bound pod succeeded', () => {
    const task = live({ pods: ['a', 'b'] });
    const uid = task.metadata.uid!;
    expect(firedTrigger({ task, pods: [pod('a', uid, 'Succeeded'), pod('b', uid, 'Running')], now })).toBeUndefined();
    expect(firedTrigger({ task, pods: [pod('a', uid, 'Succeeded'), pod('b', uid, 'Succeeded')], now })?.phase).toBe('Completed');
  });
  it('revokes when a recorded pod is gone or terminating', () => {
    const task = live({ pods: ['a'] });
    expect(firedTrigger({ task, pods: [], now })?.reason).toBe('PodDeleted');
    expect(firedTrigger({ task, pods: [pod('a', task.metadata.uid!, 'Running', true)], now })?.reason).toBe('PodDeleted');
  });
  it('ignores pods that carry the label but not this task uid (a stale or forged pod)', () => {
    const task = live();
    expect(firedTrigger({ task, pods: [pod('x', 'other-uid', 'Failed')], now })).toBeUndefined();
  });
  it('expires at expiresAt', () => {
    expect(firedTrigger({ task: live({ expiresAt: '2026-11-22T10:05:00Z' }), pods: [], now })?.reason).toBe('TTLExpired');
    expect(firedTrigger({ task: live({ expiresAt: '2026-11-22T10:05:01Z' }), pods: [], now })).toBeUndefined();
  });
  it('revokes a delegated task whose parent is gone or no longer live', () => {
    const task = { ...live(), spec: { ...live().spec, parentTask: 'p' } };
    expect(firedTrigger({ task, pods: [], now, parent: undefined })?.reason).toBe('ParentRevoked');
    expect(firedTrigger({ task, pods: [], now, parent: { ...taskFixture('p'), status: { phase: 'Expired' } } })?.reason).toBe('ParentRevoked');
    expect(firedTrigger({ task, pods: [], now, parent: { ...taskFixture('p'), status: { phase: 'Granted' } } })).toBeUndefined();
  });
});
