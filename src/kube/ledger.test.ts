// Two replicas writing one agent's ledger: the loser of a write race hears about it, and its
// next read shows the winner's grant, so no grant is ever recorded over (and lost).
import { describe, expect, it } from '@jest/globals';
import { KubeApi, paths } from './api.js';
import { ConfigMapLedger, type LedgerCache, type LedgerEntry } from './ledger.js';
import type { ConfigMapObject } from './objects.js';
import { FakeApiServer, FakeTransport } from './transport.test-support.js';

const NS = 'taskgrant-system';
const WINDOW_MS = 3_600_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

const entry = (uid: string, at = T0): LedgerEntry => ({ uid, task: `team-a/${uid}`, at, ttlSeconds: 600 });
const uids = (entries: LedgerEntry[]) => entries.map((e) => e.uid);

function replica(server: FakeApiServer, cache?: LedgerCache): ConfigMapLedger {
  return new ConfigMapLedger(new KubeApi(new FakeTransport(server.handle)), NS, cache);
}

function stored(server: FakeApiServer): string[] {
  const cm = server.objects.get(paths.configMap(NS, ConfigMapLedger.nameFor('team-a', 'agent'))) as ConfigMapObject | undefined;
  return uids(JSON.parse(cm?.data?.grants ?? '[]') as LedgerEntry[]);
}

/** An informer cache that only changes when written through (its watch is behind). */
class LaggingCache implements LedgerCache {
  readonly isSynced = true;
  private readonly objects = new Map<string, ConfigMapObject>();

  get(namespace: string, name: string): ConfigMapObject | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }

  upsert(object: ConfigMapObject): void {
    this.objects.set(`${object.metadata.namespace}/${object.metadata.name}`, object);
  }

  list(): ConfigMapObject[] {
    return [...this.objects.values()];
  }

  forget(namespace: string | undefined, name: string): void {
    this.objects.delete(`${namespace}/${name}`);
  }
}

describe('ConfigMapLedger', () => {
  it('refuses the second of two first grants raced into a new ledger, and its retry keeps both', async () => {
    const server = new FakeApiServer();
    const a = replica(server);
    const b = replica(server);
    expect(await a.entries('team-a', 'agent')).toEqual([]);
    expect(await b.entries('team-a', 'agent')).toEqual([]);

    await a.append('team-a', 'agent', entry('one'), WINDOW_MS);
    await expect(b.append('team-a', 'agent', entry('two'), WINDOW_MS)).rejects.toThrow('recording grant of team-a/agent in the ledger');

    expect(uids(await b.entries('team-a', 'agent'))).toEqual(['one']);
    await b.append('team-a', 'agent', entry('two'), WINDOW_MS);
    expect(stored(server)).toEqual(['one', 'two']);
  });

  it('refuses a write over a record that changed since it was read, and its re-read sees the winner', async () => {
    const server = new FakeApiServer();
    const a = replica(server);
    await a.append('team-a', 'agent', entry('zero'), WINDOW_MS);
    const b = replica(server);
    expect(uids(await b.entries('team-a', 'agent'))).toEqual(['zero']);

    await a.append('team-a', 'agent', entry('one'), WINDOW_MS);
    await expect(b.append('team-a', 'agent', entry('two'), WINDOW_MS)).rejects.toThrow('recording grant');
    expect(uids(await b.entries('team-a', 'agent'))).toEqual(['zero', 'one']);
    await b.append('team-a', 'agent', entry('two'), WINDOW_MS);
    expect(stored(server)).toEqual(['zero', 'one', 'two']);
  });

  it('after a lost race, reads the winner even while its informer cache has not caught up', async () => {
    const server = new FakeApiServer();
    const cacheA = new LaggingCache();
    const cacheB = new LaggingCache();
    const a = replica(server, cacheA);
    const b = replica(server, cacheB);
    await a.append('team-a', 'agent', entry('one'), WINDOW_MS);
    await expect(b.append('team-a', 'agent', entry('two'), WINDOW_MS)).rejects.toThrow('recording grant');

    expect(uids(await b.entries('team-a', 'agent'))).toEqual(['one']);
    await b.append('team-a', 'agent', entry('two'), WINDOW_MS);
    expect(stored(server)).toEqual(['one', 'two']);
  });

  it('records a grant once however often it is appended', async () => {
    const server = new FakeApiServer();
    const a = replica(server);
    await a.append('team-a', 'agent', entry('one'), WINDOW_MS);
    await a.append('team-a', 'agent', entry('one'), WINDOW_MS);
    expect(stored(server)).toEqual(['one']);
  });

  it('prunes a ledger in which nothing counts any more, and keeps one with a recent or live grant', async () => {
    const server = new FakeApiServer();
    const cache = new LaggingCache();
    const ledger = replica(server, cache);
    await ledger.append('team-a', 'old', entry('old', T0), WINDOW_MS);
    await ledger.append('team-a', 'recent', entry('recent', T0 + 2 * WINDOW_MS), WINDOW_MS);
    await ledger.append('team-a', 'long', { ...entry('long', T0), ttlSeconds: 4 * 3600 }, WINDOW_MS);
    const now = T0 + 2 * WINDOW_MS + 60_000;
    expect(await ledger.prune(now, WINDOW_MS)).toBe(1);
    const left = [...server.objects.keys()].map((k) => k.split('/').at(-1));
    expect(left.sort()).toEqual([ConfigMapLedger.nameFor('team-a', 'long'), ConfigMapLedger.nameFor('team-a', 'recent')].sort());
    expect(await ledger.entries('team-a', 'old')).toEqual([]);
  });

  it('never prunes a ledger written since it was judged (the resourceVersion precondition)', async () => {
    const server = new FakeApiServer();
    const cache = new LaggingCache();
    const ledger = replica(server, cache);
    await ledger.append('team-a', 'agent', entry('old', T0), WINDOW_MS);
    // Another replica records a new grant; this replica's cache has not seen it.
    const other = replica(server);
    await other.append('team-a', 'agent', entry('new', T0 + 3 * WINDOW_MS), WINDOW_MS);
    expect(await ledger.prune(T0 + 3 * WINDOW_MS, WINDOW_MS)).toBe(0);
    expect(stored(server)).toEqual(['new']); // the new grant is kept (the old one aged out as it was written)
  });
});
