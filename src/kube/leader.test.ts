import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { KubeError } from './api.js';
import { LeaderElector, microTime, type ElectionClock, type LeaseApi, type LeaseObject } from './leader.js';

const NS = 'taskgrant-system';
const NAME = 'taskgrant-controller';

/** One Lease in memory with the API server's resourceVersion semantics; faults on demand. */
class FakeLeaseApi implements LeaseApi {
  lease: LeaseObject | undefined;
  private rv = 1;
  /** Every call fails with 500 while set (an unreachable or failing API server). */
  failing = false;
  /** Every call hangs while set (a request that never answers). */
  hanging = false;
  writes = 0;

  private async gate(method: string, path: string): Promise<void> {
    if (this.hanging) await new Promise(() => undefined);
    if (this.failing) throw new KubeError(500, method, path, 'etcdserver: request timed out');
  }

  async get<T>(path: string): Promise<T> {
    await this.gate('GET', path);
    if (!this.lease) throw new KubeError(404, 'GET', path, 'not found');
    return structuredClone(this.lease) as T;
  }

  async create<T>(path: string, object: unknown): Promise<T> {
    await this.gate('POST', path);
    if (this.lease) throw new KubeError(409, 'POST', path, 'already exists');
    return this.store(object as LeaseObject) as T;
  }

  async replace<T>(path: string, object: unknown): Promise<T> {
    await this.gate('PUT', path);
    const next = object as LeaseObject;
    if (!this.lease) throw new KubeError(404, 'PUT', path, 'not found');
    if (next.metadata.resourceVersion !== this.lease.metadata.resourceVersion) throw new KubeError(409, 'PUT', path, 'the object has been modified');
    return this.store(next) as T;
  }

  private store(object: LeaseObject): LeaseObject {
    this.writes += 1;
    this.lease = structuredClone({ ...object, metadata: { ...object.metadata, resourceVersion: String(++this.rv) } });
    return structuredClone(this.lease);
  }

  /** Another party writes the Lease directly (e.g. a replica whose clock says ours expired). */
  forceHolder(holder: string, renewTime = microTime(Date.now())): void {
    this.store({ ...this.lease!, spec: { ...this.lease!.spec, holderIdentity: holder, leaseDurationSeconds: 15, renewTime } });
  }
}

/** A node's clocks: its wall clock `skewMs` off the true time, its monotonic clock steady. */
const skewed = (skewMs: number): ElectionClock => ({ now: () => Date.now() + skewMs, monotonic: () => Date.now() });
const HOUR = 3_600_000;

function elector(api: FakeLeaseApi, identity: string, events: string[] = [], clock = skewed(0)): LeaderElector {
  return new LeaderElector({
    api,
    namespace: NS,
    name: NAME,
    identity,
    clock,
    onStartedLeading: () => void events.push(`${identity} started`),
    onStoppedLeading: () => void events.push(`${identity} stopped`),
  });
}

const advance = (ms: number) => jest.advanceTimersByTimeAsync(ms);

beforeEach(() => {
  jest.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z') });
});

afterEach(() => {
  jest.useRealTimers();
});

describe('LeaderElector', () => {
  it('creates and takes a free Lease, then renews it every retry period', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    a.start();
    await advance(0);
    expect(a.isLeader).toBe(true);
    expect(events).toEqual(['a started']);
    expect(api.lease?.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0, renewTime: '2026-01-01T00:00:00.000000Z' });

    await advance(2_000);
    expect(api.lease?.spec?.renewTime).toBe('2026-01-01T00:00:02.000000Z');
    await advance(20_000);
    expect(a.isLeader).toBe(true);
    expect(events).toEqual(['a started']); // one term, however many renewals
    await a.stop();
  });

  it('never lets two electors lead at once, and the other waits while the holder renews', async () => {
    const api = new FakeLeaseApi();
    const a = elector(api, 'a');
    const b = elector(api, 'b');
    a.start();
    b.start();
    for (let i = 0; i < 100; i++) {
      await advance(500);
      expect(Number(a.isLeader) + Number(b.isLeader)).toBe(1);
    }
    expect(a.isLeader).toBe(true);
    await a.stop({ release: false });
    await b.stop();
  });

  it('takes over a Lease only once it has seen the record unchanged for leaseDurationSeconds', async () => {
    const api = new FakeLeaseApi();
    const a = elector(api, 'a');
    a.start();
    await advance(0);
    await a.stop({ release: false }); // a crashed: its record stays, un-renewed
    const events: string[] = [];
    const b = elector(api, 'b', events);
    b.start();
    await advance(14_000);
    expect(b.isLeader).toBe(false);
    await advance(2_000);
    expect(b.isLeader).toBe(true);
    expect(events).toEqual(['b started']);
    expect(api.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1, acquireTime: '2026-01-01T00:00:16.000000Z' });
    await b.stop();
  });

  it('releases the Lease on stop so the next replica takes over on its next retry', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    const b = elector(api, 'b', events);
    a.start();
    await advance(0);
    b.start();
    await advance(100);
    await a.stop();
    expect(a.isLeader).toBe(false);
    expect(api.lease?.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    await advance(2_000);
    expect(b.isLeader).toBe(true);
    expect(events).toEqual(['a started', 'a stopped', 'b started']);
    await b.stop();
  });

  it('awaits onStoppedLeading before releasing, so the next leader never overlaps this one', async () => {
    const api = new FakeLeaseApi();
    const order: string[] = [];
    const a = new LeaderElector({
      api,
      namespace: NS,
      name: NAME,
      identity: 'a',
      onStoppedLeading: async () => {
        await new Promise((r) => setTimeout(r, 1_000));
        order.push(`stopped while holder=${api.lease?.spec?.holderIdentity}`);
      },
    });
    a.start();
    await advance(0);
    const stopping = a.stop();
    await advance(1_000);
    await stopping;
    expect(order).toEqual(['stopped while holder=a']);
    expect(api.lease?.spec?.holderIdentity).toBe('');
  });

  it('stops leading when it cannot renew within renewDeadline, before the Lease could expire elsewhere', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    a.start();
    await advance(0);
    api.failing = true;
    await advance(9_900);
    expect(a.isLeader).toBe(true);
    await advance(200);
    expect(a.isLeader).toBe(false);
    expect(events).toEqual(['a started', 'a stopped']);

    // The API comes back and the Lease is still ours: a new term begins.
    api.failing = false;
    await advance(2_000);
    expect(a.isLeader).toBe(true);
    expect(events).toEqual(['a started', 'a stopped', 'a started']);
    await a.stop();
  });

  it('stops leading at the deadline even when a renewal never answers', async () => {
    const api = new FakeLeaseApi();
    const a = elector(api, 'a');
    a.start();
    await advance(0);
    api.hanging = true;
    await advance(10_100);
    expect(a.isLeader).toBe(false);
    const stopping = a.stop(); // bounded: does not wait for the hung call forever
    await advance(10_000);
    await stopping;
  });

  it('stops leading at once when it finds another holder', async () => {
    const api = new FakeLeaseApi();
    const a = elector(api, 'a');
    a.start();
    await advance(0);
    api.forceHolder('intruder');
    await advance(2_000);
    expect(a.isLeader).toBe(false);
    expect(api.lease?.spec?.holderIdentity).toBe('intruder');
    await a.stop();
    expect(api.lease?.spec?.holderIdentity).toBe('intruder'); // never releases what it does not hold
  });

  it('takes a Lease from a holder that never renews it, whatever its record says, leaseDuration after first seeing it', async () => {
    const api = new FakeLeaseApi();
    api.lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: NAME, namespace: NS, resourceVersion: '1' }, spec: { holderIdentity: 'ghost' } };
    const a = elector(api, 'a');
    a.start();
    await advance(14_000);
    expect(a.isLeader).toBe(false);
    await advance(2_000);
    expect(a.isLeader).toBe(true);
    await a.stop();
  });

  it.each([
    ['the holder clock is an hour behind', -HOUR, 0],
    ['the candidate clock is an hour ahead', 0, HOUR],
  ])('never takes a Lease from a live holder when %s', async (_case, holderSkew, candidateSkew) => {
    const api = new FakeLeaseApi();
    const a = elector(api, 'a', [], skewed(holderSkew));
    a.start();
    await advance(0);
    const b = elector(api, 'b', [], skewed(candidateSkew));
    b.start();
    for (let i = 0; i < 60; i++) {
      await advance(500);
      expect([a.isLeader, b.isLeader]).toEqual([true, false]);
    }
    await a.stop({ release: false });
    await b.stop();
  });

  it('waits while a holder keeps renewing, even with stamps an hour old', async () => {
    const api = new FakeLeaseApi();
    api.lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: NAME, namespace: NS, resourceVersion: '1' } };
    const b = elector(api, 'b');
    b.start();
    for (let i = 0; i < 30; i++) {
      api.forceHolder('remote', microTime(Date.now() - HOUR)); // a replica on a node whose clock is an hour slow
      await advance(2_000);
      expect(b.isLeader).toBe(false);
    }
    await b.stop();
  });

  it('takes a Lease from a dead holder whose clock was an hour fast leaseDuration after its last renewal, not an hour later', async () => {
    const api = new FakeLeaseApi();
    api.lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: NAME, namespace: NS, resourceVersion: '1' } };
    const b = elector(api, 'b');
    b.start();
    for (let i = 0; i < 3; i++) {
      api.forceHolder('remote', microTime(Date.now() + HOUR));
      await advance(2_000);
    }
    // The holder died after its renewal at 4 s, which b first saw at 6 s: 15 s on, at 21 s, the
    // Lease is b's to take (its next attempt is at 22 s).
    await advance(14_000);
    expect(b.isLeader).toBe(false);
    await advance(2_000);
    expect(b.isLeader).toBe(true);
    expect(api.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.stop();
  });

  it('refuses timings that would let two leaders overlap', () => {
    const api = new FakeLeaseApi();
    expect(() => new LeaderElector({ api, namespace: NS, name: NAME, leaseDurationSeconds: 10, renewDeadlineMs: 10_000 })).toThrow(/renewDeadline < leaseDuration/);
    expect(() => new LeaderElector({ api, namespace: NS, name: NAME, retryPeriodMs: 10_000 })).toThrow(/retryPeriod < renewDeadline/);
    expect(() => new LeaderElector({ api, namespace: NS, name: NAME, leaseDurationSeconds: 1.5 })).toThrow(/integer/);
  });
});

describe('microTime', () => {
  it('writes six fractional digits, as metav1.MicroTime requires', () => {
    expect(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678))).toBe('2026-01-02T03:04:05.678000Z');
  });
});
