// Admission mode policy (the default where the API server serves MutatingAdmissionPolicy): task
// pods are given their task's identity inside the API server, by CEL, with the live AgentTasks as
// parameters. No webhook is called for a pod — so they are admitted with the operator stopped.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import type { AgentTask } from '../src/api/index.js';
import { eventually, refusalMessage, uniqueName } from './harness/kube.js';
import type { TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';

let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;

beforeAll(async () => {
  ({ tasks, operator, namespaces: [ns] } = await startOperatorSuite(['polmode'], { admissionMode: 'policy' }));
});

afterAll(async () => {
  // Halted or not, nothing it installed may stay: the suites after it run in webhook mode.
  await operator?.removeInstalled();
  await operator?.halt();
});

function podBody(name: string, task: string, spec: Partial<k8s.V1PodSpec> = {}): k8s.V1Pod {
  return {
    metadata: { name, labels: { 'taskgrant.io/task': task, app: 'agent' }, annotations: { keep: 'me' } },
    spec: {
      initContainers: [{ name: 'init', image: 'registry.invalid/init:1', env: [{ name: 'KEEP', value: 'me' }] }],
      containers: [
        { name: 'agent', image: 'registry.invalid/agent:1', volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }], env: [{ name: 'TASKGRANT_TOKEN_FILE', value: '/elsewhere' }] },
        { name: 'sidecar', image: 'registry.invalid/sidecar:1' },
      ],
      volumes: [{ name: 'scratch', emptyDir: {} }],
      ...spec,
    },
  };
}

async function granted(name: string, spec: Partial<AgentTask['spec']> = {}): Promise<AgentTask> {
  await tasks.create(ns, name, { intent: intentOf(readPods), ...spec });
  const task = await tasks.waitForPhase(ns, name, 'Granted');
  await untilParameterSeen(task);
  return task;
}

/**
 * The API server reads the policies' parameters (live AgentTasks) from a cache of its own, which
 * trails the live label by a moment (and, right after the policies are installed, by the time it
 * takes to start). A dry-run pod shows when this task is in it; then the test proper begins.
 */
async function untilParameterSeen(task: AgentTask): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const probe = await tasks.core.createNamespacedPod({ namespace: ns, body: podBody(uniqueName('probe'), task.metadata.name), dryRun: 'All' }).catch(() => undefined);
    if (probe?.spec?.serviceAccountName === task.status?.grant?.serviceAccount) return;
    if (Date.now() > deadline) throw new Error(`no dry-run pod of ${task.metadata.name} was given its identity within 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const createPod = (body: k8s.V1Pod) => tasks.core.createNamespacedPod({ namespace: ns, body });

describe('admission mode policy', () => {
  it('is in force on Kubernetes 1.37: the pod webhooks are not registered, the policies are', async () => {
    expect(operator.admissionMode).toBe('policy');
    const webhooks = await tasks.admission.readMutatingWebhookConfiguration({ name: operator.config.webhookConfigName });
    expect(webhooks.webhooks?.map((w) => w.rules?.[0]?.resources?.[0])).not.toContain('pods');
  });

  it('gives a task pod its identity and a projected token, the same as the webhook does, and labels the live task', async () => {
    const task = await granted(uniqueName('mut'), { token: { audiences: ['tools.example.com', 'second.example.com'], expirationSeconds: 900 } });
    expect(task.metadata.labels?.['taskgrant.io/live']).toBe('true');
    const pod = await createPod(podBody(uniqueName('p'), task.metadata.name));
    const spec = pod.spec!;
    expect(spec.serviceAccountName).toBe(task.status?.grant?.serviceAccount);
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.volumes?.some((v) => v.name.startsWith('kube-api-access-'))).toBe(false);
    const tokenVolume = spec.volumes?.find((v) => v.name === 'taskgrant-token');
    expect(tokenVolume?.projected?.sources).toEqual([
      { serviceAccountToken: { path: 'token', audience: 'tools.example.com', expirationSeconds: 900 } },
      { serviceAccountToken: { path: 'token-1', audience: 'second.example.com', expirationSeconds: 900 } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
    ]);
    expect(spec.volumes?.map((v) => v.name)).toContain('scratch');
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      expect(c.volumeMounts?.filter((m) => m.name === 'taskgrant-token')).toEqual([{ name: 'taskgrant-token', mountPath: '/var/run/secrets/taskgrant.io/', readOnly: true }]);
      expect(c.volumeMounts?.some((m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount')).toBe(false);
      // First, and only once: the pod's own value is replaced.
      expect(c.env?.[0]).toEqual({ name: 'TASKGRANT_TOKEN_FILE', value: '/var/run/secrets/taskgrant.io/token' });
      expect(c.env?.filter((e) => e.name === 'TASKGRANT_TOKEN_FILE')).toHaveLength(1);
    }
    expect(spec.initContainers?.[0]?.env?.find((e) => e.name === 'KEEP')?.value).toBe('me');
    expect(pod.metadata?.annotations).toMatchObject({ 'taskgrant.io/task-uid': task.metadata.uid, keep: 'me' });
    await tasks.waitForPhase(ns, task.metadata.name, 'Active');
  });

  it('refuses a pod of a task that is not live, or of none, with a reason', async () => {
    const revoked = uniqueName('rev');
    await granted(revoked);
    await tasks.annotate(ns, revoked, { 'taskgrant.io/revoke': 'test' });
    await tasks.waitForPhase(ns, revoked, 'Revoked');
    // Refused on the terminal status alone: the live label goes only once the revocation's
    // deletes are done, and may still be there now.
    for (const name of [revoked, 'no-such-task']) {
      expect(await refusalMessage(() => createPod(podBody(uniqueName('p'), name)))).toMatch(new RegExp(`task ${ns}/${name} has no live grant`));
    }
    await eventually(async () => (await tasks.get(ns, revoked))?.metadata.labels?.['taskgrant.io/live'] === undefined, 'the live label to be removed', 60_000);
  });

  it('refuses a task pod that brings another task\'s identity', async () => {
    const [mine, theirs] = [await granted(uniqueName('mine')), await granted(uniqueName('theirs'))];
    const forged = podBody(uniqueName('p'), mine.metadata.name, { serviceAccountName: theirs.status?.grant?.serviceAccount ?? '' });
    // The mutation puts the right ServiceAccount in place: the pod runs as its own task.
    const pod = await createPod(forged);
    expect(pod.spec?.serviceAccountName).toBe(mine.status?.grant?.serviceAccount);
  });

  it('keeps maxPods another way: a pod over the limit is admitted, and the grant is revoked (MaxPodsExceeded)', async () => {
    const task = await granted(uniqueName('max'));
    await createPod(podBody(uniqueName('p'), task.metadata.name));
    await createPod(podBody(uniqueName('p'), task.metadata.name));
    const revoked = await tasks.waitForPhase(ns, task.metadata.name, 'Revoked', 30_000);
    expect(revoked.status?.reason).toBe('MaxPodsExceeded');
  });

  it('with the operator stopped: a live task\'s pod is admitted with its token, a pod of a task that is not live is refused', async () => {
    const live = await granted(uniqueName('live'));
    const revoked = uniqueName('gone');
    await granted(revoked);
    await tasks.annotate(ns, revoked, { 'taskgrant.io/revoke': 'test' });
    await tasks.waitForPhase(ns, revoked, 'Revoked');
    await operator.halt();
    const pod = await createPod(podBody(uniqueName('p'), live.metadata.name));
    expect(pod.spec?.serviceAccountName).toBe(live.status?.grant?.serviceAccount);
    expect(pod.spec?.volumes?.find((v) => v.name === 'taskgrant-token')?.projected?.sources?.[0]?.serviceAccountToken).toMatchObject({ path: 'token', expirationSeconds: 600 });
    expect(await refusalMessage(() => createPod(podBody(uniqueName('p'), revoked)))).toMatch(/has no live grant/);
    // The identity guard holds as before: no unlabelled pod borrows the task's identity.
    const borrowed = { metadata: { name: uniqueName('borrow') }, spec: { serviceAccountName: live.status?.grant?.serviceAccount ?? '', containers: [{ name: 'c', image: 'registry.invalid/x:1' }] } };
    expect(await refusalMessage(() => createPod(borrowed))).toMatch(/reserved for taskgrant/);
  });
});
