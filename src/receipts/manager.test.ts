import { describe, expect, it } from '@jest/globals';
import { silentLogger } from '../telemetry/logger.js';
import { KeyRing, encodeKeyRing } from './keys.js';
import { Clock, MemoryStore, T0 } from './kit.test-support.js';
import { KeyManager } from './manager.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

function manager(store: MemoryStore, clock: Clock, rotationPeriodMs = 24 * HOUR): KeyManager {
  return new KeyManager({ store, logger: silentLogger(), now: clock.now, rotationPeriodMs, reloadIntervalMs: MIN, clockSkewMs: MIN });
}

const published = (m: KeyManager, clock: Clock) => m.publishedKeys(clock.ms).map((k) => k.kid);

describe('KeyManager', () => {
  it('creates the ring on first start and every later replica loads the same keys', async () => {
    const store = new MemoryStore();
    const clock = new Clock();
    const a = manager(store, clock);
    await a.start();
    a.stop();
    expect(a.ready).toBe(true);
    expect(store.saves).toBe(1);
    const b = manager(store, clock);
    await b.start();
    b.stop();
    expect(b.signingKey(clock.ms)?.kid).toBe(a.signingKey(clock.ms)?.kid);
    expect(store.saves).toBe(1);
  });

  it('rotates when the period is up, publishing the new key a lead time before it signs, and drops the old key after its receipts expired', async () => {
    const store = new MemoryStore();
    const clock = new Clock();
    const m = manager(store, clock, 2 * HOUR);
    await m.start();
    m.stop();
    const first = m.signingKey(clock.ms)!.kid;
    clock.advance(HOUR);
    await m.sync();
    expect(published(m, clock)).toEqual([first]);

    clock.advance(HOUR - m.leadMs);
    await m.sync();
    const second = m.publishedKeys(clock.ms).at(-1)!.kid;
    expect(second).not.toBe(first);
    expect(m.signingKey(clock.ms)?.kid).toBe(first);
    clock.advance(m.leadMs);
    await m.sync();
    expect(m.signingKey(clock.ms)?.kid).toBe(second);
    expect(published(m, clock)).toEqual([first, second]);

    clock.advance(m.ringOptions.retentionMs);
    await m.sync();
    expect(published(m, clock)).toEqual([second]);
    // The drop is persisted, so a new replica never publishes the old key again.
    const fresh = manager(store, clock);
    await fresh.start();
    fresh.stop();
    expect(published(fresh, clock)).toEqual([second]);
  });

  it('adopts the other replica\'s rotation when it loses the write race, instead of rotating twice', async () => {
    const store = new MemoryStore();
    const clock = new Clock();
    const a = manager(store, clock);
    const b = manager(store, clock);
    await a.start();
    await b.start();
    a.stop();
    b.stop();
    store.beforeSave = () => a.rotateNow();
    await b.rotateNow();
    expect(a.publishedKeys(clock.ms)).toHaveLength(2);
    await a.sync();
    expect(published(b, clock)).toEqual(published(a, clock));
    expect(JSON.parse(store.stored!.document).keys).toHaveLength(2);
  });

  it('stops signing (but keeps publishing) when it has not reloaded for the lead time', async () => {
    const store = new MemoryStore();
    const clock = new Clock();
    const m = manager(store, clock);
    await m.start();
    m.stop();
    store.load = async () => {
      throw new Error('API server unreachable');
    };
    clock.advance(m.leadMs - 1);
    await expect(m.sync()).rejects.toThrow('unreachable');
    expect(m.signingKey(clock.ms)).toBeDefined();
    clock.advance(1);
    expect(m.signingKey(clock.ms)).toBeUndefined();
    expect(m.publishedKeys(clock.ms)).toHaveLength(1);
    expect(m.ready).toBe(false);
  });

  it('never overwrites a stored ring it cannot read, and signs nothing', async () => {
    const store = new MemoryStore();
    const clock = new Clock();
    const doc = JSON.parse(encodeKeyRing(await KeyRing.create(T0))) as Record<string, unknown>;
    store.stored = { document: JSON.stringify({ ...doc, version: 99 }), resourceVersion: '7' };
    const m = manager(store, clock);
    await m.start();
    m.stop();
    expect(m.ready).toBe(false);
    expect(m.signingKey(clock.ms)).toBeUndefined();
    expect(store.saves).toBe(0);
    expect(store.stored.resourceVersion).toBe('7');
  });

  it('starts a new ring in an emptied Secret', async () => {
    const store = new MemoryStore();
    store.stored = { document: '', resourceVersion: '3' };
    const m = manager(store, new Clock());
    await m.start();
    m.stop();
    expect(m.ready).toBe(true);
    expect(store.saves).toBe(1);
  });

  it('refuses a rotation period that a reload could not keep up with', () => {
    expect(() => manager(new MemoryStore(), new Clock(), 2 * MIN)).toThrow('rotation period');
  });
});
