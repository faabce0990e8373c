// Admission: the pod webhook's handler in-process, then pod creation end to end through the API
// server (labelled pods are mutated by the admission policies, then by our webhook; plain ones by
// neither), and on request CPU profiles of both.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../src/webhook/index.js';
import { mutateTaskPod } from '../../src/webhook/pods.js';
import { allowed, parseAdmissionReview } from '../../src/webhook/admission.js';
import type { Patch } from '../../src/webhook/jsonpatch.js';
import { CertificateAuthority } from '../../src/webhook/certs.js';
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
export type PodKind = 'task' | 'plain' | 'null' | 'kyverno';
export type CreatePod = (i: number, kind: PodKind) => Promise<void>;

/** The label each kind of pod carries: it selects the webhook (or policy) that mutates it. */
export const POD_LABELS: Record<PodKind, Record<string, string>> = {
  task: { 'taskgrant.io/task': 'e2e' },
  plain: { app: 'plain' },
  null: { 'bench.taskgrant.io/null': 'true' },
  kyverno: { 'bench.taskgrant.io/kyverno': 'true' },
};

export async function admissionTarget(env: Env, nsName: string): Promise<CreatePod> {
  const ns = await namespace(env.client, nsName);
  // The null webhook's patch names this ServiceAccount (see nullWebhook).
  await env.client.must('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name: NULL_SERVICE_ACCOUNT } });
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  await env.client.must('POST', taskPath(ns), taskBody('e2e', 'e2e-agent', { maxPods: 100 }));
  await watcher.waitFor('e2e', ['Granted']);
  watcher.stop();
  // Dry-run creates run every admission step (webhooks and policies included) and persist
  // nothing, so the labelled and unlabelled pods are measured identically and maxPods never fills up.
  const pod = (i: number, kind: PodKind) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p-${kind}-${i}`, labels: POD_LABELS[kind] },
    spec: { containers: [{ name: 'a', image: 'registry.invalid/a:1' }] },
  });
  const create = async (i: number, kind: PodKind) => {
    const res = await env.client.call('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, pod(i, kind));
    if (res.status !== 201) throw new Error(`pod create ${res.status}: ${res.body.slice(0, 200)}`);
    if (kind === 'task' && !res.body.includes('"serviceAccountName":"tg-e2e-')) throw new Error(`task pod admitted without its identity: ${res.body.slice(0, 300)}`);
    // The floor and the peer make the same patch as ours, or they would be measured doing less.
    if ((kind === 'null' || kind === 'kyverno') && !res.body.includes(`"serviceAccountName":"${NULL_SERVICE_ACCOUNT}"`)) throw new Error(`${kind} pod admitted unpatched: ${res.body.slice(0, 300)}`);
  };
  for (let attempt = 0; ; attempt += 1) {
    try {
      await create(999_999, 'task');
      return create;
    } catch (err) {
      if (attempt >= 200) throw err;
      await sleep(100);
    }
  }
}

/** kube-apiserver's own histogram of its calls to the mutating webhooks whose name contains `name`. */
async function webhookCallStats(env: Env, name: string): Promise<{ sum: number; count: number }> {
  const res = await env.client.call('GET', '/metrics');
  const total = (suffix: string) =>
    res.body
      .split('\n')
      .filter((l) => l.startsWith(`apiserver_admission_webhook_admission_duration_seconds_${suffix}{`) && l.includes('type="admit"') && new RegExp(`name="[^"]*${name}`).test(l))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return { sum: total('sum'), count: total('count') };
}

/**
 * Pods of each kind created in turns (so each kind sees the same machine), `count` of each at
 * `concurrency`, after 50 of each to warm up.
 */
export async function measureKinds(create: CreatePod, kinds: readonly PodKind[], concurrency: number, count: number): Promise<Partial<Record<PodKind, number[]>>> {
  for (const kind of kinds) await timed(50, concurrency, (i) => create(i, kind));
  const samples: Partial<Record<PodKind, number[]>> = {};
  for (let batch = 0; batch < 4; batch += 1) {
    for (const kind of kinds) (samples[kind] ??= []).push(...(await timed(count / 4, concurrency, (i) => create(batch * 10_000 + i, kind))));
  }
  return samples;
}

/** Pods of each kind, at concurrency 1 then 32, by the mode in force. */
async function measureModes(create: CreatePod, kinds: readonly PodKind[]) {
  const measure = async (concurrency: number, count: number) => {
    const samples = await measureKinds(create, kinds, concurrency, count);
    return { labelled: samples.task ?? [], plain: samples.plain ?? [], null: samples.null ?? [] };
  };
  // At least 100 samples behind each p99, run three times (BENCH_RUNS).
  const c1 = await measure(1, 200);
  const c32 = await measure(32, 640);
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
async function benchAdmissionE2E({ results, log, keep }: BenchContext, env: Env): Promise<void> {
  const policy = await measureModes(await admissionTarget(env, 'bench-admission-policy'), ['task', 'plain']);
  await setAdmissionMode(env, 'webhook');
  const floor = await nullWebhook(env);
  try {
    const create = await admissionTarget(env, 'bench-admission');
    const connectionsBefore = await operatorMetric(env, 'taskgrant_webhook_connections_total');
    const webhookBefore = await webhookCallStats(env, 'taskgrant');
    const cpuBefore = cpuMs(env.operator.pid!);
    const webhook = await measureModes(create, ['task', 'null', 'plain']);
    const webhookAfter = await webhookCallStats(env, 'taskgrant');
    const cpuAfter = cpuMs(env.operator.pid!);
    const calls = Math.max(1, webhookAfter.count - webhookBefore.count);
    const connections = (await operatorMetric(env, 'taskgrant_webhook_connections_total')) - connectionsBefore;
    log(`admission: ${calls} webhook calls over ${connections} new connection(s)`);
    keep('admission.policy_c32_task', policy.c32.labelled);
    keep('admission.policy_c32_plain', policy.c32.plain);
    keep('admission.webhook_c32_task', webhook.c32.labelled);
    keep('admission.webhook_c32_null', webhook.c32.null);
    keep('admission.webhook_c32_plain', webhook.c32.plain);
    results.admission = {
      ...results.admission,
      ...modeFigures('policy_e2e_', policy),
      ...modeFigures('e2e_', webhook),
      // Against a webhook that does no work (same TLS, same patch): what our logic adds.
      null_floor_p50_ms: round(percentile(webhook.c32.null, 50)),
      null_floor_p50_ratio: round(percentile(webhook.c32.labelled, 50) / percentile(webhook.c32.null, 50), 2),
      null_floor_c1_p50_ratio: round(percentile(webhook.c1.labelled, 50) / percentile(webhook.c1.null, 50), 2),
      // As the API server sees it: the mean time of one call to our webhook, connection included.
      apiserver_webhook_mean_ms: round(((webhookAfter.sum - webhookBefore.sum) / calls) * 1000),
      // The operator's CPU time per webhook call (everything it did in the phase, over the calls).
      operator_cpu_per_call_ms: round((cpuAfter - cpuBefore) / calls),
      webhook_connections: connections,
    };
  } finally {
    await floor.close();
    await setAdmissionMode(env, 'policy');
  }
}

const NULL_SERVICE_ACCOUNT = 'null-sa';
const NULL_WEBHOOK = 'bench-null-webhook';

/**
 * The patch our webhook makes for the bench's pod, computed once with the operator's own code
 * for a task whose ServiceAccount is NULL_SERVICE_ACCOUNT (a tg-* name would be refused by the
 * identity guard): what the null webhook answers and Kyverno's policy applies.
 */
export async function benchPodPatch(): Promise<Patch> {
  const task: AgentTask = { ...typicalTask('null-task'), status: { phase: 'Granted', grant: { serviceAccount: NULL_SERVICE_ACCOUNT, role: 'r', roleBinding: 'rb', issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3_600_000).toISOString(), pods: [] } } };
  // The bench pod as the webhook sees it: defaulted, with the API-access volume the ServiceAccount plugin added.
  const seen = {
    uid: 'x', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, operation: 'CREATE', namespace: 'team-a', name: 'p', dryRun: true, userInfo: { username: 'bench' },
    object: {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team-a', labels: { 'taskgrant.io/task': 'null-task' } },
      spec: { serviceAccountName: 'default', containers: [{ name: 'a', image: 'registry.invalid/a:1', volumeMounts: [{ name: 'kube-api-access-abcde', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }] }], volumes: [{ name: 'kube-api-access-abcde', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }] },
    },
  };
  const parsed = parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: seen });
  if (!parsed.ok) throw new Error(parsed.error);
  const verdict = await mutateTaskPod(parsed.value, { tasks: { get: () => task }, slots: { claim: async () => ({ type: 'claimed' as const }) }, serviceAccounts: { isManaged: () => false, taskOf: () => undefined }, now: () => new Date() });
  if (verdict.type !== 'allow') throw new Error(`the bench pod's patch: ${verdict.message}`);
  return verdict.patch;
}

/**
 * The admission floor: a mutating webhook with our TLS setup (its own CA, keep-alive as ours)
 * that decides nothing and answers every pod labelled as `null` with one fixed patch, ours for
 * the bench's pod (benchPodPatch).
 */
export async function nullWebhook(env: Env): Promise<{ close(): Promise<void> }> {
  const patch = await benchPodPatch();
  const ca = await CertificateAuthority.create('bench-null-webhook-ca', 3_600_000);
  const serving = await ca.issue({ commonName: 'bench-null-webhook', ipAddresses: ['127.0.0.1'], usage: 'server', validityMs: 3_600_000 });
  const server = createHttpsServer({ cert: serving.certPem, key: serving.keyPem, keepAliveTimeout: 120_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const uid = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request: { uid: string } }).request.uid;
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(allowed(uid, patch)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations`;
  await env.client.must('POST', path, {
    metadata: { name: NULL_WEBHOOK },
    webhooks: [{
      name: 'null.bench.taskgrant.io',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      timeoutSeconds: 10,
      objectSelector: { matchLabels: POD_LABELS.null },
      rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
      clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle: Buffer.from(ca.certPem).toString('base64') },
    }],
  });
  return {
    close: async () => {
      await env.client.call('DELETE', `${path}/${NULL_WEBHOOK}`);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
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
        await create(w * 10_000 + i, labelled ? 'task' : 'plain');
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
export const profilePart: BenchPart<Env> = { name: 'profile', title: 'kube-apiserver CPU profiles: labelled vs plain pods', optIn: true, once: true, run: profileAdmission };
