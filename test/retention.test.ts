// Retention: an ended task and its approvals are deleted after the retention period, after its
// audit record, and the agent's re-issuance count survives it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { ConfigMapLedger } from '../src/kube/ledger.js';
import { eventually, statusOfCall, uniqueName } from './harness/kube.js';
import type { TestOperator } from './harness/operator.js';
import { canApprove, canCreate, userWith } from './harness/security.js';
import { startOperatorSuite } from './harness/suite.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';

const RETENTION_MS = 3_000;
const group = 'taskgrant.io';
const version = 'v1alpha1';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns] } = await startOperatorSuite(['retain'], { retentionMs: RETENTION_MS }));
});

afterAll(async () => {
  await operator?.stop();
});

const exists = async (plural: string, name: string) => (await statusOfCall(() => tasks.custom.getNamespacedCustomObject({ group, version, namespace: ns, plural, name }))) === 200;

describe('retention', () => {
  it('deletes an ended task with its approvals after the period, keeping its audit line and the ledger count', async () => {
    const approver = await userWith(admin, ns, uniqueName('approver'), [canCreate('taskapprovals'), canApprove]);
    const name = uniqueName('ended');
    const agent = uniqueName('agent');
    await tasks.create(ns, name, { agent, intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) });
    const held = await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    const approval = uniqueName('ok');
    await approver.custom.createNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: 'taskapprovals',
      body: { apiVersion: `${group}/${version}`, kind: 'TaskApproval', metadata: { name: approval }, spec: { task: name, taskUID: held.metadata.uid, decision: 'Approve', reason: 'CHG-1' } },
    });
    await tasks.waitForPhase(ns, name, 'Granted');
    await tasks.annotate(ns, name, { 'taskgrant.io/revoke': 'done' });
    const revoked = await tasks.waitForPhase(ns, name, 'Revoked');
    // Kept while the period runs: the final status is there to read.
    expect(revoked.status?.reason).toBe('Manual');
    await eventually(async () => !(await exists('agenttasks', name)), 'the ended task to be deleted after its retention period', 30_000, 250);
    expect(await exists('taskapprovals', approval)).toBe(false);
    const log = readFileSync(operator.logFile, 'utf8').split('\n');
    expect(log.some((l) => l.includes(`"uid":"${held.metadata.uid ?? ''}"`) && l.includes('"audit":true') && l.includes('"to":"Revoked"'))).toBe(true);
    // The agent's grant is still counted: re-issuance limits do not reset with the task.
    const ledger = await tasks.core.readNamespacedConfigMap({ name: ConfigMapLedger.nameFor(ns, agent), namespace: operator.config.namespace });
    expect((JSON.parse(ledger.data?.grants ?? '[]') as Array<{ uid: string }>).map((e) => e.uid)).toContain(held.metadata.uid);
  });

  it('never deletes a live task, however old', async () => {
    const name = uniqueName('live');
    await tasks.create(ns, name, { agent: uniqueName('agent'), intent: intentOf(readPods) });
    await tasks.waitForPhase(ns, name, 'Granted');
    await new Promise((r) => setTimeout(r, RETENTION_MS * 2));
    expect((await tasks.get(ns, name))?.status?.phase).toBe('Granted');
  });
});
