// End to end on a real node: the kubelet mounts the task's token, the demo agent in the pod uses
// it (one call its task allows, one it does not), the pod ends, the task ends with it, and the
// agent's own token (read where the kubelet mounted it) is refused from then on.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import type { AgentTask } from '../../src/api/index.js';
import { LABEL_TASK } from '../../src/api/index.js';
import { eventually, statusOfCall, tokenConfig, uniqueName } from '../harness/kube.js';
import { agentPodSpec, agentReport, claims, createAgentPod, mountedToken, refusedFromNowOn, release, waitForPodPhase } from '../harness/real-pods.js';
import { startOperatorSuite, type OperatorSuite } from '../harness/suite.js';
import { intentOf, readPods } from '../harness/tasks.js';

let suite: OperatorSuite<['e2e']>;
let ns: string;

beforeAll(async () => {
  suite = await startOperatorSuite(['e2e']);
  [ns] = suite.namespaces;
}, 120_000);

afterAll(async () => {
  await suite?.operator.stop();
});

async function grantedTask(name: string, token?: { audiences?: string[]; expirationSeconds?: number }): Promise<AgentTask> {
  await suite.tasks.create(ns, name, { intent: intentOf(readPods), ttl: '15m', ...(token ? { token } : {}) });
  return suite.tasks.waitForPhase(ns, name, 'Granted', 30_000);
}

/** What the agent's token can still do: the status of listing pods in its namespace. */
function listPodsWith(token: string): Promise<number> {
  const core = tokenConfig(suite.admin, token).makeApiClient(k8s.CoreV1Api);
  return statusOfCall(() => core.listNamespacedPod({ namespace: ns }));
}

async function expectRefusedFromNowOn(token: string): Promise<void> {
  expect([401, 403]).toContain(await refusedFromNowOn(suite.admin, token, ns));
}

describe('a task pod on a real node', () => {
  it('runs the agent as the task identity with the kubelet-mounted token; pod Succeeded → Completed, then the token is refused', async () => {
    const name = uniqueName('ok');
    const task = await grantedTask(name, { expirationSeconds: 900 });
    const sa = task.status?.grant?.serviceAccount ?? '';
    const created = await createAgentPod(suite.tasks.core, ns, name, name, { hold: true });
    const running = await waitForPodPhase(suite.tasks.core, ns, name, ['Running']);
    expect(created.spec?.serviceAccountName).toBe(sa);

    // The token the kubelet minted: the task's ServiceAccount, bound to this pod, the task's lifetime.
    const token = mountedToken(running);
    const c = claims(token);
    expect(c.sub).toBe(`system:serviceaccount:${ns}:${sa}`);
    expect(c['kubernetes.io']?.pod?.name).toBe(name);
    expect(c.exp - c.iat).toBe(900);
    expect(c.aud).toEqual(['https://kubernetes.default.svc.cluster.local']);

    const report = await agentReport(suite.tasks.core, ns, name);
    expect(report).toContain(`whoami: system:serviceaccount:${ns}:${sa}`);
    expect(report).toMatch(new RegExp(`^allowed: GET /api/v1/namespaces/${ns}/pods -> 200 OK$`, 'm'));
    expect(report).toMatch(new RegExp(`^forbidden: GET /api/v1/namespaces/${ns}/secrets -> 403 Forbidden$`, 'm'));
    // Nothing beyond the grant, from outside the pod too.
    const asAgent = tokenConfig(suite.admin, token).makeApiClient(k8s.CoreV1Api);
    expect(await statusOfCall(() => asAgent.listNamespacedPod({ namespace: ns }))).toBe(200);
    expect(await statusOfCall(() => asAgent.listNamespacedSecret({ namespace: ns }))).toBe(403);
    expect(await statusOfCall(() => asAgent.deleteNamespacedPod({ namespace: ns, name }))).toBe(403);

    release(running);
    await waitForPodPhase(suite.tasks.core, ns, name, ['Succeeded']);
    const done = await suite.tasks.waitForPhase(ns, name, 'Completed', 30_000);
    expect(done.status?.reason).toBe('PodSucceeded');
    await expectRefusedFromNowOn(token);
    // The Role and the ServiceAccount go after the binding.
    await eventually(async () => (await suite.tasks.grantObjects(task.metadata.uid ?? '')).length === 0, 'the grant objects to be deleted', 30_000);
  });

  it('mounts a token for the task audience, which the API server itself does not accept', async () => {
    const name = uniqueName('aud');
    await grantedTask(name, { audiences: ['tools.example.com'], expirationSeconds: 1200 });
    await createAgentPod(suite.tasks.core, ns, name, name, { hold: true });
    const running = await waitForPodPhase(suite.tasks.core, ns, name, ['Running']);
    const c = claims(mountedToken(running));
    expect(c.aud).toEqual(['tools.example.com']);
    expect(c.exp - c.iat).toBe(1200);
    // The agent's SelfSubjectReview fails: the token is for the tool, not for Kubernetes.
    await eventually(async () => (/SelfSubjectReview answered 401/.test(await suite.tasks.core.readNamespacedPodLog({ namespace: ns, name })) ? true : undefined), 'the agent to be refused', 60_000, 250);
    release(running);
    await waitForPodPhase(suite.tasks.core, ns, name, ['Failed']);
    await suite.tasks.waitForPhase(ns, name, 'Revoked', 30_000);
  });

  it('revokes with PodFailed when the agent exits 1', async () => {
    const name = uniqueName('fail');
    await grantedTask(name);
    await createAgentPod(suite.tasks.core, ns, name, name, { hold: true, fail: true });
    const running = await waitForPodPhase(suite.tasks.core, ns, name, ['Running']);
    const token = mountedToken(running);
    expect(await agentReport(suite.tasks.core, ns, name)).toMatch(/^allowed: .* -> 200 OK$/m);
    release(running);
    await waitForPodPhase(suite.tasks.core, ns, name, ['Failed']);
    const revoked = await suite.tasks.waitForPhase(ns, name, 'Revoked', 30_000);
    expect(revoked.status?.reason).toBe('PodFailed');
    await expectRefusedFromNowOn(token);
  });

  it('revokes with PodDeleted when the running pod is deleted', async () => {
    const name = uniqueName('del');
    await grantedTask(name);
    await createAgentPod(suite.tasks.core, ns, name, name, { hold: true });
    const running = await waitForPodPhase(suite.tasks.core, ns, name, ['Running']);
    const token = mountedToken(running);
    await agentReport(suite.tasks.core, ns, name);
    expect(await listPodsWith(token)).toBe(200);
    await suite.tasks.core.deleteNamespacedPod({ namespace: ns, name });
    const revoked = await suite.tasks.waitForPhase(ns, name, 'Revoked', 60_000);
    expect(revoked.status?.reason).toBe('PodDeleted');
    await expectRefusedFromNowOn(token);
  });

  it('runs an agent as a Job: the Job completes and so does the task', async () => {
    const name = uniqueName('job');
    await grantedTask(name);
    const batch = suite.admin.makeApiClient(k8s.BatchV1Api);
    await batch.createNamespacedJob({
      namespace: ns,
      body: {
        metadata: { name },
        spec: {
          backoffLimit: 0,
          ttlSecondsAfterFinished: 600,
          template: { metadata: { labels: { [LABEL_TASK]: name } }, spec: agentPodSpec() },
        },
      },
    });
    await eventually(async () => {
      const job = await batch.readNamespacedJob({ namespace: ns, name });
      return job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ? job : undefined;
    }, `Job ${name} Complete`, 90_000, 250);
    const pods = await suite.tasks.core.listNamespacedPod({ namespace: ns, labelSelector: `batch.kubernetes.io/job-name=${name}` });
    expect(pods.items).toHaveLength(1);
    const report = await suite.tasks.core.readNamespacedPodLog({ namespace: ns, name: pods.items[0]?.metadata?.name ?? '' });
    expect(report).toMatch(/^allowed: .* -> 200 OK$/m);
    expect(report).toMatch(/^forbidden: .* -> 403 Forbidden$/m);
    const done = await suite.tasks.waitForPhase(ns, name, 'Completed', 30_000);
    expect(done.status?.reason).toBe('PodSucceeded');
  });
});
