// The admission peer: Kyverno's admission controller (built from the Go module proxy by
// `hack/toolchain.sh kyverno`), run outside the cluster on loopback as its `-serverIP` mode allows,
// with one ClusterPolicy making the patch our webhook makes. Its pods, ours, the null webhook's and
// plain ones are created in turns at concurrency 32, with the release in webhook mode.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifests } from '../../src/kube/manifests.js';
import { freePort } from '../../test/harness/controlplane.js';
import { setAdmissionMode, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, round, sleep } from '../stats.js';
import { admissionTarget, benchPodPatch, measureKinds, nullWebhook, POD_LABELS, type CreatePod } from './admission.js';

const KYVERNO_NS = 'kyverno';
const POLICY = 'bench-identity-patch';
/** Kyverno labels the webhook configurations it registers with this. */
const MANAGED_BY = 'webhook.kyverno.io/managed-by=kyverno';

function kyvernoDir(): string {
  const dir = process.env.TASKGRANT_KYVERNO;
  if (!dir) throw new Error('TASKGRANT_KYVERNO is unset: run `make bench` (it builds Kyverno with hack/toolchain.sh kyverno)');
  return dir;
}

/** Its CRDs (created, not applied: some are larger than an apply's annotation allows), once per cluster. */
async function installCrds(env: Env): Promise<void> {
  const dir = join(kyvernoDir(), 'crds');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    for (const crd of parseManifests(readFileSync(join(dir, file), 'utf8'))) {
      const res = await env.client.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      if (res.status !== 201 && res.status !== 409) throw new Error(`Kyverno CRD ${file}: ${res.status} ${res.body.slice(0, 200)}`);
    }
  }
  for (const name of ['clusterpolicies.kyverno.io', 'updaterequests.kyverno.io', 'policyexceptions.kyverno.io']) {
    for (let i = 0; ; i += 1) {
      const crd = (await env.client.must('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`)) as { status?: { conditions?: Array<{ type: string; status: string }> } };
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (i > 300) throw new Error(`Kyverno CRD ${name} not established within 30 s`);
      await sleep(100);
    }
  }
}

/** Kyverno's configuration: its webhooks see only the pods labelled for it, nothing else of the bench. */
async function configure(env: Env): Promise<void> {
  await env.client.call('POST', '/api/v1/namespaces', { metadata: { name: KYVERNO_NS } });
  const data = { webhooks: JSON.stringify({ objectSelector: { matchLabels: POD_LABELS.kyverno } }), generateSuccessEvents: 'false' };
  const res = await env.client.call('POST', `/api/v1/namespaces/${KYVERNO_NS}/configmaps`, { metadata: { name: 'kyverno' }, data });
  if (res.status === 409) await env.client.must('PATCH', `/api/v1/namespaces/${KYVERNO_NS}/configmaps/kyverno`, { data }, 'application/merge-patch+json');
  else if (res.status !== 201) throw new Error(`Kyverno ConfigMap: ${res.status} ${res.body.slice(0, 200)}`);
}

async function startKyverno(env: Env, log: (msg: string) => void): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(
    join(kyvernoDir(), 'kyverno'),
    [
      `--kubeconfig=${env.kubeconfig}`,
      `--serverIP=127.0.0.1:${port}`,
      '--webhookServerHost=127.0.0.1',
      `--webhookServerPort=${port}`,
      // Every listener on loopback, none on the machine's interfaces.
      '--metricsHost=127.0.0.1',
      `--metricsPort=${await freePort()}`,
      '--disableMetrics=true',
      `--controllerRuntimeMetricsAddress=127.0.0.1:${await freePort()}`,
      '--admissionReports=false',
      // As its chart names them; it makes and renews both itself.
      `--caSecretName=kyverno-svc.${KYVERNO_NS}.svc.kyverno-tls-ca`,
      `--tlsSecretName=kyverno-svc.${KYVERNO_NS}.svc.kyverno-tls-pair`,
      '--v=1',
    ],
    {
      env: { ...process.env, KYVERNO_NAMESPACE: KYVERNO_NS, KYVERNO_SERVICEACCOUNT_NAME: 'kyverno', KYVERNO_DEPLOYMENT: 'kyverno', KYVERNO_POD_NAME: 'kyverno-bench', INIT_CONFIG: 'kyverno', METRICS_CONFIG: 'kyverno-metrics' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // It leaves its webhook configurations behind when stopped outside a cluster; the parts after
    // this one must not pass through them.
    for (const kind of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations']) {
      const path = `/apis/admissionregistration.k8s.io/v1/${kind}?labelSelector=${encodeURIComponent(MANAGED_BY)}`;
      await env.client.call('DELETE', path);
      const left = ((await env.client.must('GET', path)).items as unknown[]).length;
      if (left > 0) throw new Error(`${left} of Kyverno's ${kind} left after it stopped`);
    }
  };
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) log(`kyverno exited ${code}: ${stderr.slice(-1000)}`);
  });
  return { child, stop };
}

/** The ClusterPolicy: pods labelled for Kyverno get our patch, as JSON Patch (RFC 6902). */
async function createPolicy(env: Env): Promise<void> {
  const patch = await benchPodPatch();
  const policy = {
    apiVersion: 'kyverno.io/v1',
    kind: 'ClusterPolicy',
    metadata: { name: POLICY },
    spec: {
      background: false,
      rules: [
        {
          name: 'identity',
          match: { any: [{ resources: { kinds: ['Pod'], operations: ['CREATE'], selector: { matchLabels: POD_LABELS.kyverno } } }] },
          mutate: { patchesJson6902: JSON.stringify(patch) },
        },
      ],
    },
  };
  const res = await env.client.call('POST', '/apis/kyverno.io/v1/clusterpolicies', policy);
  if (res.status !== 201 && res.status !== 409) throw new Error(`Kyverno ClusterPolicy: ${res.status} ${res.body.slice(0, 300)}`);
}

/** Until Kyverno patches its pods (its webhook registered, its policy cached): about 20 s. */
async function waitPatched(create: CreatePod, child: ChildProcess): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 900; i += 1) {
    if (child.exitCode !== null) throw new Error(`kyverno exited ${child.exitCode} before it patched a pod`);
    try {
      return await create(900_000 + i, 'kyverno');
    } catch (err) {
      last = err;
      await sleep(200);
    }
  }
  throw new Error(`Kyverno did not patch a pod within 180 s: ${String(last)}`);
}

async function benchKyverno({ results, keep, log }: BenchContext, env: Env): Promise<void> {
  await installCrds(env);
  await configure(env);
  await setAdmissionMode(env, 'webhook');
  const floor = await nullWebhook(env);
  const kyverno = await startKyverno(env, log);
  try {
    await createPolicy(env);
    const create = await admissionTarget(env, 'bench-kyverno');
    await waitPatched(create, kyverno.child);
    const c32 = await measureKinds(create, ['task', 'kyverno', 'null', 'plain'], 32, 640);
    const [ours, peer, floorSamples, plain] = [c32.task ?? [], c32.kyverno ?? [], c32.null ?? [], c32.plain ?? []];
    keep('kyverno.c32_task', ours);
    keep('kyverno.c32_kyverno', peer);
    keep('kyverno.c32_null', floorSamples);
    results.kyverno = {
      n: peer.length,
      kyverno_p50_ms: round(percentile(peer, 50)),
      kyverno_p99_ms: round(percentile(peer, 99)),
      ours_p50_ms: round(percentile(ours, 50)),
      ours_p99_ms: round(percentile(ours, 99)),
      null_p50_ms: round(percentile(floorSamples, 50)),
      plain_p50_ms: round(percentile(plain, 50)),
      // Over the same floor: what each one's logic adds to a pod's admission.
      kyverno_null_p50_ratio: round(percentile(peer, 50) / percentile(floorSamples, 50), 2),
      ours_null_p50_ratio: round(percentile(ours, 50) / percentile(floorSamples, 50), 2),
      ours_kyverno_p50_ratio: round(percentile(ours, 50) / percentile(peer, 50), 2),
      ours_kyverno_p99_ratio: round(percentile(ours, 99) / percentile(peer, 99), 2),
    };
  } finally {
    await kyverno.stop();
    await env.client.call('DELETE', `/apis/kyverno.io/v1/clusterpolicies/${POLICY}`);
    await floor.close();
    await setAdmissionMode(env, 'policy');
  }
}

export const kyvernoPart: BenchPart<Env> = { name: 'kyverno', title: "peer: Kyverno's pod mutation beside ours and the null webhook", run: benchKyverno };
