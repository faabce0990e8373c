// Runs the whole operator in-process against the test control plane, with its own operator
// namespace (so ledgers and policy ConfigMaps of different suites never mix) and a log file.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import type { Config } from '../../src/config.js';
import { loadKubeConfig } from '../../src/kube/client.js';
import { installPodPolicies } from '../../src/kube/manifests.js';
import { startOperator, type Operator } from '../../src/operator.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { authzFiles, webhookClientFiles } from './controlplane.js';
import { repoRoot } from './paths.js';
import { uniqueName } from './kube.js';

export interface TestOperator extends Operator {
  config: Readonly<Config>;
  logFile: string;
  /** Stops only the HTTPS webhook server, leaving its configurations in place (an outage). */
  stopWebhookOnly(): Promise<void>;
  /** Stops the operator as a crash would: what it installed in the cluster stays (stop() may follow). */
  halt(): Promise<void>;
  /** Removes what install mode put in the cluster for this operator (webhook configurations, pod policies). */
  removeInstalled(): Promise<void>;
}

export async function startTestOperator(overrides: Partial<Config> = {}): Promise<TestOperator> {
  const kubeconfig = process.env.TASKGRANT_TEST_KUBECONFIG;
  if (!kubeconfig) throw new Error('TASKGRANT_TEST_KUBECONFIG is not set');
  const root = repoRoot();
  // Where the cluster's API server asks taskgrant's authorizer (clusters started with it): this operator answers.
  const authz = authzFiles(dirname(kubeconfig));
  const withAuthorizer = existsSync(authz.tlsDir);
  const config: Readonly<Config> = Object.freeze({
    kubeconfig,
    namespace: uniqueName('tg-system'),
    policyDir: join(root, 'policies'),
    healthHost: '127.0.0.1',
    healthPort: 0,
    webhookHost: '127.0.0.1',
    webhookPort: 0,
    webhookUrl: undefined,
    // The API server of the local cluster presents its webhook client certificate: only it is answered.
    webhookClientCaFile: existingFile(webhookClientFiles(dirname(kubeconfig)).webhookClientCa),
    // The suites test the webhook path in depth (maxPods refused up front, outages, forged
    // reviews); test/admission-policy.test.ts runs the policy mode the chart defaults to.
    admissionMode: 'webhook',
    install: true,
    logLevel: 'debug',
    workers: 8,
    reissueWindowMs: 3_600_000,
    retentionMs: 24 * 3_600_000,
    leaderElect: false,
    leaseName: 'taskgrant-controller',
    certValidityMs: 24 * 3_600_000,
    certMode: 'self-managed',
    tlsDir: '/nonexistent',
    webhookService: 'taskgrant-webhook',
    webhookConfigName: 'taskgrant',
    informerResyncMs: 300_000,
    informerStallMs: 150_000,
    authorizer: withAuthorizer,
    authzHost: '127.0.0.1',
    authzPort: 0,
    authzTlsDir: authz.tlsDir,
    usageFlushMs: 1_000,
    ...overrides,
  });
  const logDir = join(process.env.TASKGRANT_TEST_CONTROLPLANE_DIR ?? join(root, '.local'), 'operator-logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `${config.namespace}.log`);
  const logger = createLogger(config.logLevel, pino.destination({ dest: logFile, sync: true }));
  const operator = await startOperator(config, { logger, crdDir: join(root, 'crds'), sweepIntervalMs: 2_000 });
  const target = operator.authzPort === undefined ? undefined : `127.0.0.1:${operator.authzPort}`;
  if (target) writeFileSync(authz.target, target);
  if (config.install) await waitForIdentityGuard(operator, config.namespace);
  if (config.install && operator.admissionMode === 'policy') await waitForPodGuard(operator, config.namespace);
  const stop = operator.stop.bind(operator);
  // Webhook configurations left pointing at a stopped test operator would refuse every
  // labelled pod of the suites after it (failurePolicy Fail), so they go with it.
  const removeWebhooks = async () => {
    if (!config.install) return;
    // Pod policies left behind would admit the pods of the suites after it without their webhook.
    if (operator.admissionMode === 'policy') await installPodPolicies(await loadKubeConfig(kubeconfig), join(root, 'crds'), false);
    await operator.cluster.api.delete(`/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${config.webhookConfigName}`);
    await operator.cluster.api.delete(`/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${config.webhookConfigName}`);
  };
  let halted: Promise<void> | undefined;
  const halt = () => (halted ??= stop());
  return Object.assign(operator, {
    config,
    logFile,
    halt,
    removeInstalled: removeWebhooks,
    stop: async () => {
      await removeWebhooks();
      await halt();
      // The relay then drops the API server's calls: task identities are refused until the next operator.
      if (target && existsSync(authz.target) && readFileSync(authz.target, 'utf8') === target) rmSync(authz.target, { force: true });
    },
    stopWebhookOnly: () => operator.stopWebhook(),
  });
}

/**
 * A ValidatingAdmissionPolicy is enforced a moment after it is applied (the API server compiles
 * it asynchronously). Suites must not race that: probe with a dry-run pod that borrows a tg-*
 * ServiceAccount until it is refused.
 */
async function waitForIdentityGuard(operator: Operator, namespace: string): Promise<void> {
  const sa = 'tg-guard-probe-00000000';
  await operator.cluster.api.create(`/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name: sa } }).catch(() => undefined);
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await operator.cluster.api.create(`/api/v1/namespaces/${namespace}/pods?dryRun=All`, {
        metadata: { name: 'guard-probe' },
        spec: { serviceAccountName: sa, containers: [{ name: 'c', image: 'registry.invalid/probe:1' }] },
      });
    } catch (err) {
      if (/identity|taskgrant/i.test((err as Error).message)) return;
    }
    if (Date.now() > deadline) throw new Error('the identity guard (ValidatingAdmissionPolicy) was not enforced within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The same for the task pod guard of admission mode policy: a labelled pod of no live task is refused. */
async function waitForPodGuard(operator: Operator, namespace: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await operator.cluster.api.create(`/api/v1/namespaces/${namespace}/pods?dryRun=All`, {
        metadata: { name: 'pod-guard-probe', labels: { 'taskgrant.io/task': 'no-such-task' } },
        spec: { containers: [{ name: 'c', image: 'registry.invalid/probe:1' }] },
      });
    } catch (err) {
      if (/has no live grant/.test((err as Error).message)) return;
    }
    if (Date.now() > deadline) throw new Error('the task pod guard (ValidatingAdmissionPolicy) was not enforced within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function existingFile(path: string): string | undefined {
  return existsSync(path) ? path : undefined;
}
