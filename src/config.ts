// The only reader of process.env and argv: returns a frozen, validated Config.
import { Command, InvalidArgumentError } from 'commander';
import { parseDurationSeconds } from './api/index.js';
import type { LogLevel } from './telemetry/logger.js';

export interface Config {
  kubeconfig: string | undefined;
  /** Where the operator's own Secrets, Lease, ledger and policy ConfigMaps live. */
  namespace: string;
  policyDir: string;
  healthHost: string;
  healthPort: number;
  webhookHost: string;
  webhookPort: number;
  /** When set, the webhook configurations point at this URL instead of the chart's Service (make run). */
  webhookUrl: string | undefined;
  /**
   * CA bundle (a file) of the client certificate the API server presents to webhooks. Set: the
   * admission routes answer only callers presenting a certificate it signed.
   */
  webhookClientCaFile: string | undefined;
  /**
   * How task pods are admitted. policy: inside the API server (MutatingAdmissionPolicy and
   * ValidatingAdmissionPolicies, no webhook call; falls back to webhook where the API server does
   * not serve them); webhook: taskgrant's mutating webhook (maxPods enforced before admission).
   */
  admissionMode: 'policy' | 'webhook';
  /** Install CRDs, webhook configurations and the identity guard at start (make run, not the chart). */
  install: boolean;
  logLevel: LogLevel;
  workers: number;
  reissueWindowMs: number;
  /** How long an ended task (and its approvals) is kept before it is deleted; 0 keeps it for ever. */
  retentionMs: number;
  leaderElect: boolean;
  leaseName: string;
  certValidityMs: number;
  /** self-managed: the operator issues and rotates its serving cert; cert-manager: read from tlsDir. */
  certMode: 'self-managed' | 'cert-manager';
  tlsDir: string;
  /** The Service in front of the webhook port (serving cert names, webhook configurations). */
  webhookService: string;
  /** Name of the Mutating/ValidatingWebhookConfiguration whose caBundle the operator keeps. */
  webhookConfigName: string;
  /**
   * Serve the request-time authorizer (SubjectAccessReview webhook) for task identities. Only
   * useful where the API server's AuthorizationConfiguration calls it (README, "Request time").
   */
  authorizer: boolean;
  authzHost: string;
  authzPort: number;
  /** tls.crt and tls.key of the authorizer: the API server's kubeconfig for it names their CA. */
  authzTlsDir: string;
  /** How often counted usage is written to status.usage. */
  usageFlushMs: number;
  /** Full re-list period of every informer. */
  informerResyncMs: number;
  /** A watch silent for this long (no event, no bookmark) is restarted. */
  informerStallMs: number;
}

const levels: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError('must be an integer 1..256');
  return n;
}

function durationMs(value: string): number {
  const seconds = parseDurationSeconds(value);
  if (seconds === undefined || seconds <= 0) throw new InvalidArgumentError('must be a Go duration such as 1h or 90s');
  return seconds * 1000;
}

function retention(value: string): number {
  return value === '0' ? 0 : durationMs(value);
}

function certMode(value: string): Config['certMode'] {
  if (value !== 'self-managed' && value !== 'cert-manager') throw new InvalidArgumentError('must be self-managed or cert-manager');
  return value;
}

function admissionMode(value: string): Config['admissionMode'] {
  if (value !== 'policy' && value !== 'webhook') throw new InvalidArgumentError('must be policy or webhook');
  return value;
}

function level(value: string): LogLevel {
  if (!levels.includes(value as LogLevel)) throw new InvalidArgumentError(`must be one of ${levels.join(', ')}`);
  return value as LogLevel;
}

export function loadConfig(argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const program = new Command('taskgrant')
    .description('Just-in-time, task-scoped Kubernetes credentials for AI agents, decided by Cedar policy.')
    .option('--kubeconfig <path>', 'kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in-cluster)', env.KUBECONFIG)
    .option('--namespace <ns>', 'the operator namespace', env.POD_NAMESPACE ?? 'taskgrant-system')
    .option('--policy-dir <dir>', 'directory with schema.cedarschema and *.cedar', 'policies')
    .option('--health-host <host>', 'address of /healthz, /readyz and /metrics', '127.0.0.1')
    .option('--health-port <port>', 'port of /healthz, /readyz and /metrics', port, 8080)
    .option('--webhook-host <host>', 'address the HTTPS webhook server binds', '127.0.0.1')
    .option('--webhook-port <port>', 'port of the HTTPS webhook server', port, 9443)
    .option('--webhook-url <url>', 'point webhook configurations at this URL (local runs)', env.WEBHOOK_URL)
    .option('--webhook-client-ca <file>', "CA of the API server's webhook client certificate; admission routes refuse callers without it", env.WEBHOOK_CLIENT_CA)
    .option('--admission-mode <mode>', 'how task pods are admitted: policy (inside the API server, where it supports MutatingAdmissionPolicy) | webhook', admissionMode, 'policy')
    .option('--install', 'install CRDs, webhook configurations and the identity guard at start', false)
    .option('--log-level <level>', levels.join(' | '), level, level(env.LOG_LEVEL ?? 'info'))
    // Most of a grant is spent waiting on kube-apiserver, not computing: without escalate and
    // bind, each Role and RoleBinding the operator creates waits ≈100 ms for the API server's
    // RBAC escalation check. 64 reconciles in flight keep a burst of grants moving (make bench:
    // 16 workers gave 41 grants/s, 64 gave 58, 128 gave 53 on 2 cores).
    .option('--workers <n>', 'concurrent reconciles', positiveInt, 64)
    .option('--reissue-window <duration>', 'window in which grants to one agent are counted', durationMs, 3_600_000)
    .option('--retention <duration>', 'how long an ended task is kept before it and its approvals are deleted (0: for ever)', retention, 24 * 3_600_000)
    .option('--leader-elect', 'only reconcile while holding the leader Lease', false)
    .option('--lease-name <name>', 'name of the leader election Lease', 'taskgrant-controller')
    .option('--cert-validity <duration>', 'validity of the self-managed webhook serving certificate', durationMs, 30 * 24 * 3_600_000)
    .option('--cert-mode <mode>', 'self-managed | cert-manager', certMode, 'self-managed')
    .option('--tls-dir <dir>', 'tls.crt and tls.key (cert-manager mode)', '/etc/taskgrant/tls')
    .option('--webhook-service <name>', 'Service in front of the webhook port', 'taskgrant-webhook')
    .option('--webhook-config-name <name>', 'name of the webhook configurations to keep the caBundle of', 'taskgrant')
    .option('--authorizer', "serve the request-time authorizer for task identities (needs the API server's AuthorizationConfiguration and --webhook-client-ca)", env.TASKGRANT_AUTHORIZER === 'true')
    .option('--authz-host <host>', 'address the authorizer binds', '127.0.0.1')
    .option('--authz-port <port>', 'port of the authorizer', port, 9444)
    .option('--authz-tls-dir <dir>', "tls.crt and tls.key the authorizer serves (signed by the CA its API server kubeconfig names)", '/etc/taskgrant/authz-tls')
    .option('--usage-flush-interval <duration>', 'how often usage counts are written to status.usage', durationMs, 5_000)
    .option('--informer-resync <duration>', 'full re-list period of every cache', durationMs, durationMs(env.TASKGRANT_INFORMER_RESYNC ?? '5m'))
    .option('--informer-stall <duration>', 'restart a watch silent for this long', durationMs, durationMs(env.TASKGRANT_INFORMER_STALL ?? '150s'))
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.parse(argv);
  const o = program.opts<{
    kubeconfig?: string;
    namespace: string;
    policyDir: string;
    healthHost: string;
    healthPort: number;
    webhookHost: string;
    webhookPort: number;
    webhookUrl?: string;
    webhookClientCa?: string;
    admissionMode: Config['admissionMode'];
    install: boolean;
    logLevel: LogLevel;
    workers: number;
    reissueWindow: number;
    retention: number;
    leaderElect: boolean;
    leaseName: string;
    certValidity: number;
    certMode: Config['certMode'];
    tlsDir: string;
    webhookService: string;
    webhookConfigName: string;
    informerResync: number;
    informerStall: number;
    authorizer: boolean;
    authzHost: string;
    authzPort: number;
    authzTlsDir: string;
    usageFlushInterval: number;
  }>();
  if (o.webhookUrl && !/^https:\/\//.test(o.webhookUrl)) throw new InvalidArgumentError('--webhook-url must be an https:// URL');
  // Every review counts against a task's budget: a caller other than the API server could burn it.
  if (o.authorizer && !o.webhookClientCa) throw new InvalidArgumentError("--authorizer needs --webhook-client-ca: only the API server's client certificate may ask it");
  return Object.freeze({
    kubeconfig: o.kubeconfig || undefined,
    namespace: o.namespace,
    policyDir: o.policyDir,
    healthHost: o.healthHost,
    healthPort: o.healthPort,
    webhookHost: o.webhookHost,
    webhookPort: o.webhookPort,
    webhookUrl: o.webhookUrl || undefined,
    webhookClientCaFile: o.webhookClientCa || undefined,
    admissionMode: o.admissionMode,
    install: o.install,
    logLevel: o.logLevel,
    workers: o.workers,
    reissueWindowMs: o.reissueWindow,
    retentionMs: o.retention,
    leaderElect: o.leaderElect,
    leaseName: o.leaseName,
    certValidityMs: o.certValidity,
    certMode: o.certMode,
    tlsDir: o.tlsDir,
    webhookService: o.webhookService,
    webhookConfigName: o.webhookConfigName,
    authorizer: o.authorizer,
    authzHost: o.authzHost,
    authzPort: o.authzPort,
    authzTlsDir: o.authzTlsDir,
    usageFlushMs: o.usageFlushInterval,
    informerResyncMs: o.informerResync,
    informerStallMs: o.informerStall,
  });
}
