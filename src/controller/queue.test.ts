import { describe, expect, it } from '@jest/globals';
import { WorkQueue } from './queue.js';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

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
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const q = new WorkQueue(
      async () => {
        running += 1;
        runs += 1;
        maxRunning = Math.max(maxRunning, running);
        await tick(20);
        running -= 1;
      },
      { workers: 4 },
    );
    q.start();
    q.add('k');
    await tick(5);
    q.add('k');
    q.add('k');
    await tick(100);
    await q.idle();
    expect(maxRunning).toBe(1);
    expect(runs).toBe(2);
  });

  it('retries a failing key with growing delays', async () => {
    const at: number[] = [];
    const q = new WorkQueue(
      async () => {
        at.push(Date.now());
        if (at.length < 3) throw new Error('boom');
      },
      { workers: 1, baseDelayMs: 20 },
    );
    q.start();
    q.add('k');
    await tick(200);
    expect(at).toHaveLength(3);
    expect(at[2]! - at[1]!).toBeGreaterThan(at[1]! - at[0]!);
    await q.stop();
  });

  it('cancels the timer of a key whose object is gone', async () => {
    const seen: string[] = [];
    const q = new WorkQueue(async (k) => void seen.push(k), { workers: 1 });
    q.start();
    q.addAfter('gone', 30);
    q.addAfter('kept', 30);
    q.cancel('gone');
    await tick(80);
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
    await tick(80);
    expect(seen).toHaveLength(1);
    expect(seen[0]! - start).toBeLessThan(150);
    await q.stop();
  });
});
