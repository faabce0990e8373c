// An informer's cache: what it keeps of each object, by key, with named indexes kept in step
// with every put and remove.

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
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

function addTo(index: Map<string, Set<string>>, value: string, key: string): void {
  let keys = index.get(value);
  if (!keys) index.set(value, (keys = new Set()));
  keys.add(key);
}

export class IndexedStore<T> {
  private readonly objects = new Map<string, T>();
  private readonly indexers = new Map<string, (object: T) => string[]>();
  private readonly indexes = new Map<string, Map<string, Set<string>>>();

  /** Keeps objects findable by `indexer`'s values (e.g. the task uid label) without scanning. */
  addIndex(name: string, indexer: (object: T) => string[]): void {
    this.indexers.set(name, indexer);
    const index = new Map<string, Set<string>>();
    this.indexes.set(name, index);
    for (const [key, object] of this.objects) for (const value of indexer(object)) addTo(index, value, key);
  }

  byIndex(name: string, value: string): T[] {
    const keys = this.indexes.get(name)?.get(value);
    if (!keys) return [];
    return [...keys].map((k) => this.objects.get(k)).filter((o): o is T => o !== undefined);
  }

  indexValues(name: string): string[] {
    return [...(this.indexes.get(name)?.keys() ?? [])];
  }

  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  put(key: string, object: T): void {
    this.unindex(key);
    this.objects.set(key, object);
    for (const [name, indexer] of this.indexers) for (const value of indexer(object)) addTo(this.indexes.get(name)!, value, key);
  }

  remove(key: string): void {
    this.unindex(key);
    this.objects.delete(key);
  }

  entries(): IterableIterator<[string, T]> {
    return this.objects.entries();
  }

  values(): T[] {
    return [...this.objects.values()];
  }

  get size(): number {
    return this.objects.size;
  }

  private unindex(key: string): void {
    const old = this.objects.get(key);
    if (old === undefined) return;
    for (const [name, indexer] of this.indexers) {
      const index = this.indexes.get(name)!;
      for (const value of indexer(old)) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys && keys.size === 0) index.delete(value);
      }
    }
  }
}
