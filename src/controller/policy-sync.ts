// Keeps the policy engine fed: the policy directory (watched on disk) plus every ConfigMap
// labelled taskgrant.io/policy=true in the operator namespace. Each change loads the whole set;
// a set that fails is refused whole (the engine keeps the last good one) and reported.
import { watch, type FSWatcher } from 'node:fs';
import { configMapSources, readPolicyDir, type PolicyEngine, type PolicyFamily, type PolicySource } from '../policy/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';

/** A labelled policy ConfigMap, as much of it as policy sync reads. */
export interface PolicyConfigMap {
  metadata: { name: string; namespace?: string; uid?: string };
  data?: Record<string, string>;
}

/** The labelled policy ConfigMaps of the operator namespace, kept current (an informer). */
export interface PolicyConfigMaps {
  list(): PolicyConfigMap[];
  on(handler: () => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Tells the owner of a refused ConfigMap why (a Warning Event on it); must not throw. */
export type PolicyRejectionReporter = (configMap: PolicyConfigMap, message: string) => Promise<void>;

export interface PolicySyncOptions {
  engine: PolicyEngine;
  /** Which policies of the directory and ConfigMaps this sync feeds its engine (default grant). */
  family?: PolicyFamily;
  policyDir: string;
  namespace: string;
  configMaps: PolicyConfigMaps;
  reportRejection: PolicyRejectionReporter;
  logger: Logger;
  metrics: Metrics;
  onLoaded: (revision: string) => void;
}

export class PolicySync {
  private readonly configMaps: PolicyConfigMaps;
  private watcher?: FSWatcher;
  private debounce?: NodeJS.Timeout;
  private loading = Promise.resolve();

  constructor(private readonly options: PolicySyncOptions) {
    this.configMaps = options.configMaps;
    this.configMaps.on(() => this.schedule());
  }

  async start(): Promise<void> {
    await this.configMaps.start();
    await this.reload();
    try {
      this.watcher = watch(this.options.policyDir, () => this.schedule());
    } catch (err) {
      this.options.logger.warn({ err, dir: this.options.policyDir }, 'cannot watch the policy directory; changes there need a restart');
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.debounce);
    this.watcher?.close();
    await this.configMaps.stop();
  }

  private schedule(): void {
    clearTimeout(this.debounce);
    // Editors and kubectl apply write in bursts; load once they settle.
    this.debounce = setTimeout(() => void this.reload(), 200);
    this.debounce.unref();
  }

  /** Loads dir + ConfigMaps now; serialized so two loads never interleave. */
  reload(): Promise<void> {
    this.loading = this.loading.then(() => this.loadOnce()).catch((err: unknown) => this.options.logger.error({ err }, 'policy reload failed'));
    return this.loading;
  }

  private async loadOnce(): Promise<void> {
    const { engine, logger } = this.options;
    let sources: PolicySource[];
    try {
      const dir = await readPolicyDir(this.options.policyDir, this.options.family);
      sources = [...dir.sources];
    } catch (err) {
      logger.error({ err, dir: this.options.policyDir }, 'reading the policy directory failed; keeping the policies in force');
      this.options.metrics.policyReloads.inc({ result: 'rejected' });
      return;
    }
    const configMaps = this.configMaps.list().sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    for (const cm of configMaps) sources.push(...configMapSources(cm.metadata.namespace ?? this.options.namespace, cm.metadata.name, cm.data, this.options.family));
    const before = engine.revision;
    const result = engine.load(sources);
    switch (result.type) {
      case 'loaded':
        if (result.revision !== before) this.options.onLoaded(result.revision);
        return;
      case 'rejected':
        await this.reportRejection(configMaps, result.errors);
        return;
    }
  }

  private async reportRejection(configMaps: PolicyConfigMap[], errors: string[]): Promise<void> {
    const message = `Policy set refused, the previous set stays in force: ${errors.slice(0, 3).join('; ')}`.slice(0, 1024);
    const named = configMaps.filter((c) => errors.some((e) => e.includes(`configmap:${c.metadata.namespace}/${c.metadata.name}#`)));
    for (const cm of named) await this.options.reportRejection(cm, message);
  }
}
