// Request time: what taskgrant's authorizer adds to an agent's request (beside the same request
// decided by RBAC alone), and how soon after a revocation the agent's next request is refused.
import { timeToRefusal } from '../agent.js';
import { PhaseWatcher } from '../client.js';
import { createTaskPod, namespace, operatorMetric, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, prepare, round } from '../stats.js';
import { permissions, taskBody, taskPath } from '../tasks.js';

interface Pod {
  metadata: { name: string; uid: string };
}

/** A token bound to `pod`, as the pod's projected volume would hold. */
async function podToken(env: Env, ns: string, serviceAccount: string, pod: Pod): Promise<string> {
  const res = await env.client.must('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${serviceAccount}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid } },
  });
  return (res.status as { token: string }).token;
}

/** A granted task with its pod (admitted by the policies, so it runs as the task) and that pod's token. */
async function grantedAgent(env: Env, watcher: PhaseWatcher, ns: string, name: string): Promise<{ pod: Pod; token: string }> {
  await env.client.must('POST', taskPath(ns), taskBody(name, `${name}-agent`));
  await watcher.waitFor(name, ['Granted']);
  const task = await env.client.must('GET', taskPath(ns, name));
  const serviceAccount = (task.status as { grant: { serviceAccount: string } }).grant.serviceAccount;
  const pod = await createTaskPod(env, ns, name);
  await watcher.waitFor(name, ['Active']);
  return { pod, token: await podToken(env, ns, serviceAccount, pod) };
}

/**
 * The floor: an ordinary ServiceAccount (not tg-*, so the API server never asks taskgrant) with a
 * Role of the task's permissions, and a token bound to a pod of its own.
 */
async function rbacOnlyAgent(env: Env, ns: string): Promise<string> {
  const name = 'rbac-agent';
  await env.client.must('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name } });
  await env.client.must('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, { metadata: { name }, rules: permissions });
  await env.client.must('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
    metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
  });
  const pod = (await env.client.must('POST', `/api/v1/namespaces/${ns}/pods`, {
    metadata: { name: `${name}-pod` },
    spec: { serviceAccountName: name, containers: [{ name: 'a', image: 'registry.invalid/a:1' }] },
  })) as unknown as Pod;
  return podToken(env, ns, name, pod);
}

/** One GET the agent is granted, with its token; refused answers are an error here. */
function agentGet(env: Env, ns: string, token: string): () => Promise<void> {
  return async () => {
    const res = await env.client.call('GET', `/api/v1/namespaces/${ns}/pods?limit=1`, undefined, undefined, token);
    if (res.status !== 200) throw new Error(`agent GET ${res.status}: ${res.body.slice(0, 200)}`);
  };
}

async function sampleSequentially(count: number, fn: () => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return samples;
}

/** kube-apiserver's own histogram of its calls to authorization webhooks (only ours is configured). */
async function apiserverAuthzStats(env: Env): Promise<{ sum: number; count: number }> {
  const res = await env.client.call('GET', '/metrics');
  const total = (suffix: string) =>
    res.body
      .split('\n')
      .filter((l) => l.startsWith(`apiserver_authorization_webhook_duration_seconds_${suffix}{`))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return { sum: total('sum'), count: total('count') };
}

async function operatorAuthzStats(env: Env): Promise<{ sum: number; count: number }> {
  return { sum: await operatorMetric(env, 'taskgrant_authz_duration_seconds_sum'), count: await operatorMetric(env, 'taskgrant_authz_duration_seconds_count') };
}

const meanMs = (a: { sum: number; count: number }, b: { sum: number; count: number }) => round(((b.sum - a.sum) / Math.max(1, b.count - a.count)) * 1000);

async function benchAuthzRequest({ results, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-authz');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const task = agentGet(env, ns, (await grantedAgent(env, watcher, ns, 'reader')).token);
  const rbac = agentGet(env, ns, await rbacOnlyAgent(env, ns));
  watcher.stop();
  await sampleSequentially(200, task);
  await sampleSequentially(200, rbac);
  const withAuthorizer: number[] = [];
  const rbacOnly: number[] = [];
  const [apiserverBefore, operatorBefore] = [await apiserverAuthzStats(env), await operatorAuthzStats(env)];
  // Interleaved batches, so both see the same machine noise.
  for (let batch = 0; batch < 10; batch += 1) {
    withAuthorizer.push(...(await sampleSequentially(200, task)));
    rbacOnly.push(...(await sampleSequentially(200, rbac)));
  }
  keep('authz.request', withAuthorizer);
  keep('authz.rbac_only', rbacOnly);
  const [apiserverAfter, operatorAfter] = [await apiserverAuthzStats(env), await operatorAuthzStats(env)];
  results.authz = {
    ...results.authz,
    request_n: withAuthorizer.length,
    request_p50_ms: round(percentile(withAuthorizer, 50)),
    request_p99_ms: round(percentile(withAuthorizer, 99)),
    rbac_only_p50_ms: round(percentile(rbacOnly, 50)),
    rbac_only_p99_ms: round(percentile(rbacOnly, 99)),
    request_p50_ratio: round(percentile(withAuthorizer, 50) / percentile(rbacOnly, 50), 2),
    request_p99_ratio: round(percentile(withAuthorizer, 99) / percentile(rbacOnly, 99), 2),
    // Where the difference goes: the API server's call to the authorizer (connection, relay and
    // TLS included), and inside it the operator's decision (runtime policies included).
    apiserver_webhook_mean_ms: meanMs(apiserverBefore, apiserverAfter),
    operator_decision_mean_ms: meanMs(operatorBefore, operatorAfter),
  };
}

/**
 * The agent keeps using its token, a request every 5 ms; its pod ends (the trigger); the time from
 * the trigger to the first response that refuses it. The token was presented before, so the API
 * server's authentication cache holds it: the authorizer is what refuses.
 */
async function benchAuthzRevoke({ results, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-authz-revoke');
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const samples: number[] = [];
  let byAuthorizer = 0;
  const n = 120;
  const agents = await prepare(n, (i) => grantedAgent(env, watcher, ns, `ar-${i}`));
  for (const { pod, token } of agents) {
    const podEnds = () => env.client.must('PATCH', `/api/v1/namespaces/${ns}/pods/${pod.metadata.name}/status`, { status: { phase: 'Succeeded' } }, 'application/merge-patch+json');
    const refusal = await timeToRefusal(env, ns, token, podEnds, 403, 10_000);
    // The API server appends the authorizer's reason, prefixed with its name. A request the
    // authorizer passed a moment before the pod's end reached it can still meet RBAC after the
    // RoleBinding is gone: refused all the same, by RBAC.
    if (refusal.body.includes('taskgrant:')) byAuthorizer += 1;
    samples.push(refusal.ms);
  }
  watcher.stop();
  keep('revoke.authz', samples);
  results.revoke = { ...results.revoke, authz_n: samples.length, authz_refused_by_authorizer: byAuthorizer, authz_p50_ms: round(percentile(samples, 50)), authz_p99_ms: round(percentile(samples, 99)) };
}

export const authzRequestPart: BenchPart<Env> = { name: 'authz', title: "an agent's request: through the authorizer vs RBAC alone", run: benchAuthzRequest };
export const authzRevokePart: BenchPart<Env> = { name: 'authz-revoke', title: "revocation with the authorizer: trigger to the agent's next request refused", run: benchAuthzRevoke };
