// Shared setup of the reconciler's unit tests (reconciler*.test.ts): the reconciler against
// in-memory fakes and the real default policies.
import { beforeAll, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { PolicyEngine, readPolicyDir } from '../policy/index.js';
import { silentLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import type { AgentTask, TaskApproval } from '../api/index.js';
import { AuditTrail } from './audit.js';
import { FakeApprovers, FakeClock, FakeCluster, FakeLedger } from './fakes.test-support.js';
import { Reconciler } from './reconciler.js';

/** The default policies, loaded by `loadDefaultPolicies` before a test file's tests. */
export let engine: PolicyEngine;

/** Loads the default policies into `engine` before the tests of the file that calls it. */
export function loadDefaultPolicies(): void {
  beforeAll(async () => {
    const dir = await readPolicyDir('policies');
    engine = new PolicyEngine({ schemaText: readFileSync('policies/schema.cedarschema', 'utf8'), logger: silentLogger(), metrics: new Metrics() });
    const loaded = engine.load(dir.sources);
    expect(loaded.type).toBe('loaded');
  });
}

export function setup(policy: Pick<PolicyEngine, 'ready' | 'revision' | 'evaluate'> = engine) {
  return setupWith(policy, new Metrics());
}

export function setupWith(policy: Pick<PolicyEngine, 'ready' | 'revision' | 'evaluate'>, metrics: Metrics, retentionMs = 0, liveLabel = false) {
  const cluster = new FakeCluster();
  const ledger = new FakeLedger();
  const clock = new FakeClock();
  const requeues: Array<[string, number]> = [];
  const logger = silentLogger();
  const approvers = new FakeApprovers();
  const reconciler = new Reconciler({
    view: cluster,
    writer: cluster,
    ledger,
    policy,
    approvers,
    audit: new AuditTrail(logger, cluster, Buffer.alloc(32, 7), clock),
    clock,
    logger,
    metrics,
    settings: { reissueWindowMs: 3_600_000, retryPendingMs: 5_000, retentionMs, operatorNamespace: 'taskgrant-system', liveLabel },
    requeueAfter: (key, ms) => requeues.push([key, ms]),
    observedAt: () => undefined,
  });
  const run = async (task: AgentTask) => {
    await reconciler.reconcile(`${task.metadata.namespace}/${task.metadata.name}`);
    return cluster.task(task.metadata.namespace, task.metadata.name);
  };
  return { cluster, ledger, clock, requeues, run, metrics, approvers };
}

/** A TaskApproval of this task's uid by `approver`, as the webhook would have stamped it. */
let approvalSeconds = 10;
export function approvalOf(task: AgentTask, approver: string, name: string): TaskApproval {
  const approval = approvedByAlice(task);
  // Each one later than the last: the latest approval of a uid is the one that counts.
  const creationTimestamp = `2026-11-22T10:01:${String(approvalSeconds++ % 60).padStart(2, '0')}Z`;
  return { ...approval, metadata: { ...approval.metadata, name, creationTimestamp }, spec: { ...approval.spec, approver: { username: approver } } };
}

/** A TaskApproval of this task's uid, as the webhook would have stamped it. */
export function approvedByAlice(task: AgentTask): TaskApproval {
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'TaskApproval',
    metadata: { name: 'ok', namespace: task.metadata.namespace, creationTimestamp: '2026-11-22T10:00:01Z' },
    spec: { task: task.metadata.name, taskUID: task.metadata.uid ?? '', decision: 'Approve', reason: 'on call', approver: { username: 'alice' } },
  };
}
