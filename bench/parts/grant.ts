// Grant: one task at a time beside the floor (the operator's API writes made directly), then a burst.
import { PhaseWatcher } from '../client.js';
import { cpuMs, FLOOR_GROUP, installFloorCrd, namespace, operatorMetric, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, round, runPool, timed } from '../stats.js';
import { permissions, taskBody, taskPath } from '../tasks.js';

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

/**
 * The floor of one grant: exactly the API writes the operator makes for one, in the same order
 * and with the same overlap, made directly by a script with no webhook, no policy, no queue and
 * no watch. The task object (created as the admin, like ours; an AgentTask of the floor CRD, the
 * same schema, that nothing acts on), then, with an identity holding the operator's RBAC: the
 * finalizer and live label beside the agent's ledger ConfigMap, the ServiceAccount and the Role;
 * the RoleBinding; the Granted status. Resolves when the status is written, as ours is timed to
 * Granted; `audited` is the audit Event the operator writes after it.
 */
async function floorGrant(env: Env, base: string, name: string, agent: string): Promise<{ audited: Promise<unknown> }> {
  const floorPath = `/apis/${FLOOR_GROUP}/v1alpha1/namespaces/${base}/agenttasks`;
  const task = await env.client.must('POST', floorPath, { ...taskBody(name, agent), apiVersion: `${FLOOR_GROUP}/v1alpha1` });
  const token = env.floorToken;
  const merge = 'application/merge-patch+json';
  const held = { metadata: { finalizers: ['taskgrant.io/revoke-grant'], labels: { 'taskgrant.io/live': 'true' }, resourceVersion: (task.metadata as { resourceVersion: string }).resourceVersion } };
  const ledger = { metadata: { name: `floor-ledger-${name}`, labels: { 'taskgrant.io/ledger': 'true' } }, data: { entries: JSON.stringify([{ uid: (task.metadata as { uid: string }).uid, task: name, at: Date.now(), ttlSeconds: 900 }]) } };
  await Promise.all([
    env.client.must('PATCH', `${floorPath}/${name}`, held, merge, token),
    env.client.must('POST', `/api/v1/namespaces/${base}/configmaps`, ledger, undefined, token),
    env.client.must('POST', `/api/v1/namespaces/${base}/serviceaccounts`, { metadata: { name }, automountServiceAccountToken: false }, undefined, token),
    env.client.must('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${base}/roles`, { metadata: { name }, rules: permissions }, undefined, token),
  ]);
  const binding = { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace: base }] };
  await env.client.must('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${base}/rolebindings`, binding, undefined, token);
  await env.client.must('PATCH', `${floorPath}/${name}/status`, { status: grantedStatus(name, base) }, merge, token);
  const event = {
    metadata: { name: `${name}.granted` },
    involvedObject: { apiVersion: `${FLOOR_GROUP}/v1alpha1`, kind: 'AgentTask', name, namespace: base },
    reason: 'PolicyAllowed',
    message: 'floor',
    type: 'Normal',
    source: { component: 'taskgrant' },
  };
  return { audited: env.client.must('POST', `/api/v1/namespaces/${base}/events`, event, undefined, token) };
}

async function benchGrant({ root, results, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-grant');
  const base = await namespace(env.client, 'bench-baseline');
  await installFloorCrd(env.client, root);
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const n = 100;
  const ours = async (i: number) => {
    await env.client.must('POST', taskPath(ns), taskBody(`g-${i}`, `grant-agent-${i}`));
    await watcher.waitFor(`g-${i}`, ['Granted']);
  };
  const baseline = (i: number) => floorGrant(env, base, `b-${i}`, `floor-agent-${i}`);
  await timed(10, 1, (i) => ours(1000 + i));
  const warmAudits: Array<Promise<unknown>> = [];
  await timed(10, 1, async (i) => void warmAudits.push((await baseline(1000 + i)).audited));
  await Promise.all(warmAudits);
  const policyBefore = [await operatorMetric(env, 'taskgrant_policy_evaluation_seconds_sum'), await operatorMetric(env, 'taskgrant_policy_evaluation_seconds_count')];
  const ourSamples: number[] = [];
  const baseSamples: number[] = [];
  // Interleaved, so both see the same machine noise; the floor's audit Event is written between
  // samples, as the operator writes ours after Granted.
  for (let i = 0; i < n; i += 1) {
    ourSamples.push(...(await timed(1, 1, () => ours(i))));
    let audited: Promise<unknown> = Promise.resolve();
    baseSamples.push(...(await timed(1, 1, async () => void ({ audited } = await baseline(i)))));
    await audited;
  }
  watcher.stop();
  keep('grant.ours', ourSamples);
  keep('grant.floor', baseSamples);
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
    // What taskgrant adds to the writes a grant is made of, in milliseconds.
    overhead_p50_ms: round(percentile(ourSamples, 50) - percentile(baseSamples, 50)),
  };
}

/**
 * 500 tasks created at once (64 writers), to all Granted; then the floor's 500 grants made by 64
 * writers at once: an absolute rate moves with the machine, the ratio to the floor's much less.
 */
async function benchBurst({ root, results }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-burst');
  const base = await namespace(env.client, 'bench-burst-floor');
  await installFloorCrd(env.client, root);
  const watcher = new PhaseWatcher(env.kubeconfig, ns);
  await watcher.start();
  const n = 500;
  const concurrency = 64;
  const names = Array.from({ length: n }, (_, i) => `burst-${i}`);
  const cpuBefore = cpuMs(env.operator.pid!);
  const start = performance.now();
  const granted = names.map((name) => watcher.waitFor(name, ['Granted'], 120_000));
  await runPool(names, concurrency, async (name, i) => void (await env.client.must('POST', taskPath(ns), taskBody(name, `burst-agent-${i}`))));
  const times = await Promise.all(granted);
  const elapsed = (Math.max(...times) - start) / 1000;
  const operatorCpuPct = round((cpuMs(env.operator.pid!) - cpuBefore) / 10 / elapsed, 1);
  watcher.stop();
  const floorStart = performance.now();
  await runPool(names, concurrency, async (name, i) => void (await (await floorGrant(env, base, name, `burst-floor-agent-${i}`)).audited));
  const floorElapsed = (performance.now() - floorStart) / 1000;
  results.grant = {
    ...results.grant,
    burst_n: n,
    burst_seconds: round(elapsed, 2),
    burst_per_s: round(n / elapsed, 1),
    burst_floor_per_s: round(n / floorElapsed, 1),
    burst_floor_ratio: round(floorElapsed / elapsed, 2),
    // Of one core; the API server, etcd and this bench share the other cores.
    burst_operator_cpu_pct: operatorCpuPct,
  };
}

export const grantPart: BenchPart<Env> = { name: 'grant', title: 'grant latency vs baseline', run: benchGrant };
export const burstPart: BenchPart<Env> = { name: 'burst', title: 'burst of 500 tasks', run: benchBurst };
