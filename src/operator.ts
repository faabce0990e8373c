// Composition: config -> clients -> policy engine -> caches -> controller + servers.
// main.ts runs it as a process; integration tests start it in-process with their own config.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RUNTIME_SCHEMA_FILE, SCHEMA_FILE, PolicyEngine } from './policy/index.js';
import { delegationDepthOf, sensitivityFloorOf } from './api/index.js';
import { RequestAuthorizer, UsageBook, UsageFlusher, authzListener } from './authz/index.js';
import { withRisk } from './controller/risk.js';
import { isStatus } from './kube/api.js';
import type { Config } from './config.js';
import { TaskController } from './controller/controller.js';
import { PolicySync } from './controller/policy-sync.js';
import { AuditTrail } from './controller/audit.js';
import { systemClock } from './controller/ports.js';
import { KubeCluster } from './kube/cluster.js';
import { loadKubeConfig } from './kube/client.js';
import { ConfigMapLedger } from './kube/ledger.js';
import { ensureNamespace, installCrds, installGuards, installPodPolicies, servesMutatingAdmissionPolicies } from './kube/manifests.js';
import { Reviews } from './kube/reviews.js';
import { SecretTlsStore } from './kube/tls-store.js';
import { CaBundleInjector, installWebhookConfigurations } from './kube/webhook-config.js';
import { WEBHOOK_ROUTES, createApp, serveHttps, type HttpsHandle, type WebhookDeps } from './webhook/index.js';
import { FileCerts, SelfManagedCerts, type CertSource } from './webhook/tls.js';
import { KeyManager, createReceiptsRouter, defaultIssuer } from './receipts/index.js';
import { SecretSigningKeyStore } from './kube/signing-keys.js';
import { loadAuditKey } from './kube/audit-key.js';
import { LedgerPodSlots } from './kube/pod-slots.js';
import { LeaderElector } from './kube/leader.js';
import { publishModes, type Modes } from './kube/modes.js';
import { ManagedServiceAccounts, TaskOfServiceAccount, TaskPods, heldSlots } from './kube/lookups.js';
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
  readonly webhookPort: number;
  /** The request-time authorizer's port, when it is served. */
  readonly authzPort: number | undefined;
  /** How task pods are admitted in fact (policy falls back to webhook where unsupported). */
  readonly admissionMode: Config['admissionMode'];
  /** Stops the webhook server alone (tests simulate a webhook outage with it). */
  stopWebhook(): Promise<void>;
  /** Resolves if this replica loses leadership while running (the process should exit). */
  readonly lostLeadership: Promise<void>;
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
  const kc = await loadKubeConfig(config.kubeconfig);
  const schemaText = await readFile(join(config.policyDir, SCHEMA_FILE), 'utf8');
  const engine = new PolicyEngine({ schemaText, logger, metrics });
  const runtimeEngine = new PolicyEngine({ schemaText: await readFile(join(config.policyDir, RUNTIME_SCHEMA_FILE), 'utf8'), logger, metrics, family: 'runtime' });

  if (config.install) {
    await ensureNamespace(kc, config.namespace);
    await installCrds(kc, overrides.crdDir ?? 'crds');
  }

  // Policy mode where the API server can do it (MutatingAdmissionPolicy, Kubernetes 1.36+).
  let admissionMode = config.admissionMode;
  if (admissionMode === 'policy' && !(await servesMutatingAdmissionPolicies(kc))) {
    logger.warn({}, 'the API server does not serve MutatingAdmissionPolicy (Kubernetes 1.36+): task pods are admitted by the webhook instead');
    admissionMode = 'webhook';
  }

  const cluster = new KubeCluster({ kc, logger, metrics, operatorNamespace: config.namespace, informer: { resyncMs: config.informerResyncMs, stallMs: config.informerStallMs, ...overrides.informer } });
  const ledger = new ConfigMapLedger(cluster.api, config.namespace, cluster.ledgers);
  let auditKey: Buffer = Buffer.alloc(0);
  await retrying('loading the audit key', async () => void (auditKey = await loadAuditKey(cluster.api, config.namespace)), logger);
  const audit = new AuditTrail(logger, cluster, auditKey, systemClock);
  const reviews = new Reviews(cluster.api);
  let stopping = false;
  let startedUp = false;
  const controller = new TaskController({
    cluster,
    logger,
    metrics,
    workers: config.workers,
    sweepIntervalMs: overrides.sweepIntervalMs ?? 30_000,
    reconciler: {
      ledger,
      // The cluster's risk level is part of every grant-time decision (controller/risk.ts).
      policy: withRisk(engine, () => cluster.riskLevel().level),
      approvers: {
        mayApprove: (approver, namespace) =>
          reviews.userCan({ username: approver.username ?? '', ...(approver.uid ? { uid: approver.uid } : {}), groups: approver.groups ?? [] }, { verb: 'approve', group: 'taskgrant.io', resource: 'agenttasks', namespace }),
      },
      audit,
      clock: systemClock,
      settings: { reissueWindowMs: config.reissueWindowMs, retryPendingMs: 5_000, retentionMs: config.retentionMs, operatorNamespace: config.namespace, liveLabel: admissionMode === 'policy' },
    },
  });
  const policySync = new PolicySync({
    engine,
    policyDir: config.policyDir,
    namespace: config.namespace,
    configMaps: { list: () => cluster.policyConfigMaps.list(), on: (handler) => cluster.policyConfigMaps.on(() => handler()), start: () => cluster.policyConfigMaps.start(), stop: () => cluster.policyConfigMaps.stop() },
    reportRejection: (cm, message) => cluster.reportPolicyRejection(cm, message),
    logger,
    metrics,
    onLoaded: (revision) => {
      logger.info({ revision, policies: engine.policyIds().length }, 'policy set loaded');
      metrics.policyRevisionInfo.set(engine.policyIds().length);
      controller.onPolicyReload();
    },
  });

  // The runtime family shares the directory and the ConfigMaps (keys *.runtime.cedar); the
  // grant family's sync starts and stops the ConfigMap informer for both.
  const runtimeSync = new PolicySync({
    engine: runtimeEngine,
    family: 'runtime',
    policyDir: config.policyDir,
    namespace: config.namespace,
    configMaps: { list: () => cluster.policyConfigMaps.list(), on: (handler) => cluster.policyConfigMaps.on(() => handler()), start: async () => undefined, stop: async () => undefined },
    reportRejection: (cm, message) => cluster.reportPolicyRejection(cm, message),
    logger,
    metrics,
    onLoaded: (revision) => logger.info({ revision, policies: runtimeEngine.policyIds().length }, 'runtime policy set loaded'),
  });
  let riskLevel = 'normal';
  cluster.risk.on(() => {
    const reading = cluster.riskLevel();
    if (reading.problem) logger.error({ problem: reading.problem }, 'the risk level ConfigMap holds no valid level');
    if (reading.level === riskLevel) return;
    logger.warn({ from: riskLevel, to: reading.level }, 'cluster risk level changed: re-deciding every live task');
    riskLevel = reading.level;
    controller.onPolicyReload();
  });

  const health: RunningServer = await startHealthServer({
    host: config.healthHost,
    port: config.healthPort,
    registry: metrics.registry,
    notReady: () =>
      stopping
        ? 'shutting down'
        : !startedUp
          ? 'starting'
          : !cluster.synced
            ? 'caches not synced'
            : !engine.ready
              ? 'no valid policy set loaded'
              : config.authorizer && !runtimeEngine.ready
                ? 'no valid runtime policy set loaded'
                : undefined,
    detail: () => `admission: ${admissionMode === 'policy' ? 'policy (task pods admitted inside the API server)' : 'webhook'}; authorization: ${config.authorizer ? 'request-time (taskgrant authorizer served; RBAC still decides what passes it)' : 'RBAC only (grant time)'}; risk: ${cluster.riskLevel().level}`,
  });

  await Promise.all([cluster.start(), policySync.start().then(() => runtimeSync.start())]);

  const certs: CertSource =
    config.certMode === 'cert-manager'
      ? new FileCerts(config.tlsDir, logger)
      : new SelfManagedCerts({
          store: new SecretTlsStore(cluster.api, config.namespace),
          sink: new CaBundleInjector(cluster.api, config.webhookConfigName),
          dnsNames: serviceNames(config.webhookService, config.namespace),
          ipAddresses: ['127.0.0.1'],
          validityMs: config.certValidityMs,
          logger,
        });
  // Start-up talks to the API server a few times more; a transient error there is retried
  // rather than ending the process (readiness stays false meanwhile).
  await retrying('starting the webhook certificate', () => certs.start(), logger);
  const keys = new KeyManager({ store: new SecretSigningKeyStore(cluster.api, config.namespace), logger });
  await retrying('loading the receipt signing keys', () => keys.start(), logger);
  const admission = webhookDeps(cluster, reviews, config.namespace, logger, metrics);
  const deps: WebhookDeps = {
    ...admission,
    // Task receipts share the port, the Service and the certificate with the admission routes.
    extraRoutes: createReceiptsRouter({
      issuer: defaultIssuer(config.webhookService, config.namespace),
      keys,
      tokenReviewer: reviews,
      taskByServiceAccount: new TaskOfServiceAccount(cluster),
      pods: new TaskPods(cluster),
      tasks: admission.tasks,
      metrics,
      logger,
    }),
  };
  metrics.watchCertificate(() => {
    try {
      return new X509Certificate(certs.current().cert).validToDate.getTime() / 1000;
    } catch {
      return undefined; // nothing readable served: the series keeps its last value, or stays absent
    }
  });
  // Read once: the API server's client CA changes only with its own configuration (a restart of both).
  const clientCa = config.webhookClientCaFile ? readFileSync(config.webhookClientCaFile, 'utf8') : undefined;
  const webhook: HttpsHandle = await serveHttps(createApp({ ...deps, requireClientCert: clientCa !== undefined }), {
    port: config.webhookPort,
    host: config.webhookHost,
    tls: () => certs.current(),
    ...(clientCa ? { clientCa } : {}),
    onConnection: () => metrics.webhookConnections.inc(),
  });
  const usage = new UsageBook();
  let authz: { server: HttpsHandle; certs: FileCerts; flusher: UsageFlusher } | undefined;
  if (config.authorizer) {
    const authzCerts = new FileCerts(config.authzTlsDir, logger);
    await authzCerts.start();
    const taskOfServiceAccount = new TaskOfServiceAccount(cluster);
    const pods = new TaskPods(cluster);
    const authorizer = new RequestAuthorizer({
      taskOf: (namespace, serviceAccount) => taskOfServiceAccount.find(namespace, serviceAccount),
      pod: (namespace, name) => pods.get(namespace, name),
      risk: () => cluster.riskLevel().level,
      policy: runtimeEngine,
      usage,
      approved: (task) => task.status?.approval?.approvedAt !== undefined,
      delegationDepth: (task) => delegationDepthOf(task, { get: (namespace, name) => cluster.task(namespace, name) }),
      sensitivityFloor: (task) => sensitivityFloorOf(task, (namespace) => cluster.namespaceSensitivity(namespace)),
      now: () => new Date(),
    });
    const flusher = new UsageFlusher({
      book: usage,
      taskByUid: (uid) => cluster.taskByUid(uid),
      write: (task, counted) => cluster.writeTaskUsage(task, counted),
      isConflict: (err) => isStatus(err, 409),
      intervalMs: config.usageFlushMs,
      logger,
      metrics,
      now: () => new Date(),
    });
    flusher.start();
    const server = await serveHttps(authzListener({ authorizer, logger, metrics, requireClientCert: true }), {
      port: config.authzPort,
      host: config.authzHost,
      tls: () => authzCerts.current(),
      ...(clientCa ? { clientCa } : {}),
      // The API server holds its connections for reuse; our idle timeout outlasts its own.
    });
    authz = { server, certs: authzCerts, flusher };
  }
  if (config.install) {
    // Policy mode: the pod routes are the API server's own policies, not webhook calls.
    const routes = admissionMode === 'policy' ? WEBHOOK_ROUTES.filter((route) => route.resource !== 'pods') : WEBHOOK_ROUTES;
    await installWebhookConfigurations(kc, routes, {
      name: config.webhookConfigName,
      url: config.webhookUrl ?? `https://127.0.0.1:${webhook.port}`,
      caBundlePem: certs instanceof SelfManagedCerts ? certs.caBundle() : '',
      excludedNamespaces: [config.namespace, 'kube-system'],
    });
    // The identity, token and status guards (ValidatingAdmissionPolicies) ship beside the CRDs.
    await installGuards(kc, overrides.crdDir ?? 'crds', config.namespace);
    await installPodPolicies(kc, overrides.crdDir ?? 'crds', admissionMode === 'policy');
  }

  // Every replica serves webhooks from warm caches; only the leader reconciles.
  let signalLostLeadership!: () => void;
  const lostLeadership = new Promise<void>((resolve) => (signalLostLeadership = resolve));
  const elector = config.leaderElect
    ? new LeaderElector({
        api: cluster.api,
        namespace: config.namespace,
        name: config.leaseName,
        logger,
        onStartedLeading: () => {
          logger.info({ lease: config.leaseName }, 'leading: reconciling');
          metrics.leader.set(1);
          ledger.reset(); // another leader may have recorded grants since we last read
          controller.start();
        },
        onStoppedLeading: async () => {
          metrics.leader.set(0);
          await controller.stop();
          if (!stopping) {
            logger.error({ lease: config.leaseName }, 'lost leadership; exiting so a fresh process can compete again');
            signalLostLeadership();
          }
        },
      })
    : undefined;
  metrics.leader.set(0);
  if (elector) elector.start();
  else {
    controller.start();
    metrics.leader.set(1);
  }
  const modes: Modes = { admission: admissionMode, authorization: config.authorizer ? 'request-time' : 'rbac-only' };
  await retrying(
    'publishing the modes in force',
    () => publishModes(cluster.api, config.namespace, modes),
    logger,
  );
  startedUp = true;
  logger.info(
    { namespace: config.namespace, policyDir: config.policyDir, healthPort: health.port, webhookPort: webhook.port, authzPort: authz?.server.port, revision: engine.revision, ...modes },
    'taskgrant started',
  );

  return {
    logger,
    metrics,
    engine,
    cluster,
    controller,
    policySync,
    healthPort: health.port,
    webhookPort: webhook.port,
    authzPort: authz?.server.port,
    admissionMode,
    stopWebhook: () => webhook.close(),
    lostLeadership,
    async stop() {
      stopping = true;
      // Release the Lease first so a standby replica takes over at once, not after expiry.
      await elector?.stop({ release: true });
      await webhook.close().catch(() => undefined);
      if (authz) {
        await authz.server.close().catch(() => undefined);
        authz.certs.stop();
        await authz.flusher.stop();
      }
      certs.stop();
      keys.stop();
      await controller.stop();
      await policySync.stop();
      await runtimeSync.stop();
      await cluster.stop();
      await health.close();
      logger.info({}, 'taskgrant stopped');
    },
  };
}

/** The names a caller may dial the webhook Service by. */
function serviceNames(service: string, namespace: string): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, `${service}.${namespace}`, service, 'localhost'];
}

/** The webhook's view of the cluster: informer caches and reviews, never the controller. */
function webhookDeps(cluster: KubeCluster, reviews: Reviews, namespace: string, logger: Logger, metrics: Metrics): WebhookDeps {
  return {
    logger,
    metrics,
    tasks: { get: (namespace, name) => cluster.task(namespace, name) },
    slots: new LedgerPodSlots(cluster.api, namespace, (ns, taskName, taskUid) => heldSlots(cluster, ns, taskName, taskUid)),
    serviceAccounts: new ManagedServiceAccounts(cluster),
    accessReviewer: {
      canApprove: (user, namespace) => reviews.userCan(user, { verb: 'approve', group: 'taskgrant.io', resource: 'agenttasks', namespace }),
    },
  };
}

async function retrying(what: string, step: () => Promise<void>, logger: Logger, attempts = 10): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await step();
    } catch (err) {
      if (attempt >= attempts) throw new Error(`${what} failed ${attempts} times`, { cause: err });
      const delay = Math.min(5_000, 200 * 2 ** (attempt - 1));
      logger.warn({ err, attempt, retryInMs: delay }, `${what} failed; retrying`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
