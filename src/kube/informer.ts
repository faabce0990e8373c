// A list+watch cache that survives what real watches do: they end, stall, lose their place
// (410 Gone) and miss deletions. It restarts with backoff, re-lists on 410 and on a schedule
// (diffing the store so missed deletions still fire), and restarts a watch that has been
// silent for longer than bookmarks allow.
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { KubeConfig } from './client.js';
import { rest, statusMessage, watch, type WatchHandle } from './rest.js';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
}

export type InformerEvent = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (event: InformerEvent, object: T, old?: T) => void;

export interface InformerOptions {
  kc: KubeConfig;
  /** Collection path, e.g. `/api/v1/pods` or `/apis/taskgrant.io/v1alpha1/agenttasks`. */
  path: string;
  /** Bounded metric label, e.g. `agenttasks`. */
  resource: string;
  labelSelector?: string;
  logger: Logger;
  metrics: Metrics;
  /** Full re-list at least this often (catches anything a watch silently missed). */
  resyncMs?: number;
  /** A watch with no event or bookmark for this long is presumed dead and restarted. */
  stallMs?: number;
  /** Server-side watch timeout; the watch then resumes from the last resourceVersion. */
  watchTimeoutSeconds?: number;
}

/**
 * What a cache keeps of an object. managedFields (server-side apply bookkeeping) is often the
 * largest part of an object and nothing here reads it; client-go drops it the same way.
 */
export function slim<T extends KubeObject>(object: T): T {
  const metadata = object.metadata as Record<string, unknown>;
  if (metadata.managedFields === undefined) return object;
  const { managedFields: _dropped, ...rest } = metadata;
  return { ...object, metadata: rest as T['metadata'] };
}

export function keyOf(object: KubeObject): string {
  return object.metadata.namespace ? `${object.metadata.namespace}/${object.metadata.name}` : object.metadata.name;
}

/** etcd resourceVersions are integers; anything else is treated as unordered (always newer). */
function isOlder(candidate: KubeObject, current: KubeObject | undefined): boolean {
  if (!current) return false;
  const a = Number(candidate.metadata.resourceVersion);
  const b = Number(current.metadata.resourceVersion);
  return Number.isSafeInteger(a) && Number.isSafeInteger(b) && a < b;
}

class GoneError extends Error {}

function addTo(index: Map<string, Set<string>>, value: string, key: string): void {
  let keys = index.get(value);
  if (!keys) index.set(value, (keys = new Set()));
  keys.add(key);
}

export class Informer<T extends KubeObject> {
  private readonly store = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly indexers = new Map<string, (object: T) => string[]>();
  private readonly indexes = new Map<string, Map<string, Set<string>>>();
  private resourceVersion = '';
  private lastListAt = 0;
  private lastEventAt = 0;
  private stopped = false;
  private abort?: WatchHandle;
  private watchGeneration = 0;
  private loop?: Promise<void>;
  private syncedResolve?: () => void;
  readonly synced: Promise<void>;
  private hasSynced = false;

  constructor(private readonly options: InformerOptions) {
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
    this.indexers.set(name, indexer);
    const index = new Map<string, Set<string>>();
    this.indexes.set(name, index);
    for (const [key, object] of this.store) for (const value of indexer(object)) addTo(index, value, key);
  }

  byIndex(name: string, value: string): T[] {
    const keys = this.indexes.get(name)?.get(value);
    if (!keys) return [];
    return [...keys].map((k) => this.store.get(k)).filter((o): o is T => o !== undefined);
  }

  indexValues(name: string): string[] {
    return [...(this.indexes.get(name)?.keys() ?? [])];
  }

  private put(key: string, incoming: T): void {
    const object = slim(incoming);
    this.unindex(key);
    this.store.set(key, object);
    for (const [name, indexer] of this.indexers) for (const value of indexer(object)) addTo(this.indexes.get(name)!, value, key);
  }

  private remove(key: string): void {
    this.unindex(key);
    this.store.delete(key);
  }

  private unindex(key: string): void {
    const old = this.store.get(key);
    if (!old) return;
    for (const [name, indexer] of this.indexers) {
      const index = this.indexes.get(name)!;
      for (const value of indexer(old)) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys && keys.size === 0) index.delete(value);
      }
    }
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(namespace ? `${namespace}/${name}` : name);
  }

  list(): T[] {
    return [...this.store.values()];
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
    const old = this.store.get(key);
    if (isOlder(object, old)) return;
    this.put(key, object);
  }

  /** Write-through of a deletion we performed. */
  forget(namespace: string | undefined, name: string): void {
    this.remove(namespace ? `${namespace}/${name}` : name);
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
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  private async relist(): Promise<void> {
    const fresh = new Map<string, T>();
    let continueToken = '';
    let resourceVersion = '';
    do {
      const query = new URLSearchParams({ limit: '500' });
      if (this.options.labelSelector) query.set('labelSelector', this.options.labelSelector);
      if (continueToken) query.set('continue', continueToken);
      const res = await rest(this.options.kc, 'GET', `${this.options.path}?${query}`);
      if (res.status === 410) throw new GoneError('list continue token expired');
      if (res.status !== 200) throw new Error(`listing ${this.options.resource}: ${res.status} ${statusMessage(res.body)}`);
      const page = JSON.parse(res.body) as { items: T[]; metadata: { resourceVersion: string; continue?: string } };
      for (const item of page.items) fresh.set(keyOf(item), item);
      continueToken = page.metadata.continue ?? '';
      resourceVersion = page.metadata.resourceVersion;
    } while (continueToken);

    for (const [key, old] of this.store) {
      if (!fresh.has(key)) {
        this.remove(key);
        this.emit('delete', old);
      }
    }
    for (const [key, object] of fresh) {
      const old = this.store.get(key);
      if (old && isOlder(object, old)) continue; // a write-through newer than this list
      this.put(key, object);
      if (!old) this.emit('add', object);
      else if (old.metadata.resourceVersion !== object.metadata.resourceVersion) this.emit('update', object, old);
    }
    this.resourceVersion = resourceVersion;
    this.lastListAt = Date.now();
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.syncedResolve?.();
    }
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
          this.abort?.abort();
          finish(new Error('watch stalled'));
        }, stallMs);
        stallTimer.unref();
      };
      const params: Record<string, string | number | boolean> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.options.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60),
      };
      if (this.options.labelSelector) params.labelSelector = this.options.labelSelector;
      this.lastEventAt = Date.now();
      arm();
      watch(
        this.options.kc,
        this.options.path,
        params,
        (phase: string, object: unknown) => {
          if (settled || generation !== this.watchGeneration) return;
          this.lastEventAt = Date.now();
          arm();
          this.onWatchEvent(phase, object, finish);
        },
        (err?: Error) => finish(err ? new Error(`watch of ${this.options.resource} ended`, { cause: err }) : undefined),
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
      case 'MODIFIED': {
        const key = keyOf(object);
        const old = this.store.get(key);
        this.resourceVersion = object.metadata.resourceVersion ?? this.resourceVersion;
        if (isOlder(object, old)) return;
        this.put(key, object);
        this.emit(old ? 'update' : 'add', object, old);
        return;
      }
      case 'DELETED': {
        const key = keyOf(object);
        this.resourceVersion = object.metadata.resourceVersion ?? this.resourceVersion;
        const old = this.store.get(key);
        this.remove(key);
        this.emit('delete', old ?? object);
        return;
      }
      case 'BOOKMARK':
        this.resourceVersion = object.metadata?.resourceVersion ?? this.resourceVersion;
        return;
      case 'ERROR':
        this.abort?.abort();
        finish(object.code === 410 ? new GoneError('resourceVersion too old') : new Error(`watch error: ${JSON.stringify(object)}`));
        return;
      default:
        return;
    }
  }
}
