// make bench: every figure measured beside its floor in the same run, against a real local
// control plane on loopback, every loop bounded. Writes bench/results/latest.json and prints a
// markdown table (bench/RESULTS.md keeps a committed copy). The parts are in bench/parts/.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ControlPlane, freePort } from '../test/harness/controlplane.js';
import { kubeAssets, repoRoot } from '../test/harness/paths.js';
import { BenchClient } from './client.js';
import { floorIdentity, installChart, rssMb, startOperator, type Env } from './cluster.js';
import { mergeRuns, runParts, type BenchContext, type BenchPart, type Results } from './part.js';
import { admissionPart, profilePart } from './parts/admission.js';
import { authzRequestPart, authzRevokePart } from './parts/authz.js';
import { burstPart, grantPart } from './parts/grant.js';
import { kyvernoPart } from './parts/kyverno.js';
import { memoryPart } from './parts/memory.js';
import { peerPart } from './parts/peer.js';
import { scalePart } from './parts/scale.js';
import { burstRevokePart, revokePart, ttlPart, usedTokenPart } from './parts/revoke.js';
import { table } from './report.js';
import { sampleKeeper, sleep } from './stats.js';

/**
 * Against the one cluster and operator main sets up, in this order: memory, then scale, each on
 * an operator that holds nothing else (three runs of the timed parts leave thousands of live
 * tasks behind); the timed parts after them, on an operator holding 50,000 tasks, as on day 2.
 */
const clusterParts: ReadonlyArray<BenchPart<Env>> = [memoryPart, scalePart, admissionPart, profilePart, authzRequestPart, authzRevokePart, grantPart, burstPart, revokePart, ttlPart, usedTokenPart, peerPart, kyvernoPart, burstRevokePart];

/** The V8 flags the image and `make run` start the operator with (see Dockerfile); BENCH_OPERATOR_FLAGS adds more (e.g. --cpu-prof). */
const OPERATOR_NODE_FLAGS = ['--max-semi-space-size=4', '--wasm-num-compilation-tasks=0', '--optimize-for-size'];

/**
 * Before the control plane starts: the micro-benchmarks (bench/micro.ts), in a child process with
 * the operator's V8 flags — measured in this process they would run with other flags than the
 * code they measure.
 */
async function microBenchmarks(root: string): Promise<Results> {
  const child = spawn(process.execPath, [...OPERATOR_NODE_FLAGS, join(root, 'dist', 'bench', 'micro.js')], { stdio: ['ignore', 'pipe', 'inherit'], cwd: root });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`the micro-benchmarks exited ${code}`);
  const results = JSON.parse(out) as Results;
  delete results.durations; // the child's own; main times the micro-benchmarks as one
  for (const section of Object.values(results)) section.node_flags = OPERATOR_NODE_FLAGS.join(' ');
  return results;
}

async function main(): Promise<void> {
  const started = Date.now();
  const results: Results = {};
  const ctx: BenchContext = { root: repoRoot(), results, log: (msg) => void process.stderr.write(`[bench ${Math.round((Date.now() - started) / 1000)} s] ${msg}\n`), keep: sampleKeeper(join(repoRoot(), 'bench', 'results', 'samples')) };
  const { root, log } = ctx;
  /** BENCH_ONLY=admission,grant runs just those parts (for working on one figure); unset runs all. */
  const only: ReadonlySet<string> = new Set((process.env.BENCH_ONLY ?? '').split(',').filter(Boolean));
  /** Every timed part runs this many times (BENCH_RUNS=1 for a quick look); its figures are the medians. */
  const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 3) || 3);
  const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${runs} run(s) of each timed part`;
  results.machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, runs };
  const microStarted = performance.now();
  const micro: Results[] = [];
  for (let run = 1; run <= runs; run += 1) {
    log(`micro-benchmarks (run ${run} of ${runs})`);
    micro.push(await microBenchmarks(root));
  }
  mergeRuns(results, micro);
  results.durations = { micro: Math.round((performance.now() - microStarted) / 1000) };

  const dir = mkdtempSync(join(tmpdir(), 'taskgrant-bench-'));
  const plane = new ControlPlane({ dir, assets: kubeAssets(), mode: 'tethered', profiling: only.has('profile'), authorizer: true });
  let env: Env | undefined;
  try {
    const info = await plane.start();
    const client = new BenchClient(info.kubeconfigPath);
    const operatorNs = 'taskgrant-bench';
    const webhookPort = await freePort();
    const operatorKubeconfig = await installChart(client, info.kubeconfigPath, operatorNs, webhookPort, dir);
    const floorToken = await floorIdentity(client, operatorNs);
    const launch = { root, nodeFlags: OPERATOR_NODE_FLAGS, kubeconfig: operatorKubeconfig, operatorNs, webhookPort, dir, clusterDir: dirname(info.kubeconfigPath) };
    const launched = await startOperator(launch);
    env = { client, kubeconfig: info.kubeconfigPath, operator: launched.child, launch, operatorNs, healthPort: launched.healthPort, floorToken, idleMb: 0, webhookPort };
    await sleep(3000);
    env.idleMb = rssMb(launched.child.pid!);
    log(`operator idle: ${env.idleMb} MB`);
    await runParts(clusterParts, ctx, env, only, runs);
    client.close();
  } catch (err) {
    // What was measured before the failure is kept for reading, never as a full run's results.
    writeResults(root, 'failed', results, machine, started);
    throw err;
  } finally {
    const operator = env?.operator;
    if (operator && operator.exitCode === null) {
      // Waited for, so a profile asked for with BENCH_OPERATOR_FLAGS is written before we go.
      const exited = new Promise((resolve) => operator.once('exit', resolve));
      operator.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
    }
    await plane.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const md = writeResults(root, only.size === 0 ? 'latest' : 'partial', results, machine, started);
  process.stdout.write(`${md}\n`);
}

/** bench/results/<stem>.json and .md; a partial run (BENCH_ONLY) never stands in for the full one. */
function writeResults(root: string, stem: string, results: Results, machine: string, started: number): string {
  results.machine = { ...results.machine, duration_s: Math.round((Date.now() - started) / 1000) };
  const out = join(root, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
  const md = table(results, machine);
  writeFileSync(join(out, `${stem}.md`), `${md}\n`);
  return md;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
