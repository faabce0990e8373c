// Scale: one operator holding 50,000 tasks (48,000 ended, 2,000 live) — its memory against the
// chart's limit, a grant's latency beside the same at no tasks held, and a restart: how long to
// ready, and how soon the grants that expired while it was down are all revoked.
import { readFileSync } from 'node:fs';
import { PhaseWatcher } from '../client.js';
import { namespace, startOperator, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, round, runPool, sleep } from '../stats.js';
import { taskBody, taskPath } from '../tasks.js';

const ENDED = Number(process.env.BENCH_SCALE_ENDED ?? 48_000);
const LIVE = 2_000;
/** Of the live ones, those that expire while the operator is down. */
const OVERDUE = 200;
const GRANT_SAMPLES = 100;
/** The chart's default memory limit (values.yaml resources.limits.memory). */
const CHART_LIMIT_MB = 512;

function procStatusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return round(kb / 1024, 1);
}

/** One task at a time, created to Granted, as a user waits for it. */
async function grantLatencies(env: Env, watcher: PhaseWatcher, ns: string, prefix: string): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < GRANT_SAMPLES; i += 1) {
    const name = `${prefix}-${i}`;
    const start = performance.now();
    // An hour, like the live tasks: none of them expires under the parts that run after this one.
    await env.client.must('POST', taskPath(ns), taskBody(name, `${prefix}-agent-${i}`, { ttl: '1h' }));
    samples.push((await watcher.waitFor(name, ['Granted'])) - start);
  }
  return samples;
}

/** Creates tasks with `concurrency` writers and waits until each reached one of `phases`. */
async function fill(env: Env, watcher: PhaseWatcher, ns: string, names: string[], body: (name: string, i: number) => unknown, phases: string[]): Promise<void> {
  const reached = names.map((name) => watcher.waitFor(name, phases, 1_800_000));
  // 32 writers: the API server is the bound (48,000 ended tasks in 719 s with 32, 766 s with 64).
  await runPool(names, 32, async (name, i) => void (await env.client.must('POST', taskPath(ns), body(name, i))));
  await Promise.all(reached);
}

async function benchScale({ results, log, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-scale');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const rssBefore = procStatusMb(env.operator.pid!, 'VmRSS');
  const grantEmpty = await grantLatencies(env, watcher, ns, 'g0');

  // Ended tasks: a TTL the default limits refuse (forbid-ttl-over-4h, no approval lifts it), so
  // each is decided and ended as Denied and held until retention, as ended grants are.
  const t0 = performance.now();
  const ended = Array.from({ length: ENDED }, (_, i) => `e-${i}`);
  await fill(env, watcher, ns, ended, (name, i) => taskBody(name, `agent-${i % 300}`, { ttl: '5h' }), ['Denied']);
  log(`scale: ${ENDED} ended tasks in ${round((performance.now() - t0) / 1000, 1)} s`);
  const live = Array.from({ length: LIVE - OVERDUE }, (_, i) => `l-${i}`);
  await fill(env, watcher, ns, live, (name, i) => taskBody(name, `live-agent-${i % 300}`, { ttl: '1h' }), ['Granted']);
  const held = ENDED + LIVE - OVERDUE + 2 * GRANT_SAMPLES;
  await sleep(3000);
  const rss = procStatusMb(env.operator.pid!, 'VmRSS');
  const grantHeld = await grantLatencies(env, watcher, ns, 'g1');

  // Restart: the last live tasks expire while the operator is down.
  const overdue = Array.from({ length: OVERDUE }, (_, i) => `o-${i}`);
  await fill(env, watcher, ns, overdue, (name, i) => taskBody(name, `overdue-agent-${i % 300}`, { ttl: '10s' }), ['Granted']);
  const peak = procStatusMb(env.operator.pid!, 'VmHWM');
  const expiries = await Promise.all(overdue.map(async (name) => Date.parse(((await env.client.must('GET', taskPath(ns, name))).status as { grant: { expiresAt: string } }).grant.expiresAt)));
  const exited = new Promise((resolve) => env.operator.once('exit', resolve));
  env.operator.kill('SIGTERM');
  await exited;
  await sleep(Math.max(0, Math.max(...expiries) - Date.now()) + 1000);
  const restartAt = performance.now();
  const restarted = await startOperator(env.launch);
  const readyAt = performance.now();
  env.operator = restarted.child;
  env.healthPort = restarted.healthPort;
  const revokedAt = await Promise.all(overdue.map((name) => watcher.waitFor(name, ['Expired', 'Revoked'], 300_000)));
  watcher.stop();
  // The restarted operator listed all of them at once: its own peak.
  const restartPeak = procStatusMb(env.operator.pid!, 'VmHWM');
  keep('scale.grant_empty', grantEmpty);
  keep('scale.grant_held', grantHeld);
  results.scale = {
    held_tasks: held + OVERDUE,
    ended_tasks: ENDED,
    live_tasks: LIVE,
    rss_mb: rss,
    peak_rss_mb: peak,
    restart_peak_rss_mb: restartPeak,
    limit_mb: CHART_LIMIT_MB,
    bytes_per_task: Math.round(((rss - rssBefore) * 1048576) / held),
    grant_empty_p50_ms: round(percentile(grantEmpty, 50)),
    grant_empty_p99_ms: round(percentile(grantEmpty, 99)),
    grant_held_p50_ms: round(percentile(grantHeld, 50)),
    grant_held_p99_ms: round(percentile(grantHeld, 99)),
    grant_p99_ratio: round(percentile(grantHeld, 99) / percentile(grantEmpty, 99), 2),
    restart_ready_s: round((readyAt - restartAt) / 1000, 1),
    overdue_tasks: OVERDUE,
    overdue_revoked_s: round((Math.max(...revokedAt) - readyAt) / 1000, 1),
  };
}

export const scalePart: BenchPart<Env> = { name: 'scale', title: `scale: ${ENDED} ended and ${LIVE} live tasks on one operator, then a restart`, once: true, run: benchScale };
