// The reconciler against in-memory fakes and the real default policies: delegation, a child task
// within what its parent holds (shared setup in reconciler.test-support.ts).
import { describe, expect, it } from '@jest/globals';
import { taskFixture } from './fakes.test-support.js';
import { loadDefaultPolicies, setup } from './reconciler.test-support.js';

loadDefaultPolicies();

describe('Reconciler: delegation', () => {
  it('denies a child asking for more than its parent holds, naming the excess', async () => {
    const { cluster, run } = setup();
    await run(cluster.put(taskFixture('parent')));
    const child = cluster.put(taskFixture('child', { parentTask: 'parent', intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['pods', 'configmaps'], verbs: ['get'] }] } }));
    const after = await run(child);
    expect(after?.status?.phase).toBe('Denied');
    expect(after?.status?.reason).toBe('DelegationExceedsParent');
    expect(after?.status?.message).toContain('get configmaps in team-a');
  });

  it.each([
    ['more pods', { maxPods: 3 }, /maxPods 3 is more than parent-w's 1/],
    ['a longer-lived token', { token: { expirationSeconds: 7200 } }, /token expirationSeconds 7200 is more than parent-w's 600/],
    ['an audience of its own', { token: { audiences: ['vault'] } }, /token audience vault is not among parent-w's/],
  ])('denies a child asking for %s than its parent (audit finding 14)', async (_what, wider, message) => {
    const { cluster, run } = setup();
    await run(cluster.put(taskFixture('parent-w')));
    const after = await run(cluster.put(taskFixture('child-w', { parentTask: 'parent-w', ...wider })));
    expect(after?.status?.phase).toBe('Denied');
    expect(after?.status?.reason).toBe('DelegationExceedsParent');
    expect(after?.status?.message).toMatch(message);
  });

  it('ends a child whose parent was deleted and recreated under the same name: another task, not its parent', async () => {
    const { cluster, run, clock } = setup();
    const parent = await run(cluster.put(taskFixture('p3')));
    const child = await run(cluster.put(taskFixture('c3', { parentTask: 'p3' })));
    expect(child?.status?.grant?.parentUID).toBe(parent?.metadata.uid);
    // Same name, new uid, granted in turn.
    cluster.tasks.delete('team-a/p3');
    await run(cluster.put(taskFixture('p3')));
    clock.ms += 1000;
    const ended = await run(cluster.task('team-a', 'c3')!);
    expect(ended?.status?.phase).toBe('Revoked');
    expect(ended?.status?.reason).toBe('ParentRevoked');
  });

  it('grants a narrower child that expires no later than its parent, and revokes it with the parent', async () => {
    const { cluster, run, clock } = setup();
    await run(cluster.put(taskFixture('p2', { ttl: '10m' })));
    const child = await run(cluster.put(taskFixture('c2', { parentTask: 'p2', ttl: '30m', intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] } })));
    expect(child?.status?.phase).toBe('Granted');
    expect(child?.status?.grant?.expiresAt).toBe(cluster.task('team-a', 'p2')?.status?.grant?.expiresAt);
    const parent = cluster.task('team-a', 'p2')!;
    cluster.put({ ...parent, metadata: { ...parent.metadata, annotations: { 'taskgrant.io/revoke': 'done' } } });
    await run(cluster.task('team-a', 'p2')!);
    clock.ms += 1000;
    const revoked = await run(cluster.task('team-a', 'c2')!);
    expect(revoked?.status?.phase).toBe('Revoked');
    expect(revoked?.status?.reason).toBe('ParentRevoked');
    expect(cluster.objects.size).toBe(0);
  });

  it('waits while the parent is not yet granted', async () => {
    const { cluster, run } = setup();
    cluster.put({ ...taskFixture('slow-parent'), status: { phase: 'AwaitingApproval' } });
    const child = await run(cluster.put(taskFixture('eager', { parentTask: 'slow-parent' })));
    expect(child?.status?.phase).toBe('Pending');
    expect(child?.status?.reason).toBe('WaitingForParent');
  });
});
