// The cluster the cluster parts share, set up once by main: the chart helm-installed, the operator
// started as it ships, the grant floor's identity and CRD. Plus the probes that read the operator
// (its /proc entry, its /metrics) while it is measured.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { parseManifests } from '../src/kube/manifests.js';
import { authzFiles, freePort, webhookClientFiles } from '../test/harness/controlplane.js';
import { chartDir, chartOperatorArgs, helmOk, valuesFile } from '../test/chart/helm.js';
import type { BenchClient } from './client.js';
import { round, sleep } from './stats.js';

export interface Env {
  client: BenchClient;
  kubeconfig: string;
  /** The operator process; a part that restarts it (scale) puts the new one here. */
  operator: ChildProcess;
  /** How it was started, for starting it again. */
  launch: OperatorLaunch;
  operatorNs: string;
  healthPort: number;
  /** Bearer token of the grant floor's identity: the operator's RBAC, nothing more (floorIdentity). */
  floorToken: string;
  /** The operator's resident memory once started, before any part ran. */
  idleMb: number;
  /** Where the webhook configurations point (the operator on loopback). */
  webhookPort: number;
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
export async function installChart(client: BenchClient, adminKubeconfig: string, namespace: string, webhookPort: number, dir: string): Promise<string> {
  await helmOk(['install', RELEASE, chartDir, '--namespace', namespace, '--create-namespace', '--kubeconfig', adminKubeconfig, '-f', chartValues(webhookPort, 'policy')]);
  const path = join(dir, 'operator.kubeconfig');
  writeTokenKubeconfig(path, client, await serviceAccountToken(client, namespace, FULLNAME));
  return path;
}

function chartValues(webhookPort: number, admissionMode: 'policy' | 'webhook'): string {
  return valuesFile({ webhook: { url: `https://127.0.0.1:${webhookPort}` }, logLevel: 'warn', admissionMode });
}

/**
 * Switches the release's admission mode (`helm upgrade`), for measuring the webhook path beside
 * the policy path the chart ships. Pod webhooks added by the upgrade get the caBundle the
 * operator keeps on the others (it writes it when its certificate changes, not on every upgrade);
 * waits until the API server enforces the mode: a dry-run pod of no task is refused by it.
 */
export async function setAdmissionMode(env: Env, mode: 'policy' | 'webhook'): Promise<void> {
  await helmOk(['upgrade', RELEASE, chartDir, '--namespace', env.operatorNs, '--kubeconfig', env.kubeconfig, '-f', chartValues(env.webhookPort, mode)]);
  const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${FULLNAME}`;
  const config = (await env.client.must('GET', path)) as { webhooks: Array<{ clientConfig: { caBundle?: string } }> };
  const caBundle = config.webhooks.find((w) => w.clientConfig.caBundle)?.clientConfig.caBundle;
  const ops = config.webhooks.flatMap((w, i) => (w.clientConfig.caBundle ? [] : [{ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle }]));
  if (ops.length > 0) await env.client.must('PATCH', path, ops, 'application/json-patch+json');
  const ns = `bench-mode-${mode}`;
  await env.client.call('POST', '/api/v1/namespaces', { metadata: { name: ns } });
  // Who refuses a pod of no task: the pod guard policy, or the operator's webhook.
  const refusal = mode === 'policy' ? /ValidatingAdmissionPolicy.*has no live grant/ : /admission webhook.*no-such-task/;
  for (let i = 0; i < 300; i += 1) {
    const res = await env.client.call('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, {
      metadata: { name: 'mode-probe', labels: { 'taskgrant.io/task': 'no-such-task' } },
      spec: { containers: [{ name: 'c', image: 'registry.invalid/probe:1' }] },
    });
    if (res.status >= 400 && refusal.test(res.body)) return;
    await sleep(100);
  }
  throw new Error(`admission mode ${mode} was not enforced within 30 s`);
}

/**
 * The grant floor's identity: a ServiceAccount bound to every ClusterRole the chart binds the
 * operator to, plus the floor's own objects. Its Role and RoleBinding writes pass the same RBAC
 * escalation checks as the operator's.
 */
export async function floorIdentity(client: BenchClient, namespace: string): Promise<string> {
  const name = 'bench-floor';
  await client.must('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name } });
  type Binding = { roleRef: { name: string }; subjects?: Array<{ kind: string; name: string; namespace?: string }> };
  const bindings = (await client.must('GET', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings')).items as Binding[];
  const operatorRoles = bindings.filter((b) => b.subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === FULLNAME && s.namespace === namespace)).map((b) => b.roleRef.name);
  if (operatorRoles.length === 0) throw new Error(`the chart binds no ClusterRole to ${namespace}/${FULLNAME}`);
  await client.must('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
    metadata: { name: `${name}-objects` },
    rules: [
      { apiGroups: [FLOOR_GROUP], resources: ['agenttasks', 'agenttasks/status'], verbs: ['patch'] },
      // The ledger (the operator's lives in its own namespace, the floor's beside its tasks) and the audit Event.
      { apiGroups: [''], resources: ['configmaps', 'events'], verbs: ['create', 'patch'] },
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

export interface OperatorLaunch {
  root: string;
  /** Node flags before the script (run.ts's OPERATOR_NODE_FLAGS). */
  nodeFlags: readonly string[];
  kubeconfig: string;
  operatorNs: string;
  webhookPort: number;
  dir: string;
  /** The control plane's directory: its API server asks the authorizer through a relay whose target is written there. */
  clusterDir: string;
}

/**
 * The operator with the arguments the chart's Deployment passes (loopback addresses, the chart's
 * policy files) with the request-time authorizer on (authorization.enabled), as `make run` does.
 */
export async function startOperator({ root, nodeFlags, kubeconfig, operatorNs, webhookPort, dir, clusterDir }: OperatorLaunch): Promise<{ child: ChildProcess; healthPort: number }> {
  const healthPort = await freePort();
  const authzPort = await freePort();
  const authz = authzFiles(clusterDir);
  const child = spawn(
    process.execPath,
    [
      ...nodeFlags,
      ...(process.env.BENCH_OPERATOR_FLAGS ?? '').split(' ').filter(Boolean),
      join(root, 'dist/src/main.js'),
      `--kubeconfig=${kubeconfig}`,
      `--namespace=${operatorNs}`,
      `--health-port=${healthPort}`,
      ...chartOperatorArgs({ fullname: FULLNAME, webhookPort, leaseName: 'taskgrant-controller' }),
      '--authorizer',
      `--authz-port=${authzPort}`,
      `--authz-tls-dir=${authz.tlsDir}`,
      `--webhook-client-ca=${webhookClientFiles(clusterDir).webhookClientCa}`,
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
  writeFileSync(authz.target, `127.0.0.1:${authzPort}`);
  return { child, healthPort };
}

/**
 * Creates the pod of a granted task (labelled with it, so the admission policies give it the
 * task's identity). The policies read the live task from the API server's own cache, a moment
 * behind the label: a pod refused in that moment is created again.
 */
export async function createTaskPod(env: Env, ns: string, task: string): Promise<{ metadata: { name: string; uid: string } }> {
  const body = { metadata: { name: `${task}-pod`, labels: { 'taskgrant.io/task': task } }, spec: { containers: [{ name: 'a', image: 'registry.invalid/a:1' }] } };
  for (let attempt = 0; ; attempt += 1) {
    const res = await env.client.call('POST', `/api/v1/namespaces/${ns}/pods`, body);
    if (res.status === 201) return JSON.parse(res.body) as { metadata: { name: string; uid: string } };
    if (attempt >= 100) throw new Error(`task pod of ${task}: ${res.status} ${res.body.slice(0, 300)}`);
    await sleep(50);
  }
}

/** A new namespace named `name`, or `name-2`, `name-3`... when a part runs again. */
export async function namespace(client: BenchClient, name: string): Promise<string> {
  for (let n = 1; n <= 10; n += 1) {
    const candidate = n === 1 ? name : `${name}-${n}`;
    const res = await client.call('POST', '/api/v1/namespaces', { metadata: { name: candidate } });
    if (res.status === 201) return candidate;
    if (res.status !== 409) throw new Error(`creating namespace ${candidate}: ${res.status} ${res.body.slice(0, 300)}`);
  }
  throw new Error(`namespaces ${name} to ${name}-10 all exist`);
}

// ---- the grant floor ----------------------------------------------------------------------------

/**
 * The grant floor's stand-in for AgentTask: the same CRD (schema, CEL rules, status subresource)
 * under a group no webhook and no controller watches, so creating one and patching its status
 * costs the API server what the task's own writes cost, with nothing acting on it.
 */
export const FLOOR_GROUP = 'floor.bench.taskgrant.io';

export async function installFloorCrd(client: BenchClient, root: string): Promise<void> {
  const [crd] = parseManifests(readFileSync(join(root, 'crds', 'taskgrant.io_agenttasks.yaml'), 'utf8')) as Array<{ metadata: { name: string }; spec: { group: string; names: { plural: string } } }>;
  if (!crd) throw new Error('crds/taskgrant.io_agenttasks.yaml holds no CRD');
  crd.spec.group = FLOOR_GROUP;
  crd.metadata = { name: `${crd.spec.names.plural}.${FLOOR_GROUP}` };
  // Installed once, by whichever part needs it first.
  const created = await client.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
  if (created.status !== 201 && created.status !== 409) throw new Error(`floor CRD: ${created.status} ${created.body.slice(0, 300)}`);
  for (let i = 0; i < 300; i += 1) {
    const res = await client.call('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
    const conditions = (JSON.parse(res.body) as { status?: { conditions?: Array<{ type: string; status: string }> } }).status?.conditions ?? [];
    if (conditions.some((c) => c.type === 'Established' && c.status === 'True')) return;
    await sleep(100);
  }
  throw new Error(`${crd.metadata.name} was not established`);
}

// ---- reading the operator -----------------------------------------------------------------------

/** User + system CPU time of a process so far (clock ticks are 10 ms on Linux). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return round(kb / 1024, 1);
}

export async function operatorMetric(env: Env, name: string): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${env.healthPort}/metrics`).then((r) => r.text());
  return Number(new RegExp(`^${name} ([0-9.e+]+)`, 'm').exec(text)?.[1] ?? 0);
}
