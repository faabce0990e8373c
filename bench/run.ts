// make bench: every figure measured beside its floor in the same run, against a real local
// control plane on loopback, every loop bounded. Writes bench/results/latest.json and prints a
// markdown table (bench/RESULTS.md keeps a committed copy).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PolicyEngine, readPolicyDir } from '../src/policy/index.js';
import { buildRequests, type DecisionInput } from '../src/policy/request.js';
import { createApp } from '../src/webhook/index.js';
import { mutateTaskPod } from '../src/webhook/pods.js';
import { allowed, parseAdmissionReview } from '../src/webhook/admission.js';
import { silentLogger } from '../src/telemetry/logger.js';
import { Metrics } from '../src/telemetry/metrics.js';
import type { AgentTask } from '../src/api/index.js';
import { parseManifests } from '../src/kube/manifests.js';
import { ControlPlane, freePort } from '../test/harness/controlplane.js';
import { kubeAssets, repoRoot } from '../test/harness/paths.js';
import { chartDir, chartOperatorArgs, helmOk, valuesFile } from '../test/chart/helm.js';
import { BenchClient, PhaseWatcher } from './client.js';
import { percentile, round, runPool, sleep, timed } from './stats.js';
import { spawn, type ChildProcess } from 'node:child_process';

type Results = Record<string, Record<string, number | string>>;
const results: Results = {};
const root = repoRoot();
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

function typicalTask(name = 'bench', namespace = 'team-a'): AgentTask {
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name, namespace, uid: '6f0c7e2a-1111-4222-8333-444455556666' },
    spec: {
      agent: 'log-summarizer',
      intent: { objective: 'Summarize error logs for INC-1234', tools: ['kubectl-logs'], sensitivity: 'internal', permissions: [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] }] },
      ttl: '15m',
      maxPods: 1,
    },
  };
}

// ---- policy: taskgrant's evaluation vs raw statefulIsAuthorized on the same tuples -----------

async function benchPolicy(): Promise<void> {
  const dir = await readPolicyDir(join(root, 'policies'));
  const engine = new PolicyEngine({ schemaText: dir.schemaText, logger: silentLogger(), metrics: new Metrics() });
  if (engine.load(dir.sources).type !== 'loaded') throw new Error('default policies did not load');
  const input: DecisionInput = { task: typicalTask(), approved: false, recentGrants: 3, recentGrantSeconds: 2700, delegationDepth: 0 };
  const built = buildRequests(input);
  if (built.type !== 'requests') throw new Error('could not build requests');
  cedar.preparseSchema('bench-schema', dir.schemaText);
  cedar.preparsePolicySet('bench-raw', { staticPolicies: dir.sources.map((s) => s.text).join('\n') });
  const calls = built.requests.map((r) => ({
    principal: r.principal,
    action: r.action,
    resource: r.resource,
    context: built.context,
    entities: r.entities.map((e) => ({ uid: e.uid, attrs: e.attrs, parents: [] })),
    preparsedSchemaName: 'bench-schema',
    validateRequest: true,
    preparsedPolicySetId: 'bench-raw',
  }));
  const raw = () => {
    for (const call of calls) {
      const answer = cedar.statefulIsAuthorized(call as unknown as Parameters<typeof cedar.statefulIsAuthorized>[0]);
      if (answer.type !== 'success' || answer.response.decision !== 'allow') throw new Error(`raw call did not allow: ${JSON.stringify(answer)}`);
    }
  };
  const ours = () => {
    if (engine.evaluate(input).type !== 'allow') throw new Error('engine did not allow');
  };
  const rounds = 3000;
  for (let i = 0; i < 300; i += 1) {
    raw();
    ours();
  } // warm-up
  const rawSamples: number[] = [];
  const ourSamples: number[] = [];
  // Interleaved, so both see the same machine noise.
  for (let i = 0; i < rounds; i += 1) {
    let t = performance.now();
    raw();
    rawSamples.push((performance.now() - t) * 1000);
    t = performance.now();
    ours();
    ourSamples.push((performance.now() - t) * 1000);
  }
  results.policy = {
    tuples: calls.length,
    p50_us: round(percentile(ourSamples, 50), 1),
    p99_us: round(percentile(ourSamples, 99), 1),
    raw_p50_us: round(percentile(rawSamples, 50), 1),
    raw_p99_us: round(percentile(rawSamples, 99), 1),
    ratio_p50: round(percentile(ourSamples, 50) / percentile(rawSamples, 50), 2),
  };
}

// ---- admission handler, in-process ------------------------------------------------------------

async function benchAdmissionHandler(): Promise<void> {
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

// ---- the cluster part ---------------------------------------------------------------------------

interface Env {
  client: BenchClient;
  kubeconfig: string;
  operator: ChildProcess;
  operatorNs: string;
  healthPort: number;
  /** Bearer token of the grant floor's identity: the operator's RBAC, nothing more (floorIdentity). */
  floorToken: string;
}

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

/** User + system CPU time of a process so far (clock ticks are 10 ms on Linux). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return round(kb / 1024, 1);
}

// ---- the operator as it ships ---------------------------------------------------------------

const RELEASE = 'tgbench';
const FULLNAME = `${RELEASE}-taskgrant`;

async function serviceAccountToken(client: BenchClient, namespace: string, name: string): Promise<string> {
  const res = await client.must('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
  return (res.status as { token: string }).token;
}

function writeTokenKubeconfig(path: string, client: BenchClient, token: string): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'bench', cluster: { server: client.server, 'certificate-authority-data': Buffer.from(client.caPem).toString('base64') } }],
    users: [{ name: 'bench', user: { token } }],
    contexts: [{ name: 'bench', context: { cluster: 'bench', user: 'bench' } }],
    'current-context': 'bench',
  };
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
}

/**
 * `helm install` of charts/taskgrant (CRDs, webhook configurations pointing at this machine, the
 * operator's RBAC and its grantable ceiling), then a kubeconfig holding nothing but a token of the
 * chart's ServiceAccount: the operator is measured with the authorization a deployed one has.
 * With the admin identity the API server skips the RBAC escalation checks on every Role and
 * RoleBinding the operator creates, and those checks are most of a grant's time (RESULTS.md).
 */
async function installChart(client: BenchClient, adminKubeconfig: string, namespace: string, webhookPort: number, dir: string): Promise<string> {
  const values = valuesFile({ webhook: { url: `https://127.0.0.1:${webhookPort}` }, logLevel: 'warn' });
  await helmOk(['install', RELEASE, chartDir, '--namespace', namespace, '--create-namespace', '--kubeconfig', adminKubeconfig, '-f', values]);
  const path = join(dir, 'operator.kubeconfig');
  writeTokenKubeconfig(path, client, await serviceAccountToken(client, namespace, FULLNAME));
  return path;
}

/**
 * The grant floor's identity: a ServiceAccount bound to every ClusterRole the chart binds the
 * operator to, plus the floor's own objects. Its Role and RoleBinding writes pass the same RBAC
 * escalation checks as the operator's.
 */
async function floorIdentity(client: BenchClient, namespace: string): Promise<string> {
  const name = 'bench-floor';
  await client.must('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name } });
  type Binding = { roleRef: { name: string }; subjects?: Array<{ kind: string; name: string; namespace?: string }> };
  const bindings = (await client.must('GET', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings')).items as Binding[];
  const operatorRoles = bindings.filter((b) => b.subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === FULLNAME && s.namespace === namespace)).map((b) => b.roleRef.name);
  if (operatorRoles.length === 0) throw new Error(`the chart binds no ClusterRole to ${namespace}/${FULLNAME}`);
  await client.must('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
    metadata: { name: `${name}-objects` },
    rules: [
      { apiGroups: [FLOOR_GROUP], resources: ['agenttasks/status'], verbs: ['patch'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['patch'] },
    ],
  });
  for (const role of [...operatorRoles, `${name}-objects`]) {
    await client.must('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      metadata: { name: `${name}-${role}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    });
  }
  return serviceAccountToken(client, namespace, name);
}

/** The operator with the arguments the chart's Deployment passes (loopback addresses, the chart's policy files). */
async function startOperator(kubeconfig: string, operatorNs: string, webhookPort: number, dir: string): Promise<{ child: ChildProcess; healthPort: number }> {
  const healthPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...OPERATOR_NODE_FLAGS,
      ...(process.env.BENCH_OPERATOR_FLAGS ?? '').split(' ').filter(Boolean),
      join(root, 'dist/src/main.js'),
      `--kubeconfig=${kubeconfig}`,
      `--namespace=${operatorNs}`,
      `--health-port=${healthPort}`,
      ...chartOperatorArgs({ fullname: FULLNAME, webhookPort, leaseName: 'taskgrant-controller' }),
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], cwd: root, env: { ...process.env, MALLOC_ARENA_MAX: '2' } },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`operator exited: ${stderr}`);
    const ok = await fetch(`http://127.0.0.1:${healthPort}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error('operator not ready');
    await sleep(100);
  }
  writeFileSync(join(dir, 'operator.pid'), String(child.pid));
  return { child, healthPort };
}

/** The V8 flags the image and `make run` start the operator with (see Dockerfile); BENCH_OPERATOR_FLAGS adds more (e.g. --cpu-prof). */
const OPERATOR_NODE_FLAGS = ['--max-semi-space-size=4', '--wasm-num-compilation-tasks=0', '--optimize-for-size'];

const taskPath = (ns: string, name = '') => `/apis/taskgrant.io/v1alpha1/namespaces/${ns}/agenttasks${name ? `/${name}` : ''}`;
const permissions = [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] }];
const taskBody = (name: string, agent: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'taskgrant.io/v1alpha1',
  kind: 'AgentTask',
  metadata: { name },
  spec: { agent, intent: { objective: 'benchmark task', tools: ['kubectl-logs'], permissions }, ...extra },
});

async function namespace(client: BenchClient, name: string): Promise<string> {
  await client.must('POST', '/api/v1/namespaces', { metadata: { name } });
  return name;
}

/** A granted task and a pod creator for it: labelled pods go through our webhook, plain ones do not. */
async function admissionTarget(env: Env, nsName: string): Promise<(i: number, labelled: boolean) => Promise<void>> {
  const ns = await namespace(env.client, nsName);
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  await env.client.must('POST', taskPath(ns), taskBody('e2e', 'e2e-agent', { maxPods: 100 }));
  await watcher.waitFor('e2e', ['Granted']);
  watcher.stop();
  // Dry-run creates run every admission step (webhooks included) and persist nothing, so the
  // labelled and unlabelled pods are measured identically and maxPods never fills up.
  const pod = (i: number, labelled: boolean) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p-${labelled ? 'l' : 'u'}-${i}`, labels: labelled ? { 'taskgrant.io/task': 'e2e' } : { app: 'plain' } },
    spec: { containers: [{ name: 'a', image: 'registry.invalid/a:1' }] },
  });
  return async (i: number, labelled: boolean) => {
    const res = await env.client.call('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, pod(i, labelled));
    if (res.status !== 201) throw new Error(`pod create ${res.status}: ${res.body.slice(0, 200)}`);
  };
}

async function benchAdmissionE2E(env: Env): Promise<void> {
  const create = await admissionTarget(env, 'bench-admission');
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
  const connectionsBefore = await operatorMetric(env, 'taskgrant_webhook_connections_total');
  const webhookBefore = await webhookCallStats(env);
  const cpuBefore = cpuMs(env.operator.pid!);
  const c1 = await measure(1, 400);
  const webhookMiddle = await webhookCallStats(env);
  const cpuMiddle = cpuMs(env.operator.pid!);
  const c32 = await measure(32, 1280);
  const webhookAfter = await webhookCallStats(env);
  const cpuAfter = cpuMs(env.operator.pid!);
  const mean = (a: { sum: number; count: number }, b: { sum: number; count: number }) => round(((b.sum - a.sum) / Math.max(1, b.count - a.count)) * 1000);
  const connections = (await operatorMetric(env, 'taskgrant_webhook_connections_total')) - connectionsBefore;
  log(`admission: ${webhookAfter.count - webhookBefore.count} webhook calls over ${connections} new connection(s)`);
  results.admission = { ...results.admission,
    e2e_c1_p50_ms: round(percentile(c1.labelled, 50)),
    e2e_c1_baseline_p50_ms: round(percentile(c1.plain, 50)),
    e2e_c1_p50_ratio: round(percentile(c1.labelled, 50) / percentile(c1.plain, 50), 2),
    e2e_c1_p99_ratio: round(percentile(c1.labelled, 99) / percentile(c1.plain, 99), 2),
    e2e_p50_ms: round(percentile(c32.labelled, 50)),
    e2e_baseline_p50_ms: round(percentile(c32.plain, 50)),
    e2e_p50_ratio: round(percentile(c32.labelled, 50) / percentile(c32.plain, 50), 2),
    e2e_p99_ratio: round(percentile(c32.labelled, 99) / percentile(c32.plain, 99), 2),
    // As the API server sees it: the mean time of one call to our webhook, connection included.
    apiserver_webhook_c1_mean_ms: mean(webhookBefore, webhookMiddle),
    apiserver_webhook_mean_ms: mean(webhookMiddle, webhookAfter),
    // The operator's CPU time per webhook call (everything it did in the phase, over the calls).
    operator_cpu_per_call_c1_ms: round((cpuMiddle - cpuBefore) / Math.max(1, webhookMiddle.count - webhookBefore.count)),
    operator_cpu_per_call_ms: round((cpuAfter - cpuMiddle) / Math.max(1, webhookAfter.count - webhookMiddle.count)),
    webhook_connections: connections,
  };
}

/**
 * Not part of the default run (BENCH_ONLY=profile): where the CPU goes while pods are created at
 * concurrency 32, labelled and plain, as kube-apiserver CPU profiles (bench/results/apiserver-*.pb.gz,
 * read with `go tool pprof -top`) beside each phase's rate and the operator's CPU time.
 */
async function profileAdmission(env: Env): Promise<void> {
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

async function operatorMetric(env: Env, name: string): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${env.healthPort}/metrics`).then((r) => r.text());
  return Number(new RegExp(`^${name} ([0-9.e+]+)`, 'm').exec(text)?.[1] ?? 0);
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

/**
 * The grant floor's stand-in for AgentTask: the same CRD (schema, CEL rules, status subresource)
 * under a group no webhook and no controller watches, so creating one and patching its status
 * costs the API server what the task's own writes cost, with nothing acting on it.
 */
const FLOOR_GROUP = 'floor.bench.taskgrant.io';

async function installFloorCrd(client: BenchClient): Promise<void> {
  const [crd] = parseManifests(readFileSync(join(root, 'crds', 'taskgrant.io_agenttasks.yaml'), 'utf8')) as Array<{ metadata: { name: string }; spec: { group: string; names: { plural: string } } }>;
  if (!crd) throw new Error('crds/taskgrant.io_agenttasks.yaml holds no CRD');
  crd.spec.group = FLOOR_GROUP;
  crd.metadata = { name: `${crd.spec.names.plural}.${FLOOR_GROUP}` };
  await client.must('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
  for (let i = 0; i < 300; i += 1) {
    const res = await client.call('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
    const conditions = (JSON.parse(res.body) as { status?: { conditions?: Array<{ type: string; status: string }> } }).status?.conditions ?? [];
    if (conditions.some((c) => c.type === 'Established' && c.status === 'True')) return;
    await sleep(100);
  }
  throw new Error(`${crd.metadata.name} was not established`);
}

/** A Granted status of the shape and size the operator writes (three conditions, decision, grant). */
function grantedStatus(name: string, namespace: string): Record<string, unknown> {
  const now = new Date().toISOString();
  const until = new Date(Date.now() + 900_000).toISOString();
  const message = `Granted 4 permission(s) in ${namespace} to ServiceAccount ${name} until ${until}.`;
  const condition = (type: string, status: string, reason: string, text: string) => ({ type, status, reason, message: text, lastTransitionTime: now });
  return {
    phase: 'Granted',
    reason: 'PolicyAllowed',
    message,
    observedGeneration: 1,
    conditions: [condition('Ready', 'True', 'PolicyAllowed', message), condition('PolicyAllowed', 'True', 'PolicyAllowed', message), condition('Revoked', 'False', 'NotRevoked', 'The grant has not been revoked.')],
    decision: { allowed: true, determiningPolicies: ['permit-read-own-namespace'], errors: [], evaluatedAt: now, policyRevision: '875c418b065c' },
    grant: { serviceAccount: name, role: name, roleBinding: name, namespaces: [namespace], issuedAt: now, expiresAt: until, pods: [] },
  };
}

async function benchGrant(env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-grant');
  const base = await namespace(env.client, 'bench-baseline');
  await installFloorCrd(env.client);
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const n = 60;
  const ours = async (i: number) => {
    await env.client.must('POST', taskPath(ns), taskBody(`g-${i}`, `grant-agent-${i}`));
    await watcher.waitFor(`g-${i}`, ['Granted']);
  };
  // The floor: the API writes a grant consists of, made directly one after another by a script
  // with no webhook, no policy, no queue and no watch: the task object (created as the admin, like
  // ours), then, with an identity holding the operator's RBAC, a ServiceAccount, a Role, a
  // RoleBinding and the Granted status patch. The task object is an AgentTask of the floor CRD
  // (the same schema, nothing acts on it). `objectKind` 'ConfigMap' is the floor used before (a
  // ConfigMap for the task), kept as a second figure: a CRD object costs the API server more.
  const baseline = async (i: number, objectKind: 'AgentTask' | 'ConfigMap') => {
    const name = `${objectKind === 'AgentTask' ? 'b' : 'c'}-${i}`;
    const floorPath = `/apis/${FLOOR_GROUP}/v1alpha1/namespaces/${base}/agenttasks`;
    if (objectKind === 'AgentTask') await env.client.must('POST', floorPath, { ...taskBody(name, `floor-agent-${i}`), apiVersion: `${FLOOR_GROUP}/v1alpha1` });
    else await env.client.must('POST', `/api/v1/namespaces/${base}/configmaps`, { metadata: { name }, data: { objective: 'benchmark task' } });
    const token = env.floorToken;
    await env.client.must('POST', `/api/v1/namespaces/${base}/serviceaccounts`, { metadata: { name }, automountServiceAccountToken: false }, undefined, token);
    await env.client.must('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${base}/roles`, { metadata: { name }, rules: permissions }, undefined, token);
    const binding = { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace: base }] };
    await env.client.must('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${base}/rolebindings`, binding, undefined, token);
    const merge = 'application/merge-patch+json';
    if (objectKind === 'AgentTask') await env.client.must('PATCH', `${floorPath}/${name}/status`, { status: grantedStatus(name, base) }, merge, token);
    else await env.client.must('PATCH', `/api/v1/namespaces/${base}/configmaps/${name}`, { data: { phase: 'Granted' } }, merge, token);
  };
  await timed(10, 1, (i) => ours(1000 + i));
  await timed(10, 1, (i) => baseline(1000 + i, 'AgentTask'));
  await timed(10, 1, (i) => baseline(1000 + i, 'ConfigMap'));
  const policyBefore = [await operatorMetric(env, 'taskgrant_policy_evaluation_seconds_sum'), await operatorMetric(env, 'taskgrant_policy_evaluation_seconds_count')];
  const ourSamples: number[] = [];
  const baseSamples: number[] = [];
  const configMapSamples: number[] = [];
  // Interleaved, so all three see the same machine noise.
  for (let i = 0; i < n; i += 1) {
    ourSamples.push(...(await timed(1, 1, () => ours(i))));
    baseSamples.push(...(await timed(1, 1, () => baseline(i, 'AgentTask'))));
    configMapSamples.push(...(await timed(1, 1, () => baseline(i, 'ConfigMap'))));
  }
  watcher.stop();
  const policyAfter = [await operatorMetric(env, 'taskgrant_policy_evaluation_seconds_sum'), await operatorMetric(env, 'taskgrant_policy_evaluation_seconds_count')];
  results.grant = {
    ...results.grant,
    n,
    // Inside the operator, one decision at a time (caches cold between tasks), as its own histogram saw it.
    operator_policy_mean_ms: round(((policyAfter[0]! - policyBefore[0]!) / Math.max(1, policyAfter[1]! - policyBefore[1]!)) * 1000),
    p50_ms: round(percentile(ourSamples, 50)),
    p99_ms: round(percentile(ourSamples, 99)),
    baseline_p50_ms: round(percentile(baseSamples, 50)),
    baseline_p99_ms: round(percentile(baseSamples, 99)),
    ratio_p50: round(percentile(ourSamples, 50) / percentile(baseSamples, 50), 2),
    configmap_baseline_p50_ms: round(percentile(configMapSamples, 50)),
    configmap_ratio_p50: round(percentile(ourSamples, 50) / percentile(configMapSamples, 50), 2),
  };
}

async function benchBurst(env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-burst');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const n = 500;
  const names = Array.from({ length: n }, (_, i) => `burst-${i}`);
  const start = performance.now();
  const granted = names.map((name) => watcher.waitFor(name, ['Granted'], 120_000));
  await runPool(names, 64, async (name, i) => void (await env.client.must('POST', taskPath(ns), taskBody(name, `burst-agent-${i}`))));
  const times = await Promise.all(granted);
  const elapsed = (Math.max(...times) - start) / 1000;
  watcher.stop();
  results.grant = { ...results.grant, burst_n: n, burst_seconds: round(elapsed, 2), burst_per_s: round(n / elapsed, 1) };
}

async function mintPodToken(env: Env, ns: string, sa: string, pod: { metadata: { name: string; uid: string } }): Promise<string> {
  const res = await env.client.must('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: 600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid } },
  });
  return (res.status as { token: string }).token;
}

/**
 * Waits until the API server rejects the task's token. A token must never be reviewed twice:
 * kube-apiserver caches a successful authentication for 10 s, and its ServiceAccount lister can
 * trail the deletion by a moment, so a review in that moment would pin the old answer. Each
 * review therefore spends a fresh token of the same pod; the first one refused marks the time.
 */
async function waitRejected(env: Env, ns: string, sa: string, tokens: string[]): Promise<number> {
  for (;;) {
    const res = await env.client.call('GET', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}`);
    if (res.status === 404) break;
    await sleep(2);
  }
  for (const token of tokens) {
    const review = await env.client.must('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });
    if ((review.status as { authenticated?: boolean }).authenticated !== true) return performance.now();
    await sleep(5);
  }
  throw new Error('every token still authenticates after the ServiceAccount was deleted');
}

async function grantWithPod(env: Env, watcher: PhaseWatcher, ns: string, name: string, extra: Record<string, unknown> = {}) {
  const task = await env.client.must('POST', taskPath(ns), taskBody(name, `${name}-agent`, extra));
  await watcher.waitFor(name, ['Granted']);
  const current = await env.client.must('GET', taskPath(ns, name));
  const sa = (current.status as { grant: { serviceAccount: string; expiresAt: string } }).grant;
  const pod = (await env.client.must('POST', `/api/v1/namespaces/${ns}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${name}-pod`, labels: { 'taskgrant.io/task': name } },
    spec: { containers: [{ name: 'a', image: 'registry.invalid/a:1' }] },
  })) as { metadata: { name: string; uid: string } };
  const tokens = await Promise.all(Array.from({ length: 12 }, () => mintPodToken(env, ns, sa.serviceAccount, pod)));
  return { task, sa: sa.serviceAccount, expiresAt: Date.parse(sa.expiresAt), pod, tokens };
}

async function benchRevokePod(env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-revoke');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const samples: number[] = [];
  for (let i = 0; i < 40; i += 1) {
    const g = await grantWithPod(env, watcher, ns, `rp-${i}`);
    await watcher.waitFor(`rp-${i}`, ['Active']);
    const start = performance.now();
    await env.client.must('PATCH', `/api/v1/namespaces/${ns}/pods/${g.pod.metadata.name}/status`, { status: { phase: 'Succeeded' } }, 'application/merge-patch+json');
    samples.push((await waitRejected(env, ns, g.sa, g.tokens)) - start);
  }
  watcher.stop();
  results.revoke = { ...results.revoke, pod_n: samples.length, pod_p50_ms: round(percentile(samples, 50)), pod_p99_ms: round(percentile(samples, 99)) };
}

async function benchRevokeTtl(env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-ttl');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const grants = [];
  for (let i = 0; i < 20; i += 1) grants.push(await grantWithPod(env, watcher, ns, `ttl-${i}`, { ttl: '12s' }));
  // Wall clock to performance clock, for comparing with expiresAt.
  const offset = Date.now() - performance.now();
  const samples = await Promise.all(grants.map(async (g) => (await waitRejected(env, ns, g.sa, g.tokens)) + offset - g.expiresAt));
  watcher.stop();
  results.revoke = { ...results.revoke, ttl_n: samples.length, ttl_p50_ms: round(percentile(samples, 50)), ttl_p99_ms: round(percentile(samples, 99)) };
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

async function benchMemory(env: Env, idleMb: number): Promise<void> {
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
  const cycles = 5000;
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
  results.memory = { idle_mb: idleMb, tasks: live, loaded_mb: loadedMb, ...profile, churn_cycles: cycles, churn_warm_mb: warmMb, churn_end_mb: endMb, churn_ratio: round(endMb / warmMb, 2) };
}

// ---- report -------------------------------------------------------------------------------------

const goals: Array<[string, string, (v: number) => boolean, string]> = [
  ['policy', 'ratio_p50', (v) => v <= 1.5, '<= 1.5'],
  ['admission', 'handler_p99_ms', (v) => v <= 5, '<= 5 ms'],
  ['admission', 'e2e_p50_ratio', (v) => v <= 1.2, '<= 1.2'],
  ['grant', 'ratio_p50', (v) => v <= 1.5, '<= 1.5'],
  ['grant', 'burst_per_s', (v) => v >= 50, '>= 50/s'],
  ['revoke', 'pod_p99_ms', (v) => v <= 1000, '<= 1000 ms'],
  ['revoke', 'ttl_p99_ms', (v) => v <= 1000, '<= 1000 ms'],
  ['memory', 'loaded_mb', (v) => v <= 200, '<= 200 MB'],
  ['memory', 'churn_ratio', (v) => v <= 1.1, '<= 1.1'],
];

function table(machine: string): string {
  const lines = [`Machine: ${machine}`, '', '| key | value | goal | met |', '|---|---|---|---|'];
  for (const [section, values] of Object.entries(results)) {
    if (section === 'machine') continue;
    for (const [key, value] of Object.entries(values)) {
      const goal = goals.find(([s, k]) => s === section && k === key);
      const met = goal && typeof value === 'number' ? (goal[2](value) ? 'yes' : '**no**') : '';
      lines.push(`| \`${section}.${key}\` | ${value} | ${goal?.[3] ?? ''} | ${met} |`);
    }
  }
  return lines.join('\n');
}

/** BENCH_ONLY=admission,grant runs just those parts (for working on one figure); unset runs all. */
const only = new Set((process.env.BENCH_ONLY ?? '').split(',').filter(Boolean));
async function part(name: string, title: string, run: () => Promise<void>): Promise<void> {
  if (only.size > 0 && !only.has(name)) return;
  log(title);
  await run();
}

async function main(): Promise<void> {
  const started = Date.now();
  const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`;
  results.machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version };
  await part('policy', 'policy evaluation', () => benchPolicy());
  await part('handler', 'admission handler (in-process)', () => benchAdmissionHandler());

  const dir = mkdtempSync(join(tmpdir(), 'taskgrant-bench-'));
  const plane = new ControlPlane({ dir, assets: kubeAssets(), mode: 'tethered', profiling: only.has('profile') });
  let operator: ChildProcess | undefined;
  try {
    const info = await plane.start();
    const client = new BenchClient(info.kubeconfigPath);
    const operatorNs = 'taskgrant-bench';
    const webhookPort = await freePort();
    const operatorKubeconfig = await installChart(client, info.kubeconfigPath, operatorNs, webhookPort, dir);
    const floorToken = await floorIdentity(client, operatorNs);
    const started = await startOperator(operatorKubeconfig, operatorNs, webhookPort, dir);
    operator = started.child;
    const env: Env = { client, kubeconfig: info.kubeconfigPath, operator, operatorNs, healthPort: started.healthPort, floorToken };
    await sleep(3000);
    const idleMb = rssMb(operator.pid!);
    log(`operator idle: ${idleMb} MB`);
    await part('admission', 'admission end to end', () => benchAdmissionE2E(env));
    if (only.has('profile')) await part('profile', 'kube-apiserver CPU profiles: labelled vs plain pods', () => profileAdmission(env));
    await part('grant', 'grant latency vs baseline', () => benchGrant(env));
    await part('burst', 'burst of 500 tasks', () => benchBurst(env));
    await part('revoke', 'revocation on pod success', () => benchRevokePod(env));
    await part('ttl', 'revocation on TTL', () => benchRevokeTtl(env));
    await part('memory', 'memory: 2000 live tasks, then 5000 create/revoke cycles', () => benchMemory(env, idleMb));
    client.close();
  } finally {
    if (operator && operator.exitCode === null) {
      // Waited for, so a profile asked for with BENCH_OPERATOR_FLAGS is written before we go.
      const exited = new Promise((resolve) => operator!.once('exit', resolve));
      operator.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
    }
    await plane.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  results.machine.duration_s = Math.round((Date.now() - started) / 1000);
  const out = join(root, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  // A partial run (BENCH_ONLY) never stands in for the full one.
  const stem = only.size === 0 ? 'latest' : 'partial';
  writeFileSync(join(out, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
  const md = table(machine);
  writeFileSync(join(out, `${stem}.md`), `${md}\n`);
  process.stdout.write(`${md}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
