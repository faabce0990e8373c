// Two operator processes against one cluster: only the leader reconciles; SIGKILL it and the
// other takes over within the Lease duration, with no duplicate and no lost grant.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from './harness/kube.js';
import { repoRoot } from './harness/paths.js';
import { spawnOperator, type OperatorProcess } from './harness/process.js';
import { startProcessSuite } from './harness/suite.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';

let tasks: TaskHelper;
let ns: string;
let operatorNs: string;
const running: OperatorProcess[] = [];
const logDir = () => process.env.TASKGRANT_TEST_CONTROLPLANE_DIR ?? join(repoRoot(), '.local');
const leads = (log: string) => readFileSync(log, 'utf8').includes('leading: reconciling');
const audits = (log: string) => readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('"audit":true')).length;

beforeAll(async () => {
  ({ tasks, namespaces: [ns, operatorNs] } = await startProcessSuite(['ha', 'tg-ha']));
});

afterAll(async () => {
  for (const op of running) await op.kill();
});

describe('two operator replicas', () => {
  it('only the leader reconciles; the other takes over after a SIGKILL with no duplicate or lost grant', async () => {
    const logs = ['a', 'b'].map((n) => join(logDir(), `${operatorNs}-${n}.log`));
    for (const logFile of logs) {
      running.push(
        await spawnOperator({
          kubeconfig: process.env.TASKGRANT_TEST_KUBECONFIG ?? '',
          namespace: operatorNs,
          logFile,
          extra: ['--leader-elect', '--lease-name=ha-test'],
        }),
      );
    }
    const leaderIndex = await eventually(async () => {
      const leading = logs.map(leads);
      return leading.filter(Boolean).length === 1 ? leading.indexOf(true) : undefined;
    }, 'exactly one leader');
    const followerIndex = 1 - leaderIndex;

    const before = ['ha-1', 'ha-2', 'ha-3', 'ha-4'];
    for (const [i, name] of before.entries()) await tasks.create(ns, name, { agent: `ha-agent-${i}`, intent: intentOf(readPods) });
    for (const name of before) await tasks.waitForPhase(ns, name, 'Granted');
    expect(audits(logs[leaderIndex]!)).toBeGreaterThanOrEqual(before.length);
    expect(audits(logs[followerIndex]!)).toBe(0);
    expect(leads(logs[followerIndex]!)).toBe(false);

    await running[leaderIndex]!.kill('SIGKILL');
    const after = ['ha-5', 'ha-6', 'ha-7', 'ha-8'];
    for (const [i, name] of after.entries()) await tasks.create(ns, name, { agent: `ha-agent-${i}`, intent: intentOf(readPods) });
    // Lease 15 s: the follower takes over once it has expired (how soon is make bench's to measure).
    for (const name of after) await tasks.waitForPhase(ns, name, 'Granted', 60_000);
    expect(leads(logs[followerIndex]!)).toBe(true);

    // No duplicate: one ServiceAccount, Role and RoleBinding per task, and every grant counted
    // exactly once in its agent's ledger (the second task of each agent sees the first).
    for (const name of [...before, ...after]) {
      const task = await tasks.get(ns, name);
      expect((await tasks.grantObjects(task?.metadata.uid ?? '')).length).toBe(3);
    }
    const ledgers = await tasks.core.listNamespacedConfigMap({ namespace: operatorNs, labelSelector: 'taskgrant.io/ledger=true' });
    const entries = ledgers.items.flatMap((cm) => JSON.parse(cm.data?.grants ?? '[]') as Array<{ uid: string }>);
    expect(entries).toHaveLength(before.length + after.length);
    expect(new Set(entries.map((e) => e.uid)).size).toBe(entries.length);
  }, 180_000);
});
