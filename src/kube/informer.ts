// A list+watch cache that survives what real watches do: they end, stall, lose their place
// (410 Gone) and miss deletions. It restarts with backoff, re-lists on 410 and on a schedule
// (diffing the store so missed deletions still fire), and restarts a watch that has been
// silent for longer than bookmarks allow.
//
// resourceVersions are opaque: only equality means anything (client-go never orders them). The
// watch stream is in order, so its latest event for a key wins and a list replaces the store. The
// one exception is a write-through (`upsert`): our write's own event is still on its way, and
// anything the stream says about that key before it is older than our write; see `Hold`.
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { KubeConfig } from './client.js';
import { transportOf } from './rest.js';
import { IndexedStore, keyOf, slim, type KubeObject } from './store.js';
import { statusMessage, WatchRefused, type Transport, type WatchHandle } from './transport.js';

export { keyOf, slim, type KubeObject } from './store.js';

export type InformerEvent = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (event: InformerEvent, object: T, old?: T) => void;

export interface InformerSettings {
  /** Collection path, e.g. `/api/v1/pods` or `/apis/taskgrant.io/v1alpha1/agenttasks`. */
  path: string;
  /** Bounded metric label, e.g. `agenttasks`. */
  resource: string;
  labelSelector?: string;
  /** E.g. `metadata.name=taskgrant-risk`: one named object, watched. */
  fieldSelector?: string;
  logger: Logger;
  metrics: Metrics;
  /** Full re-list at least this often (catches anything a watch silently missed). */
  resyncMs?: number;
  /** A watch with no event or bookmark for this long is presumed dead and restarted. */
  stallMs?: number;
  /** Server-side watch timeout; the watch then resumes from the last resourceVersion. */
  watchTimeoutSeconds?: number;
  /**
   * How long a write-through outranks the watch while the write's own event has not arrived;
   * after that the stream's view is shown again (a write whose event the stream skipped, e.g.
   * across a re-list, must not hide newer changes for ever).
   */
  writeHoldMs?: number;
}

/** Where the informer lists and watches: a Transport, or a kubeconfig reached over https. */
export type InformerOptions = InformerSettings & ({ transport: Transport } | { kc: KubeConfig });

class GoneError extends Error {}

/**
 * A write-through waiting for its own watch event. Until the event carrying `rv` arrives, every
 * event for the key precedes our write in the stream, so it is only noted (`stream`), never shown.
 */
interface Hold<T> {
  rv: string;
  /** What the stream says of the key meanwhile; undefined: the key is absent there. */
  stream: T | undefined;
  /** Order among writes: a list that began after this write already shows it (or later). */
  seq: number;
  timer: NodeJS.Timeout;
}

/** How many of a key's latest resourceVersions the stream is remembered to have delivered. */
const RECENT_VERSIONS = 4;

export class Informer<T extends KubeObject> {
  private readonly transport: Transport;
  private readonly store = new IndexedStore<T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly holds = new Map<string, Hold<T>>();
  /** Per key, the resourceVersions the stream delivered last (a write-through of one is stale). */
  private recent = new Map<string, string[]>();
  private writes = 0;
  private resourceVersion = '';
  private lastListAt = 0;
  private lastEventAt = 0;
  private stopped = false;
  private abort?: WatchHandle;
  private wake?: () => void;
  private watchGeneration = 0;
  private loop?: Promise<void>;
  private syncedResolve?: () => void;
  readonly synced: Promise<void>;
  private hasSynced = false;

  constructor(private readonly options: InformerOptions) {
    this.transport = transportOf('transport' in options ? options.transport : options.kc);
    this.synced = new Promise((resolve) => (this.syncedResolve = resolve));
  }

  get isSynced(): boolean {
    return this.hasSynced;
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  /** Keeps objects findable by `indexer`'s values (e.g. the task uid label) without scanning. */
  addIndex(name: string, indexer: (object: T) => string[]): void {
    this.store.addIndex(name, indexer);
  }

  byIndex(name: string, value: string): T[] {
    return this.store.byIndex(name, value);
  }

  indexValues(name: string): string[] {
    return this.store.indexValues(name);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(namespace ? `${namespace}/${name}` : name);
  }

  list(): T[] {
    return this.store.values();
  }

  get size(): number {
    return this.store.size;
  }

  /**
   * Write-through: the object a successful write returned. The watch event for the same write
   * follows; applying it now means the next reconcile never acts on the state before our write.
   */
  upsert(object: T): void {
    const key = keyOf(object);
    const rv = object.metadata.resourceVersion;
    // The stream has brought this version already, and perhaps later ones: the cache is as new.
    if (rv !== undefined && this.recent.get(key)?.includes(rv)) return;
    const held = this.holds.get(key);
    const streamView = held ? held.stream : this.store.get(key);
    this.release(key);
    this.store.put(key, slim(object));
    if (rv === undefined) return;
    const timer = setTimeout(() => this.expire(key), this.options.writeHoldMs ?? 30_000);
    timer.unref();
    this.holds.set(key, { rv, stream: streamView, seq: ++this.writes, timer });
  }

  /** Write-through of a deletion we performed. */
  forget(namespace: string | undefined, name: string): void {
    const key = namespace ? `${namespace}/${name}` : name;
    this.release(key);
    this.recent.delete(key);
    this.store.remove(key);
  }

  /** Starts the list/watch loop; resolves after the first successful list. */
  async start(): Promise<void> {
    this.loop = this.run();
    await this.synced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watchGeneration += 1;
    this.abort?.abort();
    this.wake?.(); // a backoff wait must not hold up shutdown
    for (const key of [...this.holds.keys()]) this.release(key);
    await this.loop;
  }

  private emit(event: InformerEvent, object: T, old?: T): void {
    for (const handler of this.handlers) {
      try {
        handler(event, object, old);
      } catch (err) {
        this.options.logger.error({ err, resource: this.options.resource }, 'informer handler failed');
      }
    }
  }

  private release(key: string): void {
    const hold = this.holds.get(key);
    if (!hold) return;
    clearTimeout(hold.timer);
    this.holds.delete(key);
  }

  /** The write's own event never came in time: show what the stream says instead. */
  private expire(key: string): void {
    const hold = this.holds.get(key);
    if (!hold) return;
    this.release(key);
    this.show(key, hold.stream, false);
  }

  /** Makes `next` (undefined: absent) the cached state of `key`, telling the handlers what changed. */
  private show(key: string, next: T | undefined, evenIfUnchanged: boolean): void {
    const old = this.store.get(key);
    if (!next) {
      this.store.remove(key);
      if (old) this.emit('delete', old);
      return;
    }
    this.store.put(key, slim(next));
    if (!old) this.emit('add', next);
    else if (evenIfUnchanged || old.metadata.resourceVersion !== next.metadata.resourceVersion) this.emit('update', next, old);
  }

  private remember(key: string, rv: string | undefined): void {
    if (rv === undefined) return;
    const versions = this.recent.get(key) ?? [];
    versions.push(rv);
    if (versions.length > RECENT_VERSIONS) versions.shift();
    this.recent.set(key, versions);
  }

  private async run(): Promise<void> {
    const resyncMs = this.options.resyncMs ?? 5 * 60_000;
    let delay = 100;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList || Date.now() - this.lastListAt > resyncMs) {
          await this.relist();
          needList = false;
        }
        await this.watchOnce();
        delay = 100;
      } catch (err) {
        if (this.stopped) break;
        needList = true;
        this.options.metrics.watchRestarts.inc({ resource: this.options.resource });
        if (err instanceof GoneError) {
          this.options.logger.info({ resource: this.options.resource }, 'watch expired (410), re-listing');
          continue;
        }
        this.options.logger.warn({ err, resource: this.options.resource, retryInMs: delay }, 'watch failed, restarting');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  /**
   * Lists page by page into the store, without a second full copy: each listed object replaces
   * its cached one as its page arrives, and what the whole list did not show is gone (a deletion
   * the watch missed). A failed list leaves the store with real, newer states of some objects and
   * removes nothing.
   */
  private async relist(): Promise<void> {
    const writesBefore = this.writes;
    const seen = new Set<string>();
    const recent = new Map<string, string[]>();
    let continueToken = '';
    let resourceVersion = '';
    do {
      const query = new URLSearchParams({ limit: '500' });
      if (this.options.labelSelector) query.set('labelSelector', this.options.labelSelector);
      if (this.options.fieldSelector) query.set('fieldSelector', this.options.fieldSelector);
      if (continueToken) query.set('continue', continueToken);
      const res = await this.transport.request('GET', `${this.options.path}?${query}`);
      if (res.status === 410) throw new GoneError('list continue token expired');
      if (res.status !== 200) throw new Error(`listing ${this.options.resource}: ${res.status} ${statusMessage(res.body)}`);
      const page = JSON.parse(res.body) as { items: T[]; metadata: { resourceVersion: string; continue?: string } };
      for (const item of page.items) {
        const key = keyOf(item);
        seen.add(key);
        if (item.metadata.resourceVersion !== undefined) recent.set(key, [item.metadata.resourceVersion]);
        this.applyListed(key, slim(item), writesBefore);
      }
      continueToken = page.metadata.continue ?? '';
      resourceVersion = page.metadata.resourceVersion;
    } while (continueToken);
    for (const [key] of [...this.store.entries()]) if (!seen.has(key)) this.applyListed(key, undefined, writesBefore);
    this.recent = recent;
    this.resourceVersion = resourceVersion;
    this.lastListAt = Date.now();
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.syncedResolve?.();
    }
  }

  /**
   * The list's word on `key` replaces the store's, except where we wrote after the list began
   * and it does not show our write: that write is newer.
   */
  private applyListed(key: string, listed: T | undefined, writesBefore: number): void {
    const hold = this.holds.get(key);
    if (hold && hold.seq > writesBefore && listed !== undefined && listed.metadata.resourceVersion !== hold.rv && listed.metadata.uid === this.store.get(key)?.metadata.uid) {
      hold.stream = listed;
      return;
    }
    this.release(key);
    this.show(key, listed, false);
  }

  /**
   * One watch at a time. Events of a watch we already gave up on can still trickle in; they must
   * neither touch the cache nor re-arm the stall timer, or they would disarm the current watch's
   * stall detection (seen under a fault-injecting proxy: the informer then waited for ever).
   */
  private watchOnce(): Promise<void> {
    const generation = ++this.watchGeneration;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let stallTimer: NodeJS.Timeout | undefined;
      const stallMs = this.options.stallMs ?? 150_000;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(stallTimer);
        if (generation === this.watchGeneration) this.watchGeneration += 1; // retire this watch
        if (err) reject(err);
        else resolve();
      };
      const arm = () => {
        clearTimeout(stallTimer);
        stallTimer = setTimeout(() => {
          this.options.logger.warn({ resource: this.options.resource, silentMs: Date.now() - this.lastEventAt }, 'watch silent too long, restarting');
          finish(new Error('watch stalled'));
          this.abort?.abort();
        }, stallMs);
        stallTimer.unref();
      };
      const params: Record<string, string | number | boolean> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.options.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60),
      };
      if (this.options.labelSelector) params.labelSelector = this.options.labelSelector;
      if (this.options.fieldSelector) params.fieldSelector = this.options.fieldSelector;
      this.lastEventAt = Date.now();
      arm();
      this.transport
        .watch(
          this.options.path,
          params,
          (phase: string, object: unknown) => {
            if (settled || generation !== this.watchGeneration) return;
            this.lastEventAt = Date.now();
            arm();
            this.onWatchEvent(phase, object, finish);
          },
          (err?: Error) => {
            if (err instanceof WatchRefused && err.status === 410) finish(new GoneError('resourceVersion too old', { cause: err }));
            else finish(err ? new Error(`watch of ${this.options.resource} ended`, { cause: err }) : undefined);
          },
        )
        .then((abort) => {
          if (settled || this.stopped) abort.abort();
          else this.abort = abort;
        })
        .catch((err: unknown) => finish(new Error(`starting watch of ${this.options.resource}`, { cause: err })));
    });
  }

  private onWatchEvent(phase: string, raw: unknown, finish: (err?: Error) => void): void {
    const object = raw as T & { code?: number; metadata?: { resourceVersion?: string } };
    switch (phase) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        const key = keyOf(object);
        const rv = object.metadata.resourceVersion;
        this.resourceVersion = rv ?? this.resourceVersion;
        const deleted = phase === 'DELETED';
        if (deleted) this.recent.delete(key);
        else this.remember(key, rv);
        // A deletion is never older than our write (a write to a deleted object fails; ours may
        // be what deleted it, by dropping the last finalizer), and another uid is another object:
        // neither waits behind a write-through.
        const hold = this.holds.get(key);
        if (hold && !deleted && hold.rv !== rv && this.store.get(key)?.metadata.uid === object.metadata.uid) {
          hold.stream = slim(object);
          return;
        }
        this.release(key);
        if (!deleted) {
          this.show(key, object, true);
          return;
        }
        const old = this.store.get(key);
        this.store.remove(key);
        this.emit('delete', old ?? object);
        return;
      }
      case 'BOOKMARK':
        this.resourceVersion = object.metadata?.resourceVersion ?? this.resourceVersion;
        return;
      case 'ERROR':
        // Finish first: aborting ends the stream, and that end must not be taken for the reason.
        finish(object.code === 410 ? new GoneError('resourceVersion too old') : new Error(`watch error: ${JSON.stringify(object)}`));
        this.abort?.abort();
        return;
      default:
        return;
    }
  }
}
