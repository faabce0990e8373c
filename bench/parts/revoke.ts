// Revocation: how long after its end (the pod succeeded, the TTL ran out) a task's token stops
// working, measured by spending fresh tokens that were never presented before (so no
// authentication is cached): the unused-token figures. parts/authz.ts measures a token in use.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { authzFiles } from '../../test/harness/controlplane.js';
import { timeToRefusal } from '../agent.js';
import { PhaseWatcher } from '../client.js';
import { createTaskPod, namespace, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, prepare, round, runPool, sleep } from '../stats.js';
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
  const pod = await createTaskPod(env, ns, name);
  const tokens = await Promise.all(Array.from({ length: 12 }, () => mintPodToken(env, ns, sa.serviceAccount, pod)));
  return { task, sa: sa.serviceAccount, expiresAt: Date.parse(sa.expiresAt), pod, tokens };
}

async function benchRevokePod({ results, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-revoke');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const samples: number[] = [];
  const grants = await prepare(100, async (i) => {
    const g = await grantWithPod(env, watcher, ns, `rp-${i}`);
    await watcher.waitFor(`rp-${i}`, ['Active']);
    return g;
  });
  for (const g of grants) {
    const start = performance.now();
    await env.client.must('PATCH', `/api/v1/namespaces/${ns}/pods/${g.pod.metadata.name}/status`, { status: { phase: 'Succeeded' } }, 'application/merge-patch+json');
    samples.push((await waitRejected(env, ns, g.sa, g.tokens)) - start);
  }
  watcher.stop();
  keep('revoke.unused_token_pod', samples);
  results.revoke = { ...results.revoke, unused_token_pod_n: samples.length, unused_token_pod_p50_ms: round(percentile(samples, 50)), unused_token_pod_p99_ms: round(percentile(samples, 99)) };
}

async function benchRevokeTtl({ results, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-ttl');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  // 100 grants take about 8 s to make, eight at a time: every one must still be live when the
  // last is made (one that was not would show as a late revocation, never hide one).
  const grants = await prepare(100, (i) => grantWithPod(env, watcher, ns, `ttl-${i}`, { ttl: '20s' }));
  // Wall clock to performance clock, for comparing with expiresAt.
  const offset = Date.now() - performance.now();
  const samples = await Promise.all(grants.map(async (g) => (await waitRejected(env, ns, g.sa, g.tokens)) + offset - g.expiresAt));
  watcher.stop();
  keep('revoke.unused_token_ttl', samples);
  results.revoke = { ...results.revoke, unused_token_ttl_n: samples.length, unused_token_ttl_p50_ms: round(percentile(samples, 50)), unused_token_ttl_p99_ms: round(percentile(samples, 99)) };
}

/**
 * Pod-end revocations while a burst of 2,000 grants is in flight: the trigger (the pod's end
 * committed) to the task ended, as a watch reports it — and, beside it, to its RoleBinding gone
 * (access ended), as a watch of the bindings reports it. Revocations take a lane of their own
 * ahead of grants, so they must not wait behind the burst.
 */
async function benchRevokeDuringBurst({ results, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-burst-revoke');
  const burstNs = await namespace(env.client, 'bench-burst-grants');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  const bindings = new PhaseWatcher(env.kubeconfig, ns, 'rolebindings');
  const burstWatcher = new PhaseWatcher(env.kubeconfig, burstNs);
  await Promise.all([watcher.start(), bindings.start(), burstWatcher.start()]);
  const n = 100;
  const grants = await prepare(n, async (i) => {
    const name = `br-${i}`;
    await env.client.must('POST', taskPath(ns), taskBody(name, `${name}-agent`));
    await watcher.waitFor(name, ['Granted']);
    const pod = await createTaskPod(env, ns, name);
    await watcher.waitFor(name, ['Active']);
    const binding = ((await env.client.must('GET', taskPath(ns, name))).status as { grant: { roleBinding: string } }).grant.roleBinding;
    await bindings.waitFor(binding, ['Present']);
    return { pod: pod.metadata.name, binding };
  });
  const burst = Array.from({ length: 2000 }, (_, i) => `bg-${i}`);
  const burstGranted = burst.map((name) => burstWatcher.waitFor(name, ['Granted'], 600_000));
  let created = 0;
  const load = runPool(burst, 64, async (name, i) => {
    await env.client.must('POST', taskPath(burstNs), taskBody(name, `burst-grant-agent-${i % 400}`));
    created += 1;
  });
  while (created < 200) await sleep(20);
  // One pod end every 250 ms, each measured on its own, so all 100 fall inside the burst (about
  // 45 s of granting on this machine); the grants still pending at each trigger show it did.
  const pendingGrants = () => burst.length - burst.filter((b) => burstWatcher.phaseOf(b) === 'Granted').length;
  const measured: Array<Promise<{ ms: number; fromRequestMs: number; bindingMs: number; pending: number }>> = [];
  for (let i = 0; i < n; i += 1) {
    const name = `br-${i}`;
    const pending = pendingGrants();
    const requested = performance.now();
    const podEnds = env.client.must('PATCH', `/api/v1/namespaces/${ns}/pods/${grants[i]!.pod}/status`, { status: { phase: 'Succeeded' } }, 'application/merge-patch+json');
    // The pod has ended once the API server has committed its status (as the kubelet's report
    // is): timed from the PATCH's answer. The PATCH itself waits in the same busy API server, so
    // the figure from the request is kept beside it.
    measured.push(
      podEnds.then(async () => {
        const ended = performance.now();
        const [at, bindingGone] = await Promise.all([watcher.waitFor(name, ['Completed', 'Revoked']), bindings.waitFor(grants[i]!.binding, ['Deleted'])]);
        return { ms: at - ended, fromRequestMs: at - requested, bindingMs: bindingGone - ended, pending };
      }),
    );
    await sleep(250);
  }
  const outcomes = await Promise.all(measured);
  const samples = outcomes.map((o) => o.ms);
  await load;
  await Promise.all(burstGranted);
  watcher.stop();
  bindings.stop();
  burstWatcher.stop();
  const fromRequest = outcomes.map((o) => o.fromRequestMs);
  const bindingGone = outcomes.map((o) => o.bindingMs);
  keep('revoke.during_burst', samples);
  keep('revoke.during_burst_from_request', fromRequest);
  keep('revoke.during_burst_binding', bindingGone);
  results.revoke = {
    ...results.revoke,
    during_burst_n: samples.length,
    during_burst_p50_ms: round(percentile(samples, 50)),
    during_burst_p99_ms: round(percentile(samples, 99)),
    during_burst_from_request_p50_ms: round(percentile(fromRequest, 50)),
    during_burst_from_request_p99_ms: round(percentile(fromRequest, 99)),
    // Access ended: the task's RoleBinding deleted (written beside the terminal status).
    during_burst_binding_p50_ms: round(percentile(bindingGone, 50)),
    during_burst_binding_p99_ms: round(percentile(bindingGone, 99)),
    during_burst_min_pending_grants: Math.min(...outcomes.map((o) => o.pending)),
  };
}

/**
 * Stands in for taskgrant's authorizer a no-opinion answerer (same TLS, every review "no
 * opinion"), so RBAC alone decides task identities, as on the RBAC-only clusters the chart
 * supports; the authorizer is back when `fn` returns.
 */
async function withRbacOnly<T>(env: Env, fn: () => Promise<T>): Promise<T> {
  const files = authzFiles(env.launch.clusterDir);
  const server = createServer({ cert: readFileSync(join(files.tlsDir, 'tls.crt')), key: readFileSync(join(files.tlsDir, 'tls.key')), keepAliveTimeout: 120_000 }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', status: { allowed: false } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const previous = readFileSync(files.target, 'utf8');
  writeFileSync(files.target, `127.0.0.1:${(server.address() as AddressInfo).port}`);
  // The relay notices within 100 ms and drops the API server's connections to the authorizer.
  await sleep(1000);
  try {
    return await fn();
  } finally {
    writeFileSync(files.target, previous);
    await sleep(1000);
    server.closeAllConnections();
    server.close();
  }
}

/**
 * A token in use with RBAC alone: from the pod's end to the agent's first 403 (its RoleBinding
 * deleted), 100 one after another; then to its first 401 (its ServiceAccount deleted, once the
 * API server's 10 s cache of the token's authentication lapses) — bounded by that cache, so
 * reported, not a goal, over 20 samples in waves of 10 (`max`, not a p99).
 */
async function benchUsedToken({ results, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-used-token');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const agent = async (name: string) => {
    const g = await grantWithPod(env, watcher, ns, name);
    await watcher.waitFor(name, ['Active']);
    const podEnds = () => env.client.must('PATCH', `/api/v1/namespaces/${ns}/pods/${g.pod.metadata.name}/status`, { status: { phase: 'Succeeded' } }, 'application/merge-patch+json');
    return { token: g.tokens[0]!, podEnds };
  };
  const forbidden: number[] = [];
  const unauthorized: number[] = [];
  await withRbacOnly(env, async () => {
    for (const { token, podEnds } of await prepare(100, (i) => agent(`u403-${i}`))) {
      const refusal = await timeToRefusal(env, ns, token, podEnds, 403);
      if (refusal.body.includes('taskgrant:')) throw new Error(`refused by the authorizer, not RBAC: ${refusal.body.slice(0, 300)}`);
      forbidden.push(refusal.ms);
    }
    for (let wave = 0; wave < 2; wave += 1) {
      const agents = await prepare(10, (i) => agent(`u401-${wave}-${i}`));
      const refusals = await Promise.all(agents.map(({ token, podEnds }) => timeToRefusal(env, ns, token, podEnds, 401)));
      unauthorized.push(...refusals.map((r) => r.ms));
    }
  });
  watcher.stop();
  keep('revoke.used_token_403', forbidden);
  keep('revoke.used_token_401', unauthorized);
  results.revoke = {
    ...results.revoke,
    used_token_403_n: forbidden.length,
    used_token_403_p50_ms: round(percentile(forbidden, 50)),
    used_token_403_p99_ms: round(percentile(forbidden, 99)),
    used_token_401_n: unauthorized.length,
    used_token_401_p50_ms: round(percentile(unauthorized, 50)),
    used_token_401_max_ms: round(Math.max(...unauthorized)),
  };
}

export const revokePart: BenchPart<Env> = { name: 'revoke', title: 'revocation on pod success', run: benchRevokePod };
export const ttlPart: BenchPart<Env> = { name: 'ttl', title: 'revocation on TTL', run: benchRevokeTtl };
export const usedTokenPart: BenchPart<Env> = { name: 'used-token', title: 'revocation of a token in use, RBAC alone: first 403, first 401', run: benchUsedToken };
export const burstRevokePart: BenchPart<Env> = { name: 'burst-revoke', title: 'pod-end revocations during a burst of 2,000 grants', run: benchRevokeDuringBurst };
