// Counting and writing usage: what a replica adds lands on top of what the status holds, a
// conflict loses nothing, and unused permissions only ever shrink.
import { describe, expect, it } from '@jest/globals';
import type { AgentTask, TaskUsage } from '../api/index.js';
import { UsageBook, usageAfter } from './usage.js';

const NOW = new Date('2026-12-07T10:05:00Z');
const task = (usage?: TaskUsage): AgentTask => ({
  apiVersion: 'taskgrant.io/v1alpha1',
  kind: 'AgentTask',
  metadata: { name: 'logs', namespace: 'team-a', uid: 'uid-1', resourceVersion: '7' },
  spec: { agent: 'a', intent: { objective: 'o', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }] } },
  status: { phase: 'Active', ...(usage ? { usage } : {}) },
});
const list = { verb: 'list', apiGroup: '', resource: 'pods', name: '', namespace: 'team-a' };

describe('UsageBook', () => {
  it('sees the status plus what it counted and has not written', () => {
    const book = new UsageBook();
    const t = task({ requests: 10, denied: 2 });
    book.record(t, 'passed', list);
    book.record(t, 'denied');
    expect(book.seen(t)).toEqual({ requests: 12, denied: 3 });
    expect(book.pending()).toEqual([{ uid: 'uid-1', namespace: 'team-a', name: 'logs' }]);
  });

  it('writes its counts on top of the status, then counts from the written status', async () => {
    const book = new UsageBook();
    const t = task({ requests: 10, denied: 2, unusedPermissions: ['get pods in team-a', 'list pods in team-a', 'watch pods in team-a'] });
    book.record(t, 'passed', list);
    book.record(t, 'passed', list);
    const written: TaskUsage[] = [];
    let stored = t;
    await book.flush(t, async (_task, usage) => {
      written.push(usage);
      stored = task(usage);
      return stored;
    }, NOW);
    expect(written).toEqual([{ requests: 12, denied: 2, unusedPermissions: ['get pods in team-a', 'watch pods in team-a'], updatedAt: NOW.toISOString() }]);
    expect(book.seen(stored)).toEqual({ requests: 12, denied: 2 });
    expect(book.pending()).toEqual([]);
  });

  it('keeps every count when the write fails (a conflict with another replica), for the next round', async () => {
    const book = new UsageBook();
    const t = task();
    book.record(t, 'denied');
    await expect(book.flush(t, () => Promise.reject(new Error('409 Conflict')), NOW)).rejects.toThrow('409');
    // Another replica wrote 5 meanwhile: the next round adds ours on top of those.
    const newer = task({ requests: 5, denied: 0 });
    expect(book.seen(newer)).toEqual({ requests: 6, denied: 1 });
    let usage: TaskUsage | undefined;
    await book.flush(newer, async (_t, u) => ((usage = u), newer), NOW);
    expect(usage).toMatchObject({ requests: 6, denied: 1 });
  });

  it('counts requests made while a write is in flight in the next one', async () => {
    const book = new UsageBook();
    const t = task();
    book.record(t, 'passed', list);
    await book.flush(t, async () => {
      book.record(t, 'passed', list);
      return task({ requests: 1, denied: 0 });
    }, NOW);
    expect(book.pending()).toHaveLength(1);
    expect(book.seen(task({ requests: 1, denied: 0 }))).toEqual({ requests: 2, denied: 0 });
  });
});

describe('usageAfter', () => {
  it('starts from every granted permission unused', () => {
    expect(usageAfter(task(), 1, 0, new Set(['get pods in team-a']), NOW).unusedPermissions).toEqual(['list pods in team-a', 'watch pods in team-a']);
  });
});
