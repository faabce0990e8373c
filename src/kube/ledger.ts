// The grant ledger: one ConfigMap per agent in the operator's namespace, listing the grants
// issued to it recently. Re-issuance limits are counted from here rather than from AgentTasks,
// so deleting a task (or restarting the operator) never resets an agent's count. Writes use
// the ConfigMap's resourceVersion, so two writers can never both record "the 20th grant".
import { createHash } from 'node:crypto';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../api/index.js';
import { isStatus, paths, type KubeApi } from './api.js';
import type { ConfigMapObject } from './objects.js';

export interface LedgerEntry {
  uid: string;
  task: string;
  /** Grant time, epoch ms. */
  at: number;
  ttlSeconds: number;
}

export const LABEL_LEDGER = 'taskgrant.io/ledger';

interface Cached {
  resourceVersion?: string;
  entries: LedgerEntry[];
}

/** The informer cache of ledger ConfigMaps (reads never become API calls once it is synced). */
export interface LedgerCache {
  readonly isSynced: boolean;
  get(namespace: string, name: string): ConfigMapObject | undefined;
  list(): ConfigMapObject[];
  upsert(object: ConfigMapObject): void;
  forget(namespace: string | undefined, name: string): void;
}

/**
 * The entries of a ledger ConfigMap as stored, every field kept (the webhook's pod-slot claims
 * ride in them); an unreadable document reads as empty.
 */
export function ledgerDocument(cm: ConfigMapObject | undefined): Array<Record<string, unknown>> {
  try {
    const parsed = JSON.parse(cm?.data?.grants ?? '[]') as unknown;
    return Array.isArray(parsed) ? parsed.filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null) : [];
  } catch {
    return [];
  }
}

function parseEntries(cm: ConfigMapObject): LedgerEntry[] {
  return ledgerDocument(cm).filter((e): e is Record<string, unknown> & LedgerEntry => typeof e.uid === 'string' && typeof e.at === 'number' && typeof e.ttlSeconds === 'number');
}

export class ConfigMapLedger {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly api: KubeApi,
    private readonly namespace: string,
    private readonly informer?: LedgerCache,
  ) {}

  static nameFor(namespace: string, agent: string): string {
    return `taskgrant-ledger-${createHash('sha256').update(`${namespace}/${agent}`).digest('hex').slice(0, 20)}`;
  }

  /** Forget cached state (on gaining leadership: another replica may have written since). */
  reset(): void {
    this.cache.clear();
  }

  async entries(namespace: string, agent: string): Promise<LedgerEntry[]> {
    return (await this.load(namespace, agent)).entries;
  }

  private async load(namespace: string, agent: string): Promise<Cached> {
    const name = ConfigMapLedger.nameFor(namespace, agent);
    if (this.informer?.isSynced) {
      const cm = this.informer.get(this.namespace, name);
      return cm ? { resourceVersion: cm.metadata.resourceVersion, entries: parseEntries(cm) } : { entries: [] };
    }
    const cached = this.cache.get(name);
    if (cached) return cached;
    try {
      const cm = await this.api.get<ConfigMapObject>(paths.configMap(this.namespace, name));
      const fresh = { resourceVersion: cm.metadata.resourceVersion, entries: parseEntries(cm) } as Cached;
      this.cache.set(name, fresh);
      return fresh;
    } catch (err) {
      if (!isStatus(err, 404)) throw new Error(`reading grant ledger of ${namespace}/${agent}`, { cause: err });
      const empty: Cached = { entries: [] };
      this.cache.set(name, empty);
      return empty;
    }
  }

  /**
   * Records the grant (idempotent per uid). On a lost write race it throws: the caller must
   * re-read and decide again, since the count its decision used is no longer true.
   */
  async append(namespace: string, agent: string, entry: LedgerEntry, windowMs: number): Promise<void> {
    const name = ConfigMapLedger.nameFor(namespace, agent);
    const current = await this.load(namespace, agent);
    if (current.entries.some((e) => e.uid === entry.uid)) return;
    // Twice the window: re-deciding a live grant looks at the window before its own issue time.
    // And every grant still live, however old: its entry is the proof the operator granted it.
    const horizon = entry.at - 2 * windowMs;
    const entries = [...current.entries.filter((e) => e.at >= horizon || e.at + e.ttlSeconds * 1000 > entry.at), entry];
    const body: ConfigMapObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name,
        namespace: this.namespace,
        labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_LEDGER]: 'true' },
        annotations: { 'taskgrant.io/agent': `${namespace}/${agent}` },
        ...(current.resourceVersion ? { resourceVersion: current.resourceVersion } : {}),
      },
      data: { grants: JSON.stringify(entries) },
    };
    try {
      const written = current.resourceVersion
        ? await this.api.replace<ConfigMapObject>(paths.configMap(this.namespace, name), body)
        : await this.api.create<ConfigMapObject>(paths.configMaps(this.namespace), body);
      this.cache.set(name, { resourceVersion: written.metadata.resourceVersion, entries });
      this.informer?.upsert(written);
    } catch (err) {
      this.cache.delete(name);
      if (isStatus(err, 409)) await this.reread(name);
      throw new Error(`recording grant of ${namespace}/${agent} in the ledger`, { cause: err });
    }
  }

  /**
   * Deletes the ledgers in which nothing counts any more: every entry older than twice the
   * re-issuance window (what re-deciding a live grant looks back over) and no grant in it still
   * live. An agent that comes back starts a new one; its count was zero anyway. Each delete
   * carries the resourceVersion it judged, so a grant recorded meanwhile is never lost.
   */
  async prune(now: number, windowMs: number): Promise<number> {
    if (!this.informer?.isSynced) return 0;
    let deleted = 0;
    for (const cm of this.informer.list()) {
      const entries = parseEntries(cm);
      const counts = entries.some((e) => e.at >= now - 2 * windowMs || e.at + e.ttlSeconds * 1000 > now);
      if (counts) continue;
      try {
        const gone = await this.api.delete(paths.configMap(this.namespace, cm.metadata.name), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { resourceVersion: cm.metadata.resourceVersion } });
        this.cache.delete(cm.metadata.name);
        this.informer.forget(this.namespace, cm.metadata.name);
        if (gone) deleted += 1;
      } catch (err) {
        // 409: written since it was judged (a new grant): it stays.
        if (!isStatus(err, 409)) throw new Error(`deleting grant ledger ${cm.metadata.name}`, { cause: err });
      }
    }
    return deleted;
  }

  /**
   * After a lost race: the winner's record, read now, so the caller's next decision counts its
   * grants even while the informer's watch has yet to bring them.
   */
  private async reread(name: string): Promise<void> {
    try {
      const cm = await this.api.get<ConfigMapObject>(paths.configMap(this.namespace, name));
      this.cache.set(name, { resourceVersion: cm.metadata.resourceVersion, entries: parseEntries(cm) });
      this.informer?.upsert(cm);
    } catch {
      // The next read tries again; the lost race is what the caller has to hear about.
    }
  }
}
