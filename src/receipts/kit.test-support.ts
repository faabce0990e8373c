// Test support for the receipt unit tests: a fake TokenReview, an in-memory cluster behind the
// lookup interfaces, a settable clock, and the receipts served by the real createApp.
import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { POD_NAME_EXTRA, type AgentTask, type PermissionRule, type Phase } from '../api/index.js';
import { createLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import { createReceiptsRouter } from './router.js';
import { POD_UID_EXTRA } from './exchange.js';
import type { SaveResult, SigningKeyStore, StoredKeys } from './manager.js';
import type { KeySource, PodFacts, PodLookup, ReceiptsOptions, TaskByServiceAccount, TokenReviewOutcome, TokenReviewer } from './ports.js';

export const NS = 'team-a';
export const TASK = 'summarize-errors';
export const TASK_UID = '0f6a1c2e-5b7d-4e8a-9c3f-2d1e0b9a8c7d';
export const TASK_SA = 'tg-summarize-errors-0f6a1c2e';
export const POD = 'summarize-errors-pod';
export const POD_UID = 'b1c2d3e4-0000-4000-8000-000000000001';
export const ISSUER = 'https://taskgrant-webhook.taskgrant-system.svc';
export const T0 = Date.parse('2026-03-02T09:15:00Z');
export const OBJECTIVE = 'Summarize error logs for INC-1234';
/** The token the fake reviewer knows as the task pod's. */
export const POD_TOKEN = 'pod-token-of-summarize-errors';

export const DEFAULT_PERMISSIONS: PermissionRule[] = [
  { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get'], resourceNames: ['app-config'] },
];

export class Clock {
  constructor(public ms = T0) {}
  readonly now = (): Date => new Date(this.ms);
  advance(ms: number): void {
    this.ms += ms;
  }
}

export function task(options: { phase?: Phase; expiresAt?: number; permissions?: PermissionRule[]; tools?: string[]; annotations?: Record<string, string>; uid?: string } = {}): AgentTask {
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name: TASK, namespace: NS, uid: options.uid ?? TASK_UID, ...(options.annotations ? { annotations: options.annotations } : {}) },
    spec: {
      agent: 'log-summarizer',
      intent: { objective: OBJECTIVE, tools: options.tools ?? ['kubectl-logs'], permissions: options.permissions ?? DEFAULT_PERMISSIONS },
      ttl: '15m',
      requester: { username: 'alice@example.com', groups: ['team-a-devs'] },
    },
    status: {
      phase: options.phase ?? 'Active',
      grant: {
        serviceAccount: TASK_SA,
        role: TASK_SA,
        roleBinding: TASK_SA,
        issuedAt: new Date(T0 - 60_000).toISOString(),
        expiresAt: new Date(options.expiresAt ?? T0 + 14 * 60_000).toISOString(),
      },
    },
  };
}

export function taskPod(overrides: Partial<PodFacts> = {}): PodFacts {
  return {
    uid: POD_UID,
    serviceAccountName: TASK_SA,
    labels: { 'taskgrant.io/task': TASK },
    annotations: { 'taskgrant.io/task-uid': TASK_UID },
    phase: 'Running',
    terminating: false,
    ...overrides,
  };
}

/** `pod: null` for a token bound to no pod. */
export function podBound(username = `system:serviceaccount:${NS}:${TASK_SA}`, pod: string | null = POD, podUid = POD_UID): TokenReviewOutcome {
  return {
    type: 'authenticated',
    identity: { username, uid: 'sa-uid', groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`], extra: pod ? { [POD_NAME_EXTRA]: [pod], [POD_UID_EXTRA]: [podUid] } : {} },
  };
}

/** Tokens -> review outcomes; any other token is unauthenticated. */
export class FakeReviewer implements TokenReviewer {
  readonly known = new Map<string, TokenReviewOutcome>([[POD_TOKEN, podBound()]]);
  readonly seen: string[] = [];
  hang = false;
  async reviewToken(token: string): Promise<TokenReviewOutcome> {
    this.seen.push(token);
    if (this.hang) return new Promise<TokenReviewOutcome>(() => undefined);
    return this.known.get(token) ?? { type: 'unauthenticated', error: '[invalid bearer token]' };
  }
}

/** Tasks, the ServiceAccount -> task relation and task pods, over maps. */
export class ReceiptCluster {
  readonly tasks = new Map<string, AgentTask>();
  readonly accounts = new Map<string, string>();
  readonly podFacts = new Map<string, PodFacts>();

  constructor() {
    this.put(task());
    this.accounts.set(`${NS}/${TASK_SA}`, TASK);
    this.podFacts.set(`${NS}/${POD}`, taskPod());
  }
  put(t: AgentTask): this {
    this.tasks.set(`${t.metadata.namespace}/${t.metadata.name}`, t);
    return this;
  }
  readonly taskLookup = { get: (ns: string, name: string) => this.tasks.get(`${ns}/${name}`) };
  readonly byServiceAccount: TaskByServiceAccount = {
    find: (ns, sa) => {
      const name = this.accounts.get(`${ns}/${sa}`);
      return name === undefined ? undefined : this.tasks.get(`${ns}/${name}`);
    },
  };
  readonly pods: PodLookup = { get: (ns, name) => this.podFacts.get(`${ns}/${name}`) };
}

/** An in-memory Secret: resourceVersion bumps on every write, stale writes conflict. */
export class MemoryStore implements SigningKeyStore {
  stored: StoredKeys | undefined;
  private version = 0;
  saves = 0;
  /** Runs before a save is applied: lets a test slip in another writer. */
  beforeSave: (() => Promise<void>) | undefined;

  async load(): Promise<StoredKeys | undefined> {
    return this.stored ? { ...this.stored } : undefined;
  }
  async save(document: string, resourceVersion?: string): Promise<SaveResult> {
    const hook = this.beforeSave;
    this.beforeSave = undefined;
    if (hook) await hook();
    if ((resourceVersion ?? undefined) !== this.stored?.resourceVersion) return { type: 'conflict' };
    this.saves += 1;
    this.version += 1;
    this.stored = { document, resourceVersion: String(this.version) };
    return { type: 'saved', resourceVersion: this.stored.resourceVersion };
  }
}

export interface Served {
  base: string;
  metrics: Metrics;
  logLines: string[];
  close(): Promise<void>;
}

/** The receipts router on an express app of its own, on a loopback port. */
export async function serve(cluster: ReceiptCluster, reviewer: TokenReviewer, keys: KeySource, clock: Clock, extra: Partial<ReceiptsOptions> = {}): Promise<Served> {
  const metrics = new Metrics();
  const logLines: string[] = [];
  const logger = createLogger('debug', { write: (line: string) => void logLines.push(line) });
  const app = express();
  app.use(createReceiptsRouter({ issuer: ISSUER, keys, tokenReviewer: reviewer, taskByServiceAccount: cluster.byServiceAccount, pods: cluster.pods, tasks: cluster.taskLookup, metrics, logger, now: clock.now, ...extra }));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    metrics,
    logLines,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export function form(fields: Record<string, string | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const value of Array.isArray(v) ? v : [v]) p.append(k, value);
  return p.toString();
}

export const EXCHANGE = {
  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
  subject_token: POD_TOKEN,
  subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  audience: 'https://tools.example.com',
};
