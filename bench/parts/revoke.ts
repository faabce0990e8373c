// Revocation: how long after its end (the pod succeeded, the TTL ran out) a task's token stops
// working, measured by spending the token.
import { PhaseWatcher } from '../client.js';
import { namespace, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, round, sleep } from '../stats.js';
import { taskBody, taskPath } from '../tasks.js';

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

async function benchRevokePod({ results }: BenchContext, env: Env): Promise<void> {
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

async function benchRevokeTtl({ results }: BenchContext, env: Env): Promise<void> {
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

export const revokePart: BenchPart<Env> = { name: 'revoke', title: 'revocation on pod success', run: benchRevokePod };
export const ttlPart: BenchPart<Env> = { name: 'ttl', title: 'revocation on TTL', run: benchRevokeTtl };
