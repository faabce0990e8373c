// maxPods claims through a fake API server: two replicas share one ledger, and the
// resourceVersion check is what keeps them from both handing out the last slot.
import { describe, expect, it } from '@jest/globals';
import { KubeApi, paths } from './api.js';
import { ConfigMapLedger } from './ledger.js';
import type { SlotClaim } from '../api/index.js';
import { LedgerPodSlots } from './pod-slots.js';
import { FakeApiServer, FakeTransport } from './transport.test-support.js';

const OPERATOR_NS = 'taskgrant-system';
const ledgerPath = paths.configMap(OPERATOR_NS, ConfigMapLedger.nameFor('team-a', 'agent'));
const NOW = Date.parse('2026-12-07T10:00:00Z');

function setup(bound: string[] = []) {
  const server = new FakeApiServer();
  server.store(ledgerPath, {
    metadata: { name: ConfigMapLedger.nameFor('team-a', 'agent'), namespace: OPERATOR_NS },
    data: { grants: JSON.stringify([{ uid: 'task-uid', task: 't', at: NOW - 1000, ttlSeconds: 900 }]) },
  });
  const replica = () => new LedgerPodSlots(new KubeApi(new FakeTransport(server.handle)), OPERATOR_NS, () => bound, 15_000);
  const request = (over: Partial<SlotClaim> = {}): SlotClaim => ({ namespace: 'team-a', taskName: 't', taskUid: 'task-uid', agent: 'agent', maxPods: 1, podName: 'p1', admission: 'adm-1', now: NOW, ...over });
  return { server, replica, request };
}

describe('pod slots in the ledger', () => {
  it('hands out maxPods slots and no more, counting a retried pod once', async () => {
    const { replica, request } = setup();
    const slots = replica();
    expect(await slots.claim(request({ maxPods: 2 }))).toEqual({ type: 'claimed' });
    expect(await slots.claim(request({ maxPods: 2 }))).toEqual({ type: 'claimed' });
    expect(await slots.claim(request({ maxPods: 2, podName: undefined, admission: 'adm-2' }))).toEqual({ type: 'claimed' });
    expect(await slots.claim(request({ maxPods: 2, podName: 'p3' }))).toEqual({ type: 'full', held: 2 });
  });

  it('lets only one of two replicas claim the last slot at the same moment', async () => {
    const { server, request } = setup();
    // Both replicas read before either writes: the second write carries a stale resourceVersion.
    let reads = 0;
    let release: () => void = () => undefined;
    const bothRead = new Promise<void>((resolve) => (release = resolve));
    const handle = server.handle;
    const gated = new FakeTransport(async (sent) => {
      if (sent.method === 'GET' && ++reads <= 2) {
        const answer = await handle(sent);
        if (reads === 2) release();
        await bothRead;
        return answer;
      }
      return handle(sent);
    });
    const a = new LedgerPodSlots(new KubeApi(gated), OPERATOR_NS, () => [], 15_000);
    const b = new LedgerPodSlots(new KubeApi(gated), OPERATOR_NS, () => [], 15_000);
    const results = await Promise.all([a.claim(request({ podName: 'from-a' })), b.claim(request({ podName: 'from-b' }))]);
    expect(results.map((r) => r.type).sort()).toEqual(['claimed', 'full']);
    expect(gated.sent.filter((s) => s.method === 'PUT')).toHaveLength(2);
  });

  it('frees a claim whose pod never appeared once the grace passes, but not one whose pod runs', async () => {
    const { replica, request } = setup(['p1']);
    expect(await replica().claim(request())).toEqual({ type: 'claimed' });
    // Later: p1 is bound and still counts; a forged or refused admission's claim does not.
    expect(await replica().claim(request({ podName: 'p2', now: NOW + 60_000 }))).toEqual({ type: 'full', held: 1 });
    const noPod = setup([]);
    expect(await noPod.replica().claim(noPod.request({ podName: 'ghost' }))).toEqual({ type: 'claimed' });
    expect(await noPod.replica().claim(noPod.request({ podName: 'real', now: NOW + 15_001 }))).toEqual({ type: 'claimed' });
  });

  it('keeps the ledger entry the controller wrote, and refuses a task with no entry', async () => {
    const { server, replica, request } = setup();
    await replica().claim(request());
    const grants = JSON.parse((server.objects.get(ledgerPath) as unknown as { data: { grants: string } }).data.grants) as Array<Record<string, unknown>>;
    expect(grants[0]).toMatchObject({ uid: 'task-uid', task: 't', ttlSeconds: 900, claims: [{ id: 'p1', at: NOW }] });
    expect(await replica().claim(request({ taskUid: 'unknown' }))).toMatchObject({ type: 'refused' });
  });
});
