// Crashes and API faults: the operator SIGKILLed at random points across many task lifecycles,
// and run behind a proxy that injects 500s, 429s, 409s, slow answers and dying watches.
// Afterwards nothing is held that should not be, every task is where it should be, and every
// transition is recorded exactly once. `make test` runs a CI-sized round; `make test-chaos` a
// longer one (TASKGRANT_CHAOS_LIFECYCLES, TASKGRANT_CHAOS_FAULT_LIFECYCLES).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { join } from 'node:path';
import { installCrds } from '../src/kube/manifests.js';
import type { AgentTask } from '../src/api/index.js';
import { FaultProxy } from './harness/fault-proxy.js';
import { adminConfig, createNamespace, eventually, uniqueName } from './harness/kube.js';
import { repoRoot } from './harness/paths.js';
import { spawnOperator, type OperatorProcess } from './harness/process.js';
import { TaskHelper, intentOf, readPods } from './harness/tasks.js';

const LIFECYCLES = Number(process.env.TASKGRANT_CHAOS_LIFECYCLES ?? 200);
const FAULT_LIFECYCLES = Number(process.env.TASKGRANT_CHAOS_FAULT_LIFECYCLES ?? 60);
const endings = ['succeed', 'fail', 'delete-pod', 'delete-task', 'revoke', 'expire'] as const;
type Ending = (typeof endings)[number];
const expected: Record<Ending, { phase: string | undefined; reason?: string }> = {
  succeed: { phase: 'Completed', reason: 'PodSucceeded' },
  fail: { phase: 'Revoked', reason: 'PodFailed' },
  'delete-pod': { phase: 'Revoked', reason: 'PodDeleted' },
  'delete-task': { phase: undefined },
  revoke: { phase: 'Revoked', reason: 'Manual' },
  expire: { phase: 'Expired', reason: 'TTLExpired' },
};

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
const logDir = () => process.env.TASKGRANT_TEST_CONTROLPLANE_DIR ?? join(repoRoot(), '.local');

beforeAll(async () => {
  admin = adminConfig();
  tasks = new TaskHelper(admin);
  await installCrds(admin, join(repoRoot(), 'crds'));
});

/** Phases the lifecycles have seen reached, across all of them: the operator's forward progress. */
let progress = 0;

/** One task from creation to its ending; tolerant of the operator being down at any step. */
async function lifecycle(ns: string, i: number, ending: Ending): Promise<Lifecycle> {
  const name = `t-${i}`;
  const created = await tasks.create(ns, name, { agent: `agent-${i % 40}`, intent: intentOf(readPods), ...(ending === 'expire' ? { ttl: '10s' } : {}) });
  const granted = await tasks.waitForPhase(ns, name, 'Granted', 120_000);
  progress += 1;
  await tasks.createTaskPod(granted, `${name}-pod`);
  // A 10 s grant can lapse while the operator is down, before the pod's admission is recorded.
  const active = await tasks.waitForPhase(ns, name, ending === 'expire' ? ['Active', 'Expired'] : 'Active', 120_000);
  progress += 1;
  if (active.status?.phase === 'Expired') return { name, ending, uid: created.metadata.uid ?? '', admitted: false };
  switch (ending) {
    case 'succeed':
      await tasks.setPodPhase(ns, `${name}-pod`, 'Succeeded');
      break;
    case 'fail':
      await tasks.setPodPhase(ns, `${name}-pod`, 'Failed');
      break;
    case 'delete-pod':
      await tasks.core.deleteNamespacedPod({ name: `${name}-pod`, namespace: ns, gracePeriodSeconds: 0 });
      break;
    case 'delete-task':
      await tasks.delete(ns, name);
      break;
    case 'revoke':
      await tasks.annotate(ns, name, { 'taskgrant.io/revoke': 'chaos' });
      break;
    case 'expire':
      break;
  }
  return { name, ending, uid: created.metadata.uid ?? '', admitted: true };
}

interface Lifecycle {
  name: string;
  ending: Ending;
  uid: string;
  /** Whether the task reached Active (its pod's admission recorded) before it ended. */
  admitted: boolean;
}

async function runLifecycles(ns: string, count: number, concurrency: number): Promise<Lifecycle[]> {
  const out: Lifecycle[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        out.push(await lifecycle(ns, i, endings[i % endings.length]!));
      }
    }),
  );
  return out;
}

/** The invariants the README promises (one grant per live task, nothing left after it ends), checked against the cluster itself. */
async function checkInvariants(ns: string, done: Lifecycle[]): Promise<void> {
  for (const t of done) {
    const want = expected[t.ending];
    await eventually(async () => {
      const task = await tasks.get(ns, t.name);
      if (want.phase === undefined) return task === undefined;
      return task?.status?.phase === want.phase && task.status.reason === want.reason;
    }, `${t.name} (${t.ending}) to end ${want.phase ?? 'deleted'}`, 30_000, 100);
  }
  const selector = 'app.kubernetes.io/managed-by=taskgrant';
  const list = (await tasks.custom.listNamespacedCustomObject({ group: 'taskgrant.io', version: 'v1alpha1', namespace: ns, plural: 'agenttasks' })) as { items: AgentTask[] };
  const live = new Set(list.items.filter((t) => t.status?.phase === 'Granted' || t.status?.phase === 'Active').map((t) => t.metadata.uid));
  await eventually(async () => {
    const [sas, roles, bindings] = await Promise.all([
      tasks.core.listNamespacedServiceAccount({ namespace: ns, labelSelector: selector }),
      tasks.rbac.listNamespacedRole({ namespace: ns, labelSelector: selector }),
      tasks.rbac.listNamespacedRoleBinding({ namespace: ns, labelSelector: selector }),
    ]);
    return [...sas.items, ...roles.items, ...bindings.items].every((o) => live.has(o.metadata?.labels?.['taskgrant.io/task-uid']));
  }, 'no grant object without a live task', 15_000, 200);
  // Exactly once: one Event per (task, phase) — names are fixed, so a replay after a crash is
  // refused by the API server — and every phase a task went through has one.
  const events = await tasks.core.listNamespacedEvent({ namespace: ns });
  for (const t of done) {
    const mine = events.items.filter((e) => e.involvedObject.uid === t.uid);
    const reasons = mine.map((e) => e.reason);
    expect(new Set(mine.map((e) => e.metadata?.name)).size).toBe(mine.length);
    expect(reasons).toContain('PolicyAllowed');
    if (t.admitted) expect(reasons).toContain('PodAdmitted');
    if (expected[t.ending].reason) expect(reasons).toContain(expected[t.ending].reason);
    for (const e of mine) expect(e.count ?? 1).toBe(1);
  }
}

describe('crash anywhere', () => {
  let operator: OperatorProcess | undefined;
  let stopped = false;
  afterAll(async () => {
    stopped = true;
    await operator?.kill();
  });

  it(`converges after SIGKILLs at random points across ${LIFECYCLES} task lifecycles`, async () => {
    const ns = await createNamespace(admin, 'chaos');
    const operatorNs = await createNamespace(admin, 'tg-chaos');
    const kubeconfig = process.env.TASKGRANT_TEST_KUBECONFIG ?? '';
    const start = async () => (operator = await spawnOperator({ kubeconfig, namespace: operatorNs, logFile: join(logDir(), `${operatorNs}.log`) }));
    await start();
    let kills = 0;
    const killer = (async () => {
      while (!stopped) {
        // A random point in each life, but never before that life has moved some task on: on a
        // busy machine a fixed window can end every life before it has done anything.
        const before = progress;
        await new Promise((r) => setTimeout(r, 400 + Math.random() * 1600));
        while (!stopped && progress === before) await new Promise((r) => setTimeout(r, 100));
        if (stopped) break;
        await operator?.kill('SIGKILL');
        kills += 1;
        await start();
      }
    })();
    const done = await runLifecycles(ns, LIFECYCLES, 25);
    stopped = true;
    await killer;
    expect(kills).toBeGreaterThan(3);
    await checkInvariants(ns, done);
  }, 900_000);
});

describe('API faults', () => {
  let operator: OperatorProcess | undefined;
  let proxy: FaultProxy | undefined;
  afterAll(async () => {
    await operator?.kill();
    await proxy?.stop();
  });

  it(`keeps every invariant with 500s, 429s, 409s, slow answers and dying watches (${FAULT_LIFECYCLES} lifecycles)`, async () => {
    const ns = await createNamespace(admin, 'faults');
    const operatorNs = await createNamespace(admin, 'tg-faults');
    proxy = await FaultProxy.create(process.env.TASKGRANT_TEST_KUBECONFIG ?? '');
    const kubeconfig = join(logDir(), `${uniqueName('proxy')}.kubeconfig`);
    await proxy.start(kubeconfig);
    operator = await spawnOperator({
      kubeconfig,
      namespace: operatorNs,
      logFile: join(logDir(), `${operatorNs}.log`),
      // Short watch windows so stalls are noticed and recovered within the test's time.
      extra: ['--informer-stall=5s', '--informer-resync=15s'],
    });
    proxy.rates = { error500: 0.05, throttle429: 0.05, conflict409: 0.05, slow: 0.05, slowMs: 1500, dropWatch: 0.2, stallWatch: 0.1 };
    const done = await runLifecycles(ns, FAULT_LIFECYCLES, 15);
    proxy.rates = { error500: 0, throttle429: 0, conflict409: 0, slow: 0, slowMs: 0, dropWatch: 0, stallWatch: 0 };
    await checkInvariants(ns, done);
    expect(proxy.counts.injected).toBeGreaterThan(20);
    // Bounded: retries back off; no hot loop hammers the API server under faults. Counted per
    // lifecycle, not per second: a rate moves with the machine, a hot loop shows in the total.
    const perLifecycle = proxy.counts.requests / FAULT_LIFECYCLES;
    console.error(`[chaos] ${proxy.counts.requests} API requests for ${FAULT_LIFECYCLES} lifecycles (${perLifecycle.toFixed(1)} each), peak ${proxy.peakPerSecond()}/s, ${proxy.counts.injected} faults injected`);
    expect(perLifecycle).toBeLessThan(150);
  }, 900_000);
});
