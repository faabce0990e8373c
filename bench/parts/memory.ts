// Memory: the operator's resident memory holding 2000 live tasks, then whether it creeps over
// 1500 create/revoke cycles (500 to warm up, 1,000 measured).
import { readFileSync } from 'node:fs';
import { PhaseWatcher } from '../client.js';
import { namespace, rssMb, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { round, runPool, sleep } from '../stats.js';
import { taskBody, taskPath } from '../tasks.js';

/** Where the operator's resident memory goes: file-backed (the node binary), anonymous, JS heap. */
async function memoryProfile(pid: number, healthPort: number): Promise<Record<string, number>> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  const metrics = await fetch(`http://127.0.0.1:${healthPort}/metrics`).then((r) => r.text());
  const metric = (name: string) => Number(new RegExp(`^${name} ([0-9.e+]+)`, 'm').exec(metrics)?.[1] ?? 0) / 1048576;
  return {
    loaded_rss_file_mb: round(kb('RssFile'), 1),
    loaded_rss_anon_mb: round(kb('RssAnon'), 1),
    loaded_heap_used_mb: round(metric('taskgrant_process_nodejs_heap_size_used_bytes'), 1),
    loaded_heap_total_mb: round(metric('taskgrant_process_nodejs_heap_size_total_bytes'), 1),
    loaded_external_mb: round(metric('taskgrant_process_nodejs_external_memory_bytes'), 1),
  };
}

/**
 * Deletes the tasks earlier parts left (hundreds of them, granted or ended), so memory.tasks is
 * the number of tasks the operator actually holds while it is measured.
 */
async function clearEarlierTasks(env: Env): Promise<number> {
  const list = await env.client.must('GET', '/apis/taskgrant.io/v1alpha1/agenttasks');
  const namespaces = new Set((list.items as Array<{ metadata: { namespace: string } }>).map((t) => t.metadata.namespace));
  for (const ns of namespaces) await env.client.must('DELETE', taskPath(ns));
  const deadline = Date.now() + 120_000;
  for (;;) {
    const left = ((await env.client.must('GET', '/apis/taskgrant.io/v1alpha1/agenttasks')).items as unknown[]).length;
    if (left === 0) return (list.items as unknown[]).length;
    if (Date.now() > deadline) throw new Error(`${left} earlier tasks still present after 120 s`);
    await sleep(200);
  }
}

async function benchMemory({ results, log }: BenchContext, env: Env): Promise<void> {
  const pid = env.operator.pid!;
  const cleared = await clearEarlierTasks(env);
  if (cleared > 0) log(`memory: removed the ${cleared} tasks earlier parts left`);
  await sleep(3000);
  const ns = await namespace(env.client, 'bench-memory');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const live = 2000;
  const names = Array.from({ length: live }, (_, i) => `m-${i}`);
  const granted = names.map((n) => watcher.waitFor(n, ['Granted'], 300_000));
  await runPool(names, 64, async (name, i) => void (await env.client.must('POST', taskPath(ns), taskBody(name, `mem-agent-${i}`))));
  await Promise.all(granted);
  await sleep(3000);
  const loadedMb = rssMb(pid);
  const profile = await memoryProfile(pid, env.healthPort);
  log(`memory with ${live} live tasks: ${loadedMb} MB ${JSON.stringify(profile)}`);
  if (process.env.BENCH_HEAP_SNAPSHOT) {
    // With BENCH_OPERATOR_FLAGS=--heapsnapshot-signal=SIGUSR2: a snapshot of the loaded operator.
    process.kill(pid, 'SIGUSR2');
    await sleep(30_000);
  }
  const gone = names.map((n) => watcher.waitFor(n, ['Deleted'], 300_000));
  await runPool(names, 64, async (name) => void (await env.client.must('DELETE', taskPath(ns, name))));
  await Promise.all(gone);

  // Churn: create -> granted -> delete -> gone, many times; memory must not creep.
  const cycles = 1500;
  const warmup = 500;
  let done = 0;
  let warmMb = 0;
  await runPool(
    Array.from({ length: cycles }, (_, i) => i),
    32,
    async (i) => {
      const name = `c-${i}`;
      const granted = watcher.waitFor(name, ['Granted'], 120_000);
      await env.client.must('POST', taskPath(ns), taskBody(name, `churn-agent-${i % 400}`));
      await granted;
      const deleted = watcher.waitFor(name, ['Deleted'], 120_000);
      await env.client.must('DELETE', taskPath(ns, name));
      await deleted;
      done += 1;
      if (done === warmup) warmMb = rssMb(pid);
    },
  );
  await sleep(3000);
  const endMb = rssMb(pid);
  watcher.stop();
  results.memory = { idle_mb: env.idleMb, tasks: live, loaded_mb: loadedMb, ...profile, churn_cycles: cycles, churn_warm_mb: warmMb, churn_end_mb: endMb, churn_ratio: round(endMb / warmMb, 2) };
}

export const memoryPart: BenchPart<Env> = { name: 'memory', title: 'memory: 2000 live tasks, then 1500 create/revoke cycles', once: true, run: benchMemory };
