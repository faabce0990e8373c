// Leader election against the real API server: a real Lease, real resourceVersion conflicts.
// Short timings (3 s lease, 2 s renew deadline, 250 ms retry) keep the suite quick; the protocol
// is the same at the defaults.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { KubeApi, paths } from '../src/kube/api.js';
import { LeaderElector, type LeaseObject } from '../src/kube/leader.js';
import { adminConfig, createNamespace, eventually, uniqueName } from './harness/kube.js';

const timings = { leaseDurationSeconds: 3, renewDeadlineMs: 2_000, retryPeriodMs: 250 };

let api: KubeApi;
let ns: string;
const electors: LeaderElector[] = [];

beforeAll(async () => {
  const admin = adminConfig();
  api = new KubeApi(admin);
  ns = await createNamespace(admin, 'leader');
});

afterAll(async () => {
  await Promise.all(electors.map((e) => e.stop({ release: false })));
  await adminConfig().makeApiClient(k8s.CoreV1Api).deleteNamespace({ name: ns });
});

function pair(lease: string): { a: LeaderElector; b: LeaderElector; log: string[] } {
  const log: string[] = [];
  const make = (identity: string) =>
    new LeaderElector({
      api,
      namespace: ns,
      name: lease,
      identity,
      ...timings,
      onStartedLeading: () => void log.push(`${identity} started`),
      onStoppedLeading: () => void log.push(`${identity} stopped`),
    });
  const a = make('replica-a');
  const b = make('replica-b');
  electors.push(a, b);
  return { a, b, log };
}

const leaderOf = async (a: LeaderElector, b: LeaderElector) => eventually(async () => (a.isLeader ? a : b.isLeader ? b : undefined), 'a leader', 10_000);
const holder = async (lease: string) => (await api.get<LeaseObject>(paths.lease(ns, lease))).spec?.holderIdentity;

/** Samples both electors every 50 ms for `ms`, failing at the first moment both lead. */
async function neverBoth(a: LeaderElector, b: LeaderElector, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    expect(a.isLeader && b.isLeader).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('LeaderElector on a real Lease', () => {
  it('elects exactly one of two electors, the one the Lease names', async () => {
    const lease = uniqueName('lease');
    const { a, b } = pair(lease);
    a.start();
    b.start();
    const leader = await leaderOf(a, b);
    // Longer than a lease: the follower keeps retrying and must keep losing to the renewals.
    await neverBoth(a, b, timings.leaseDurationSeconds * 1000 + 500);
    expect(leader.isLeader).toBe(true);
    expect(await holder(lease)).toBe(leader.identity);
    const record = await api.get<LeaseObject>(paths.lease(ns, lease));
    expect(record.spec?.leaseDurationSeconds).toBe(3);
    expect(record.spec?.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('hands over at once when the leader stops and releases the Lease', async () => {
    const lease = uniqueName('lease');
    const { a, b, log } = pair(lease);
    a.start();
    await eventually(async () => a.isLeader, 'replica-a to lead');
    b.start();
    await new Promise((r) => setTimeout(r, 500));
    expect(b.isLeader).toBe(false);
    await a.stop();
    // Released, not left to expire: the record says so the moment stop() returns (client-go's
    // release: no holder, a 1 s duration), so the follower need not wait out the 3 s Lease.
    const released = await api.get<LeaseObject>(paths.lease(ns, lease));
    expect(['', 'replica-b']).toContain(released.spec?.holderIdentity ?? '');
    if (released.spec?.holderIdentity !== 'replica-b') expect(released.spec?.leaseDurationSeconds).toBe(1);
    await eventually(async () => b.isLeader, 'replica-b to take over', 30_000, 20);
    expect(log).toEqual(['replica-a started', 'replica-a stopped', 'replica-b started']);
    expect(await holder(lease)).toBe('replica-b');
  });

  it('takes over only after the Lease expires when the leader dies without releasing it', async () => {
    const lease = uniqueName('lease');
    const { a, b } = pair(lease);
    a.start();
    await eventually(async () => a.isLeader, 'replica-a to lead');
    b.start();
    await new Promise((r) => setTimeout(r, 500));
    // A crash: timers stop, the Lease keeps naming replica-a and its last renewTime.
    await a.stop({ release: false });
    const lastRenew = Date.parse((await api.get<LeaseObject>(paths.lease(ns, lease))).spec?.renewTime ?? '');
    expect(await holder(lease)).toBe('replica-a');
    await eventually(async () => b.isLeader, 'replica-b to take over', 10_000, 20);
    const tookOverAfter = Date.now() - lastRenew;
    expect(tookOverAfter).toBeGreaterThanOrEqual(timings.leaseDurationSeconds * 1000);
    expect(tookOverAfter).toBeLessThan(timings.leaseDurationSeconds * 1000 + 2_000);
    const taken = await api.get<LeaseObject>(paths.lease(ns, lease));
    expect(taken.spec).toMatchObject({ holderIdentity: 'replica-b', leaseTransitions: 1 });
  });
});
