// Composition: config -> clients -> policy engine -> caches -> controller + servers.
// main.ts runs it as a process; integration tests start it in-process with their own config.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SCHEMA_FILE, PolicyEngine } from './policy/index.js';
import type { Config } from './config.js';
import { TaskController } from './controller/controller.js';
import { PolicySync } from './controller/policy-sync.js';
import { AuditTrail } from './controller/audit.js';
import { systemClock } from './controller/ports.js';
import { KubeCluster } from './kube/cluster.js';
import { loadKubeConfig } from './kube/client.js';
import { ConfigMapLedger } from './kube/ledger.js';
import { ensureNamespace, installCrds } from './kube/manifests.js';
import { startHealthServer, type RunningServer } from './telemetry/health.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { Metrics } from './telemetry/metrics.js';

export interface Operator {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly engine: PolicyEngine;
  readonly cluster: KubeCluster;
  readonly controller: TaskController;
  readonly policySync: PolicySync;
  readonly healthPort: number;
  stop(): Promise<void>;
}

export interface OperatorOverrides {
  logger?: Logger;
  metrics?: Metrics;
  /** Directory with the CRD manifests (install mode). */
  crdDir?: string;
  informer?: { resyncMs?: number; stallMs?: number; watchTimeoutSeconds?: number };
  sweepIntervalMs?: number;
}

export async function startOperator(config: Readonly<Config>, overrides: OperatorOverrides = {}): Promise<Operator> {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  const metrics = overrides.metrics ?? new Metrics({ defaultMetrics: true });
  const kc = loadKubeConfig(config.kubeconfig);
  const schemaText = await readFile(join(config.policyDir, SCHEMA_FILE), 'utf8');
  const engine = new PolicyEngine({ schemaText, logger, metrics });

  if (config.install) {
    await ensureNamespace(kc, config.namespace);
    await installCrds(kc, overrides.crdDir ?? 'crds');
  }

  const cluster = new KubeCluster({ kc, logger, metrics, ...(overrides.informer ? { informer: overrides.informer } : {}) });
  const ledger = new ConfigMapLedger(cluster.api, config.namespace);
  const audit = new AuditTrail(logger, cluster);
  let stopping = false;
  const controller = new TaskController({
    cluster,
    logger,
    metrics,
    workers: config.workers,
    sweepIntervalMs: overrides.sweepIntervalMs ?? 30_000,
    reconciler: {
      ledger,
      policy: engine,
      audit,
      clock: systemClock,
      settings: { reissueWindowMs: config.reissueWindowMs, retryPendingMs: 5_000, maxDelegationDepth: 16 },
    },
  });
  const policySync = new PolicySync({
    engine,
    policyDir: config.policyDir,
    namespace: config.namespace,
    kc,
    api: cluster.api,
    logger,
    metrics,
    onLoaded: (revision) => {
      logger.info({ revision, policies: engine.policyIds().length }, 'policy set loaded');
      metrics.policyRevisionInfo.set(engine.policyIds().length);
      controller.onPolicyReload();
    },
  });

  const health: RunningServer = await startHealthServer({
    host: config.healthHost,
    port: config.healthPort,
    registry: metrics.registry,
    notReady: () => (stopping ? 'shutting down' : !cluster.synced ? 'caches not synced' : !engine.ready ? 'no valid policy set loaded' : undefined),
  });

  await Promise.all([cluster.start(), policySync.start()]);
  controller.start();
  logger.info({ namespace: config.namespace, policyDir: config.policyDir, healthPort: health.port, revision: engine.revision }, 'taskgrant started');

  return {
    logger,
    metrics,
    engine,
    cluster,
    controller,
    policySync,
    healthPort: health.port,
    async stop() {
      stopping = true;
      await controller.stop();
      await policySync.stop();
      await cluster.stop();
      await health.close();
      logger.info({}, 'taskgrant stopped');
    },
  };
}
