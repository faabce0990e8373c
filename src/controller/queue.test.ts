import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { WorkQueue } from './queue.js';

const advance = (ms: number) => jest.advanceTimersByTimeAsync(ms);

/** A processor whose runs the test settles by hand; counts runs and how many overlap. */
function manual() {
  const pending: Array<{ key: string; settle: (err?: Error) => void }> = [];
  const stats = { runs: 0, running: 0, maxRunning: 0 };
  const process = (key: string) =>
    new Promise<void>((resolve, reject) => {
      stats.runs += 1;
      stats.running += 1;
      stats.maxRunning = Math.max(stats.maxRunning, stats.running);
      pending.push({
        key,
        settle: (err) => {
          stats.running -= 1;
          if (err) reject(err);
          else resolve();
        },
      });
    });
  return { process, pending, stats };
}

beforeEach(() => {
  jest.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z') });
});

afterEach(() => {
  jest.useRealTimers();
});

describe('WorkQueue', () => {
  it('processes a key added many times while waiting once', async () => {
    const seen: string[] = [];
    const q = new WorkQueue(async (k) => void seen.push(k), { workers: 1 });
    q.add('a');
    q.add('a');
    q.add('b');
    q.add('a');
    q.start();
    await q.idle();
    expect(seen).toEqual(['a', 'b']);
  });

  it('never runs one key in two workers, and re-runs a key added while it ran', async () => {
    const { process, pending, stats } = manual();
    const q = new WorkQueue(process, { workers: 4 });
    q.start();
    q.add('k');
    q.add('k');
    await advance(0);
    q.add('k');
    q.add('k');
    await advance(0);
    expect(stats.runs).toBe(1);
    pending.shift()!.settle();
    await advance(0);
    expect(stats.runs).toBe(2);
    pending.shift()!.settle();
    await q.idle();
    expect(stats).toMatchObject({ runs: 2, maxRunning: 1 });
  });

  it('retries a failing key with growing delays', async () => {
    const at: number[] = [];
    const q = new WorkQueue(
      async () => {
        at.push(Date.now());
        if (at.length < 4) throw new Error('boom');
      },
      { workers: 1, baseDelayMs: 100 },
    );
    q.start();
    q.add('k');
    await advance(2_000);
    expect(at).toHaveLength(4);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // 100, 200, 400 ms, each ±20 % jitter.
    expect(gaps[0]).toBeGreaterThanOrEqual(80);
    expect(gaps[1]).toBeGreaterThan(gaps[0]!);
    expect(gaps[2]).toBeGreaterThan(gaps[1]!);
    await q.stop();
  });

  it('cancels the timer of a key whose object is gone', async () => {
    const seen: string[] = [];
    const q = new WorkQueue(async (k) => void seen.push(k), { workers: 1 });
    q.start();
    q.addAfter('gone', 30);
    q.addAfter('kept', 30);
    q.cancel('gone');
    await advance(1_000);
    expect(seen).toEqual(['kept']);
    await q.stop();
  });

  it('keeps the earliest timer for a key', async () => {
    const seen: number[] = [];
    const q = new WorkQueue(async () => void seen.push(Date.now()), { workers: 1 });
    q.start();
    const start = Date.now();
    q.addAfter('k', 200);
    q.addAfter('k', 20);
    q.addAfter('k', 300);
    await advance(1_000);
    expect(seen.map((t) => t - start)).toEqual([20]);
    await q.stop();
  });
});

describe('WorkQueue deadline', () => {
  it('reports a run past its deadline but never starts a second run of the key while it goes on', async () => {
    const { process, pending, stats } = manual();
    const errors: string[] = [];
    const q = new WorkQueue(process, { workers: 2, deadlineMs: 1_000, onError: (key, err) => void errors.push(`${key}: ${(err as Error).message}`) });
    q.start();
    q.add('k');
    await advance(1_000);
    expect(errors).toEqual(['k: processing k took longer than 1000 ms']);

    q.add('k'); // an event for the task while its run hangs
    await advance(60_000);
    expect(stats).toMatchObject({ runs: 1, running: 1 }); // a free worker, and still no second run

    q.add('other');
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['k', 'other']); // other keys keep flowing

    pending.shift()!.settle();
    await advance(0);
    expect(stats.runs).toBe(3); // the add made while it ran, now
    expect(stats.maxRunning).toBe(2);
    expect(pending.map((p) => p.key)).toEqual(['other', 'k']);
    for (const p of pending.splice(0)) p.settle();
    await q.stop();
  });

  it('retries an overdue run once it settles, with the failure counted once', async () => {
    const { process, pending, stats } = manual();
    const errors: Array<[string, number]> = [];
    const q = new WorkQueue(process, { workers: 1, deadlineMs: 1_000, baseDelayMs: 100, onError: (_key, err, retryInMs) => void errors.push([(err as Error).message, retryInMs]) });
    q.start();
    q.add('k');
    await advance(5_000);
    expect(stats.runs).toBe(1);

    pending.shift()!.settle(new Error('gave up late'));
    expect(stats.runs).toBe(1);
    await advance(120); // the first retry's backoff: 100 ms ± 20 %
    expect(stats.runs).toBe(2);
    // One failure counted: the late error is reported with the same retry, not a doubled backoff.
    expect(errors).toHaveLength(2);
    expect(errors[1]).toEqual(['gave up late', errors[0]![1]]);

    pending.shift()!.settle();
    await q.stop();
  });

  it('takes an urgent key before any ordinary one, however many wait (a revocation during a grant burst)', async () => {
    const { process, pending } = manual();
    const q = new WorkQueue(process, { workers: 1 });
    q.start();
    for (let i = 0; i < 2000; i += 1) q.add(`grant-${i}`);
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['grant-0']);
    q.add('revoke-a', true);
    q.add('grant-7', true); // a waiting key that turns urgent moves up, once
    q.add('grant-7');
    pending.shift()!.settle();
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['revoke-a']);
    pending.shift()!.settle();
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['grant-7']);
    pending.shift()!.settle();
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['grant-1']);
    expect(q.depth).toBe(1997);
    const stopped = q.stop();
    pending.shift()!.settle();
    await stopped;
  });

  it('keeps reserved workers for urgent keys: with every other worker busy on grants, a revocation starts at once', async () => {
    const { process, pending } = manual();
    const q = new WorkQueue(process, { workers: 4, urgentReserve: 1 });
    q.start();
    for (let i = 0; i < 100; i += 1) q.add(`grant-${i}`);
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['grant-0', 'grant-1', 'grant-2']);
    q.add('revoke-a', true);
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['grant-0', 'grant-1', 'grant-2', 'revoke-a']);
    // The reserved worker, once free, is not taken by a grant.
    pending.pop()!.settle();
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['grant-0', 'grant-1', 'grant-2']);
    pending.shift()!.settle();
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['grant-1', 'grant-2', 'grant-3']);
    const stopped = q.stop();
    for (const p of pending.splice(0)) p.settle();
    await stopped;
  });

  it('keeps a key urgent that turned urgent while it ran, and fires urgent timers into the urgent lane', async () => {
    const { process, pending } = manual();
    const q = new WorkQueue(process, { workers: 1 });
    q.start();
    q.add('task');
    await advance(0);
    q.add('other');
    q.add('task', true); // while it runs: again after, ahead of "other"
    q.addAfter('expiring', 1000, true);
    pending.shift()!.settle();
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['task']);
    await advance(1000);
    pending.shift()!.settle();
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['expiring']);
    pending.shift()!.settle();
    await advance(0);
    expect(pending.map((p) => p.key)).toEqual(['other']);
    pending.shift()!.settle();
    await q.stop();
  });
});
