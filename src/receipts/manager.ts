// Keeps every replica's key ring equal to the one in the store (a Secret, src/kube/signing-keys.ts),
// creates it on first start, rotates it on schedule and drops keys no receipt can carry any more.
//
// Replicas coordinate only through the store's resourceVersion: whoever saves first wins, a
// replica that loses (conflict) re-reads and adopts the winner's ring. New keys are made
// `leadMs` ahead of their activation, longer than a reload takes to reach every replica, and a
// replica whose last successful reload is older than that stops signing (fail closed) rather than
// sign with a key the others may already be retiring.
import type { SaveResult, StoredKeys } from '../api/index.js';
import type { Logger } from '../telemetry/logger.js';

export type { SaveResult, StoredKeys };
import { DEFAULT_CLOCK_SKEW_MS, KeyRing, MAX_RECEIPT_LIFETIME_SECONDS, decodeKeyRing, encodeKeyRing, type KeyRingOptions, type SigningKey } from './keys.js';
import type { KeySource } from './ports.js';



export interface SigningKeyStore {
  load(): Promise<StoredKeys | undefined>;
  /**
   * Creates (no resourceVersion) or replaces (only if still at `resourceVersion`) the stored
   * ring. `conflict` when another writer got there first; throws on any other failure.
   */
  save(document: string, resourceVersion?: string): Promise<SaveResult>;
}

export const DEFAULT_ROTATION_PERIOD_MS = 24 * 3_600_000;
export const DEFAULT_RELOAD_INTERVAL_MS = 60_000;
const MAX_SAVE_ATTEMPTS = 3;

export interface KeyManagerOptions {
  store: SigningKeyStore;
  logger: Logger;
  now?: () => Date;
  /** How long a key signs before the next one takes over (default 24 h). */
  rotationPeriodMs?: number;
  /** How often the store is re-read (default 60 s). */
  reloadIntervalMs?: number;
  /** Clock difference tolerated between replicas and verifiers (default 60 s). */
  clockSkewMs?: number;
}

type Loaded = { ring: KeyRing; resourceVersion: string } | { ring: undefined; resourceVersion: string | undefined };

export class KeyManager implements KeySource {
  private ring: KeyRing | undefined;
  private resourceVersion: string | undefined;
  private lastSyncAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly now: () => Date;
  private readonly rotationPeriodMs: number;
  private readonly reloadIntervalMs: number;
  /** How far ahead of its activation a new key is published; also how stale this replica may get. */
  readonly leadMs: number;
  readonly ringOptions: KeyRingOptions;

  constructor(private readonly options: KeyManagerOptions) {
    this.now = options.now ?? (() => new Date());
    this.rotationPeriodMs = options.rotationPeriodMs ?? DEFAULT_ROTATION_PERIOD_MS;
    this.reloadIntervalMs = options.reloadIntervalMs ?? DEFAULT_RELOAD_INTERVAL_MS;
    const skew = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
    // Two reloads: one failed reload must not yet cost this replica its ability to sign.
    this.leadMs = 2 * this.reloadIntervalMs + skew;
    this.ringOptions = { retentionMs: MAX_RECEIPT_LIFETIME_SECONDS * 1000 + skew };
    if (this.rotationPeriodMs <= this.leadMs) throw new Error(`the signing key rotation period must exceed ${this.leadMs} ms (twice the reload interval plus clock skew)`);
  }

  /** Whether a ring has been loaded and is fresh enough to sign with. */
  get ready(): boolean {
    return this.ring !== undefined && this.fresh(this.now().getTime());
  }

  /**
   * Loads (or creates) the ring, then re-reads it every reload interval, rotating and pruning
   * when due. Never rejects: until a sync succeeds, nothing is signed and `ready` is false.
   */
  async start(): Promise<void> {
    if (!this.timer) {
      this.timer = setInterval(() => void this.sync().catch(() => undefined), this.reloadIntervalMs);
      this.timer.unref();
    }
    await this.sync().catch(() => undefined);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  signingKey(nowMs: number): SigningKey | undefined {
    return this.ring && this.fresh(nowMs) ? this.ring.signingKey(nowMs) : undefined;
  }

  publishedKeys(nowMs: number): readonly SigningKey[] {
    return this.ring?.publishedKeys(nowMs) ?? [];
  }

  /** Re-reads the store and applies scheduled rotation and pruning. Rejects (after logging) on failure. */
  sync(): Promise<void> {
    return this.serialised(() => this.reconcile(false));
  }

  /** Rotates now (the new key still waits `leadMs` to sign), unless another replica rotated meanwhile. */
  rotateNow(): Promise<void> {
    return this.serialised(() => this.reconcile(true));
  }

  private fresh(nowMs: number): boolean {
    return nowMs - this.lastSyncAt < this.leadMs;
  }

  /** One sync at a time: a timer tick and a rotation must not both decide from the same read. */
  private serialised(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run.catch((err: unknown) => {
      this.options.logger.error({ err }, 'receipt signing keys could not be synchronised; the last loaded keys stay in use');
      throw err;
    });
  }

  private async load(): Promise<Loaded> {
    const stored = await this.options.store.load();
    if (!stored) return { ring: undefined, resourceVersion: undefined };
    if (stored.document === '') return { ring: undefined, resourceVersion: stored.resourceVersion };
    // Decoding imports every key: skip it when nothing changed since the last read.
    if (this.ring && stored.resourceVersion === this.resourceVersion) return { ring: this.ring, resourceVersion: stored.resourceVersion };
    try {
      return { ring: await decodeKeyRing(stored.document, this.ringOptions), resourceVersion: stored.resourceVersion };
    } catch (cause) {
      throw new Error('reading the stored receipt signing keys (delete the Secret to start a new ring; receipts already issued then stop verifying)', { cause });
    }
  }

  private adopt(ring: KeyRing, resourceVersion: string, at: number): void {
    const before = new Set(this.ring?.keys.map((k) => k.kid));
    this.ring = ring;
    this.resourceVersion = resourceVersion;
    this.lastSyncAt = at;
    const added = ring.keys.filter((k) => !before.has(k.kid));
    if (added.length > 0) this.options.logger.info({ kids: added.map((k) => k.kid), activatesAt: added.map((k) => new Date(k.activatesAt).toISOString()) }, 'receipt signing keys loaded');
  }

  private async reconcile(forceRotation: boolean): Promise<void> {
    let newestBefore: string | undefined;
    for (let attempt = 1; attempt <= MAX_SAVE_ATTEMPTS; attempt++) {
      const now = this.now().getTime();
      const loaded = await this.load();
      if (loaded.ring) this.adopt(loaded.ring, loaded.resourceVersion, now);
      const newest = loaded.ring?.keys.at(-1)?.kid;
      newestBefore ??= newest;
      let next: KeyRing;
      if (!loaded.ring) next = await KeyRing.create(now, this.ringOptions);
      else {
        next = loaded.ring.prune(now);
        // A forced rotation is void once someone else's rotation has landed since we first looked.
        const rotate = (forceRotation && newest === newestBefore) || next.dueForRotation(now, this.rotationPeriodMs, this.leadMs);
        if (rotate) next = await next.rotate(now, this.leadMs);
      }
      if (next === loaded.ring) return;
      const saved = await this.options.store.save(encodeKeyRing(next), loaded.resourceVersion);
      switch (saved.type) {
        case 'saved': {
          const dropped = (loaded.ring?.keys ?? []).filter((k) => !next.keys.includes(k)).map((k) => k.kid);
          if (dropped.length > 0) this.options.logger.info({ kids: dropped }, 'retired receipt signing keys dropped');
          this.adopt(next, saved.resourceVersion, now);
          return;
        }
        case 'conflict':
          this.options.logger.debug({ attempt }, 'another replica updated the receipt signing keys first; re-reading');
          continue;
        default: {
          const never: never = saved;
          throw new Error(`unexpected save result ${JSON.stringify(never)}`);
        }
      }
    }
    throw new Error(`saving the receipt signing keys lost ${MAX_SAVE_ATTEMPTS} races in a row`);
  }
}
