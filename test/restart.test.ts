// Crash and restart: the operator killed mid-grant, after a grant, and while a task expires,
// converges on start-up with no orphan, no duplicate and nothing held past its time.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { eventually, uniqueName } from './harness/kube.js';
import { spawnOperator, type OperatorProcess } from './harness/process.js';
import { startProcessSuite } from './harness/suite.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import { repoRoot } from './harness/paths.js';
import type { AgentTask } from '../src/api/index.js';

let tasks: TaskHelper;
let ns: string;
let operatorNs: string;
let current: OperatorProcess | undefined;
const logFile = () => join(process.env.TASKGRANT_TEST_CONTROLPLANE_DIR ?? repoRoot(), `${operatorNs}.log`);

async function start(): Promise<OperatorProcess> {
  current = await spawnOperator({ kubeconfig: process.env.TASKGRANT_TEST_KUBECONFIG ?? '', namespace: operatorNs, logFile: logFile() });
  return current;
}

beforeAll(async () => {
  ({ tasks, namespaces: [ns, operatorNs] } = await startProcessSuite(['restart', 'tg-restart']));
});

afterAll(async () => {
  await current?.kill();
});

/** Every managed object in the cluster belongs to a task that exists and is live. */
async function expectNoOrphans(): Promise<void> {
  const selector = 'app.kubernetes.io/managed-by=taskgrant';
  const [sas, roles, bindings] = await Promise.all([
    tasks.core.listNamespacedServiceAccount({ namespace: ns, labelSelector: selector }),
    tasks.rbac.listNamespacedRole({ namespace: ns, labelSelector: selector }),
    tasks.rbac.listNamespacedRoleBinding({ namespace: ns, labelSelector: selector }),
  ]);
  const list = (await tasks.custom.listNamespacedCustomObject({ group: 'taskgrant.io', version: 'v1alpha1', namespace: ns, plural: 'agenttasks' })) as { items: AgentTask[] };
  const live = new Map(list.items.filter((t) => t.status?.phase === 'Granted' || t.status?.phase === 'Active').map((t) => [t.metadata.uid, t]));
  for (const o of [...sas.items, ...roles.items, ...bindings.items]) {
    const uid = o.metadata?.labels?.['taskgrant.io/task-uid'];
    expect(live.has(uid)).toBe(true);
    expect(o.metadata?.name).toBe(live.get(uid)?.status?.grant?.serviceAccount);
  }
  // One of each per live task: deterministic names make a duplicate impossible, and this proves it.
  expect(sas.items).toHaveLength(live.size);
  expect(roles.items).toHaveLength(live.size);
  expect(bindings.items).toHaveLength(live.size);
}

describe('operator restart', () => {
  it('converges after being killed mid-grant', async () => {
    const op = await start();
    const names = Array.from({ length: 12 }, (_, i) => uniqueName(`mid-${i}`));
    await Promise.all(names.map((n) => tasks.create(ns, n, { agent: uniqueName('mid'), intent: intentOf(readPods) })));
    await new Promise((r) => setTimeout(r, 60)); // somewhere inside the grants
    await op.kill('SIGKILL');
    await start();
    await Promise.all(names.map((n) => tasks.waitForPhase(ns, n, 'Granted', 20_000)));
    await eventually(async () => {
      await expectNoOrphans();
      return true;
    }, 'no orphans');
  });

  it('revokes at start-up what ended while it was down', async () => {
    const expiring = uniqueName('down-ttl');
    const succeeding = uniqueName('down-pod');
    const deleted = uniqueName('down-del');
    for (const n of [expiring, succeeding, deleted]) await tasks.create(ns, n, { agent: uniqueName('down'), intent: intentOf(readPods), ...(n === expiring ? { ttl: '10s' } : {}) });
    const granted = await Promise.all([expiring, succeeding, deleted].map((n) => tasks.waitForPhase(ns, n, 'Granted')));
    const podTask = granted[1]!;
    await tasks.createTaskPod(podTask, `${succeeding}-pod`);
    await tasks.waitForPhase(ns, succeeding, 'Active');
    await current?.kill('SIGKILL');

    await tasks.setPodPhase(ns, `${succeeding}-pod`, 'Succeeded');
    await tasks.delete(ns, deleted);
    const expiresAt = Date.parse(granted[0]!.status?.grant?.expiresAt ?? '');
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() + 500)));

    await start();
    await tasks.waitForPhase(ns, expiring, 'Expired');
    await tasks.waitForPhase(ns, succeeding, 'Completed');
    await eventually(async () => (await tasks.get(ns, deleted)) === undefined, 'the deleted task to be released');
    for (const t of granted) await eventually(async () => (await tasks.grantObjects(t.metadata.uid ?? '')).length === 0, 'objects gone', 30_000, 25);
    await expectNoOrphans();
  });
});
