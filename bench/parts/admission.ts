// Admission: the pod webhook's handler in-process, then pod creation end to end through the API
// server (labelled pods are mutated by the admission policies, then by our webhook; plain ones by
// neither), and on request CPU profiles of both.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../src/webhook/index.js';
import { mutateTaskPod } from '../../src/webhook/pods.js';
import { allowed, parseAdmissionReview } from '../../src/webhook/admission.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import type { AgentTask } from '../../src/api/index.js';
import { PhaseWatcher } from '../client.js';
import { cpuMs, namespace, operatorMetric, setAdmissionMode, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, round, runPool, sleep, timed } from '../stats.js';
import { taskBody, taskPath, typicalTask } from '../tasks.js';

// ---- admission handler, in-process ------------------------------------------------------------

async function benchAdmissionHandler({ results }: BenchContext): Promise<void> {
  const task: AgentTask = {
    ...typicalTask('bench-task'),
    status: { phase: 'Granted', grant: { serviceAccount: 'tg-bench-task-6f0c7e2a', role: 'r', roleBinding: 'rb', issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3_600_000).toISOString(), pods: [] } },
  };
  const app = createApp({
    logger: silentLogger(),
    metrics: new Metrics(),
    tasks: { get: (ns, name) => (ns === 'team-a' && name === 'bench-task' ? task : undefined) },
    // The slot claim is a ledger round trip in the operator; here every pod finds a free slot.
    slots: { claim: async () => ({ type: 'claimed' as const }) },
    serviceAccounts: { isManaged: () => false, taskOf: () => undefined },
    accessReviewer: { canApprove: async () => false },
  });
  const server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const review = (i: number) =>
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `u-${i}`,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        operation: 'CREATE',
        namespace: 'team-a',
        name: `p-${i}`,
        // Dry runs hold no maxPods slot, so every one of the thousands of reviews is admitted.
        dryRun: true,
        userInfo: { username: 'bench' },
        object: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `p-${i}`, namespace: 'team-a', labels: { 'taskgrant.io/task': 'bench-task' } },
          spec: {
            serviceAccountName: 'default',
            containers: [{ name: 'a', image: 'x', volumeMounts: [{ name: 'kube-api-access-abcde', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }] }],
            volumes: [{ name: 'kube-api-access-abcde', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }],
          },
        },
      },
    });
  const post = async (i: number) => {
    const res = await fetch(`http://127.0.0.1:${port}/mutate/pods`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: review(i) });
    const json = (await res.json()) as { response?: { allowed?: boolean; status?: { message?: string } } };
    if (!json.response?.allowed) throw new Error(`handler refused the bench pod: ${json.response?.status?.message ?? ''}`);
  };
  await timed(300, 1, post);
  const overHttp = await timed(3000, 1, post);
  server.close();

  // The handler itself, in-process: parse the AdmissionReview, decide, build the JSON Patch and
  // the response — everything the API server waits on except the connection.
  const deps = {
    tasks: { get: (ns: string, name: string) => (ns === 'team-a' && name === 'bench-task' ? task : undefined) },
    slots: { claim: async () => ({ type: 'claimed' as const }) },
    serviceAccounts: { isManaged: () => false, taskOf: () => undefined },
    now: () => new Date(),
  };
  const handle = async (i: number) => {
    const parsed = parseAdmissionReview(JSON.parse(review(i)));
    if (!parsed.ok) throw new Error(parsed.error);
    const verdict = await mutateTaskPod(parsed.value, deps);
    if (verdict.type !== 'allow') throw new Error(`refused: ${verdict.message}`);
    return JSON.stringify(allowed(parsed.value.uid, verdict.patch));
  };
  for (let i = 0; i < 500; i += 1) await handle(i);
  const direct: number[] = [];
  for (let i = 0; i < 5000; i += 1) {
    const t = performance.now();
    await handle(i);
    direct.push(performance.now() - t);
  }
  results.admission = {
    handler_p50_ms: round(percentile(direct, 50)),
    handler_p99_ms: round(percentile(direct, 99)),
    handler_http_p50_ms: round(percentile(overHttp, 50)),
    handler_http_p99_ms: round(percentile(overHttp, 99)),
  };
}

// ---- admission end to end -----------------------------------------------------------------------

/**
 * A granted task and a pod creator for it: labelled pods are given the task's identity (by the
 * admission policies or our webhook, whichever is in force), plain ones are not. Returns once the
 * API server mutates this task's pods (the policies read the live task from a cache of their own).
 */
async function admissionTarget(env: Env, nsName: string): Promise<(i: number, labelled: boolean) => Promise<void>> {
  const ns = await namespace(env.client, nsName);
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  await env.client.must('POST', taskPath(ns), taskBody('e2e', 'e2e-agent', { maxPods: 100 }));
  await watcher.waitFor('e2e', ['Granted']);
  watcher.stop();
  // Dry-run creates run every admission step (webhooks and policies included) and persist
  // nothing, so the labelled and unlabelled pods are measured identically and maxPods never fills up.
  const pod = (i: number, labelled: boolean) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p-${labelled ? 'l' : 'u'}-${i}`, labels: labelled ? { 'taskgrant.io/task': 'e2e' } : { app: 'plain' } },
    spec: { containers: [{ name: 'a', image: 'registry.invalid/a:1' }] },
  });
  const create = async (i: number, labelled: boolean) => {
    const res = await env.client.call('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, pod(i, labelled));
    if (res.status !== 201) throw new Error(`pod create ${res.status}: ${res.body.slice(0, 200)}`);
    if (labelled && !res.body.includes('"serviceAccountName":"tg-e2e-')) throw new Error(`task pod admitted without its identity: ${res.body.slice(0, 300)}`);
  };
  for (let attempt = 0; ; attempt += 1) {
    try {
      await create(999_999, true);
      return create;
    } catch (err) {
      if (attempt >= 200) throw err;
      await sleep(100);
    }
  }
}

/** kube-apiserver's own histogram of mutating webhook calls (all of ours: only task pods reach it here). */
async function webhookCallStats(env: Env): Promise<{ sum: number; count: number }> {
  const res = await env.client.call('GET', '/metrics');
  const total = (suffix: string) =>
    res.body
      .split('\n')
      .filter((l) => l.startsWith(`apiserver_admission_webhook_admission_duration_seconds_${suffix}{`) && l.includes('type="admit"'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return { sum: total('sum'), count: total('count') };
}

/** Labelled and plain pods created in turns, at concurrency 1 then 32, by the mode in force. */
async function measureModes(env: Env, create: (i: number, labelled: boolean) => Promise<void>) {
  const measure = async (concurrency: number, count: number) => {
    await timed(50, concurrency, (i) => create(i, true));
    await timed(50, concurrency, (i) => create(i, false));
    const labelled: number[] = [];
    const plain: number[] = [];
    for (let batch = 0; batch < 4; batch += 1) {
      labelled.push(...(await timed(count / 4, concurrency, (i) => create(batch * 10_000 + i, true))));
      plain.push(...(await timed(count / 4, concurrency, (i) => create(batch * 10_000 + i, false))));
    }
    return { labelled, plain };
  };
  const c1 = await measure(1, 400);
  const c32 = await measure(32, 1280);
  return { c1, c32 };
}

function modeFigures(prefix: string, { c1, c32 }: Awaited<ReturnType<typeof measureModes>>): Record<string, number> {
  return {
    [`${prefix}c1_p50_ms`]: round(percentile(c1.labelled, 50)),
    [`${prefix}c1_baseline_p50_ms`]: round(percentile(c1.plain, 50)),
    [`${prefix}c1_p50_ratio`]: round(percentile(c1.labelled, 50) / percentile(c1.plain, 50), 2),
    [`${prefix}c1_p99_ratio`]: round(percentile(c1.labelled, 99) / percentile(c1.plain, 99), 2),
    [`${prefix}p50_ms`]: round(percentile(c32.labelled, 50)),
    [`${prefix}baseline_p50_ms`]: round(percentile(c32.plain, 50)),
    [`${prefix}p50_ratio`]: round(percentile(c32.labelled, 50) / percentile(c32.plain, 50), 2),
    [`${prefix}p99_ratio`]: round(percentile(c32.labelled, 99) / percentile(c32.plain, 99), 2),
  };
}

/**
 * Task pod admission in both modes: the policies the chart ships (MutatingAdmissionPolicy, no
 * webhook call; `policy_e2e_*`), then the release switched to the webhook (`e2e_*`, with the API
 * server's and the operator's view of the calls), then back.
 */
async function benchAdmissionE2E({ results, log }: BenchContext, env: Env): Promise<void> {
  const policy = await measureModes(env, await admissionTarget(env, 'bench-admission-policy'));
  await setAdmissionMode(env, 'webhook');
  const create = await admissionTarget(env, 'bench-admission');
  const connectionsBefore = await operatorMetric(env, 'taskgrant_webhook_connections_total');
  const webhookBefore = await webhookCallStats(env);
  const cpuBefore = cpuMs(env.operator.pid!);
  const webhook = await measureModes(env, create);
  const webhookAfter = await webhookCallStats(env);
  const cpuAfter = cpuMs(env.operator.pid!);
  await setAdmissionMode(env, 'policy');
  const calls = Math.max(1, webhookAfter.count - webhookBefore.count);
  const connections = (await operatorMetric(env, 'taskgrant_webhook_connections_total')) - connectionsBefore;
  log(`admission: ${calls} webhook calls over ${connections} new connection(s)`);
  results.admission = {
    ...results.admission,
    ...modeFigures('policy_e2e_', policy),
    ...modeFigures('e2e_', webhook),
    // As the API server sees it: the mean time of one call to our webhook, connection included.
    apiserver_webhook_mean_ms: round(((webhookAfter.sum - webhookBefore.sum) / calls) * 1000),
    // The operator's CPU time per webhook call (everything it did in the phase, over the calls).
    operator_cpu_per_call_ms: round((cpuAfter - cpuBefore) / calls),
    webhook_connections: connections,
  };
}

/**
 * Not part of the default run (BENCH_ONLY=profile): where the CPU goes while pods are created at
 * concurrency 32, labelled and plain, as kube-apiserver CPU profiles (bench/results/apiserver-*.pb.gz,
 * read with `go tool pprof -top`) beside each phase's rate and the operator's CPU time.
 */
async function profileAdmission({ root, results, log }: BenchContext, env: Env): Promise<void> {
  const create = await admissionTarget(env, 'bench-profile');
  const out = join(root, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const profile: Record<string, number> = {};
  for (const labelled of [true, false]) {
    const kind = labelled ? 'labelled' : 'plain';
    let stop = false;
    let done = 0;
    const load = runPool(Array.from({ length: 32 }, (_, w) => w), 32, async (w) => {
      for (let i = 0; !stop && i < 5_000; i += 1) {
        await create(w * 10_000 + i, labelled);
        done += 1;
      }
    });
    await sleep(1000);
    const [cpu0, done0, t0] = [cpuMs(env.operator.pid!), done, performance.now()];
    const res = await env.client.call('GET', '/debug/pprof/profile?seconds=8');
    const seconds = (performance.now() - t0) / 1000;
    profile[`${kind}_per_s`] = round((done - done0) / seconds, 1);
    profile[`${kind}_operator_cpu_pct`] = round((cpuMs(env.operator.pid!) - cpu0) / 10 / seconds, 1);
    stop = true;
    await load;
    if (res.status === 200) writeFileSync(join(out, `apiserver-${kind}.pb.gz`), res.bytes);
    else log(`apiserver profile: ${res.status} ${res.body.slice(0, 200)}`);
  }
  results.profile = profile;
}

export const handlerPart: BenchPart = { name: 'handler', title: 'admission handler (in-process)', run: benchAdmissionHandler };
export const admissionPart: BenchPart<Env> = { name: 'admission', title: 'admission end to end', run: benchAdmissionE2E };
export const profilePart: BenchPart<Env> = { name: 'profile', title: 'kube-apiserver CPU profiles: labelled vs plain pods', optIn: true, run: profileAdmission };
