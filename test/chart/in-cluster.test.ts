// The chart as a user installs it on a real node: the operator image built here, two replicas
// that become Ready (one leads), the API server reaching the webhooks through the chart's Service,
// a task granted, used by a real agent pod and revoked, all by the in-cluster operator under the
// chart's RBAC; `helm upgrade` rolls the pods with no lost or doubled grant, and `helm uninstall`
// revokes every live task before the operator goes.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { webhookClientFiles } from '../harness/controlplane.js';
import { webhookRequestTo } from '../harness/security.js';
import { adminConfig, createNamespace, eventually, statusOfCall, uniqueName } from '../harness/kube.js';
import { operatorImage } from '../harness/project-images.js';
import { agentReport, createAgentPod, mountedToken, refusedFromNowOn, release, testNodeToleration, waitForPodPhase } from '../harness/real-pods.js';
import { TaskHelper, intentOf, readPods } from '../harness/tasks.js';
import { chartDir, helmOk, valuesFile } from './helm.js';

const RELEASE = 'tgreal';
const FULLNAME = 'tgreal-taskgrant';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let apps: k8s.AppsV1Api;
let coordination: k8s.CoordinationV1Api;
let releaseNs: string;
let workNs: string;
let installed = false;

const kubeconfig = () => process.env.TASKGRANT_TEST_KUBECONFIG ?? '';
const [repository, tag] = operatorImage.split(':') as [string, string];
// The local API server presents its webhook client certificate: the chart's pods answer only it.
const values = () =>
  valuesFile({
    image: { repository, tag, pullPolicy: 'Never' },
    tolerations: [testNodeToleration],
    logLevel: 'debug',
    webhook: { clientCA: readFileSync(webhookClientFiles(dirname(kubeconfig())).webhookClientCa, 'utf8') },
  });

/** The Deployment has rolled out: every replica of its newest template is Ready and no other is left. */
async function rolledOut(): Promise<k8s.V1Pod[]> {
  return eventually(
    async () => {
      const d = await apps.readNamespacedDeployment({ namespace: releaseNs, name: FULLNAME });
      const s = d.status;
      const want = d.spec?.replicas ?? 0;
      const done = (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) && s?.updatedReplicas === want && s?.readyReplicas === want && s?.replicas === want;
      if (!done) return undefined;
      const pods = await tasks.core.listNamespacedPod({ namespace: releaseNs, labelSelector: 'app.kubernetes.io/name=taskgrant' });
      const live = pods.items.filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase === 'Running');
      return live.length === want ? live : undefined;
    },
    'the operator Deployment to roll out',
    240_000,
    500,
  ).then(async (pods) => {
    await webhookReachable();
    return pods;
  });
}

/**
 * The rolled-out pods answer through the Service as the API server reaches it: endpoints and
 * kube-proxy follow a roll a moment later. A dry run (no object is made) takes the same path.
 */
async function webhookReachable(): Promise<void> {
  const probe = { apiVersion: 'taskgrant.io/v1alpha1', kind: 'AgentTask', metadata: { name: uniqueName('probe') }, spec: { agent: 'probe', intent: intentOf(readPods) } };
  const answers = () => statusOfCall(() => tasks.custom.createNamespacedCustomObject({ group: 'taskgrant.io', version: 'v1alpha1', namespace: workNs, plural: 'agenttasks', body: probe, dryRun: 'All' }));
  // Several in a row: the Service spreads calls over every endpoint it still lists.
  await eventually(async () => (await Promise.all(Array.from({ length: 6 }, answers))).every((s) => s === 200), 'the webhook to answer through its Service', 60_000, 250);
}

async function leader(): Promise<string> {
  const lease = await coordination.readNamespacedLease({ namespace: releaseNs, name: 'taskgrant-controller' });
  return lease.spec?.holderIdentity ?? '';
}

async function grantedTask(name: string): Promise<string> {
  await tasks.create(workNs, name, { intent: intentOf(readPods), ttl: '15m' });
  const task = await tasks.waitForPhase(workNs, name, 'Granted', 90_000);
  return task.metadata.uid ?? '';
}

beforeAll(async () => {
  admin = adminConfig();
  tasks = new TaskHelper(admin);
  apps = admin.makeApiClient(k8s.AppsV1Api);
  coordination = admin.makeApiClient(k8s.CoordinationV1Api);
  releaseNs = uniqueName('tgreal-system');
  workNs = await createNamespace(admin, 'tgreal-work');
  await helmOk(['install', RELEASE, chartDir, '--namespace', releaseNs, '--create-namespace', '--kubeconfig', kubeconfig(), '-f', values()]);
  installed = true;
}, 120_000);

afterAll(async () => {
  // Only if a test failed before uninstalling: leave no webhook pointing at pods that are gone.
  if (installed) await helmOk(['uninstall', RELEASE, '--namespace', releaseNs, '--kubeconfig', kubeconfig(), '--no-hooks', '--wait']).catch(() => undefined);
}, 120_000);

describe('the chart, installed with the image built here', () => {
  it('runs two operator pods from localhost/taskgrant:dev; both Ready, one leads', async () => {
    const pods = await rolledOut();
    expect(pods).toHaveLength(2);
    for (const pod of pods) expect(pod.spec?.containers[0]?.image).toBe(operatorImage);
    const holder = await eventually(async () => (await leader()) || undefined, 'a leader', 60_000, 500);
    expect(pods.map((p) => p.metadata?.name)).toContain(holder.split('_')[0]);
  }, 300_000);

  it('answers admission calls only from the API server (webhook.clientCA)', async () => {
    const [pod] = await rolledOut();
    // Straight to a pod's webhook port from the node, with no client certificate.
    const res = await webhookRequestTo(pod?.status?.podIP ?? '', 9443, '', { method: 'POST', path: '/mutate/agenttasks', body: '{}', headers: { 'Content-Type': 'application/json' } }, 'anyone', false);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/only the API server may call the admission routes/);
  }, 120_000);

  it('grants, admits (webhook through the Service) and revokes a task for a real agent pod', async () => {
    const name = uniqueName('real');
    await grantedTask(name);
    await createAgentPod(tasks.core, workNs, name, name, { hold: true });
    const running = await waitForPodPhase(tasks.core, workNs, name, ['Running']);
    // Mutated by the in-cluster webhook: the task's ServiceAccount and its projected token.
    expect(running.spec?.serviceAccountName).toMatch(/^tg-/);
    const token = mountedToken(running);
    const report = await agentReport(tasks.core, workNs, name);
    expect(report).toMatch(/^allowed: .* -> 200 OK$/m);
    expect(report).toMatch(/^forbidden: .* -> 403 Forbidden$/m);
    release(running);
    const done = await tasks.waitForPhase(workNs, name, 'Completed', 90_000);
    expect(done.status?.reason).toBe('PodSucceeded');
    expect([401, 403]).toContain(await refusedFromNowOn(admin, token, workNs));
  }, 300_000);

  it('helm upgrade rolls the pods; tasks created before and during the roll are each granted exactly once', async () => {
    const before = (await rolledOut()).map((p) => p.metadata?.name);
    const names = Array.from({ length: 12 }, (_, i) => uniqueName(`roll${i}`));
    await Promise.all(names.slice(0, 6).map((n) => tasks.create(workNs, n, { intent: intentOf(readPods), ttl: '15m' })));
    const upgrade = helmOk(['upgrade', RELEASE, chartDir, '--namespace', releaseNs, '--kubeconfig', kubeconfig(), '-f', values(), '--set-string', `podAnnotations.rolled=${Date.now()}`]);
    await Promise.all(names.slice(6).map((n) => tasks.create(workNs, n, { intent: intentOf(readPods), ttl: '15m' })));
    await upgrade;
    const after = (await rolledOut()).map((p) => p.metadata?.name);
    expect(after.filter((n) => before.includes(n))).toEqual([]);
    for (const n of names) {
      const task = await tasks.waitForPhase(workNs, n, 'Granted', 120_000);
      const objects = await tasks.grantObjects(task.metadata.uid ?? '');
      expect({ n, objects: objects.map((o) => o.split(' ')[0]).sort() }).toEqual({ n, objects: ['Role', 'RoleBinding', 'ServiceAccount'] });
    }
  }, 400_000);

  it('helm uninstall revokes every live task before the operator goes', async () => {
    const name = uniqueName('live');
    const uid = await grantedTask(name);
    await createAgentPod(tasks.core, workNs, name, name, { hold: true });
    const running = await waitForPodPhase(tasks.core, workNs, name, ['Running']);
    const token = mountedToken(running);
    await agentReport(tasks.core, workNs, name);
    await helmOk(['uninstall', RELEASE, '--namespace', releaseNs, '--kubeconfig', kubeconfig(), '--wait', '--timeout', '180s']);
    installed = false;
    const task = await tasks.get(workNs, name);
    expect(task?.status?.phase).toBe('Revoked');
    expect(task?.status?.message).toContain(`taskgrant release ${RELEASE} uninstalled`);
    expect(await tasks.grantObjects(uid)).toEqual([]);
    expect([401, 403]).toContain(await refusedFromNowOn(admin, token, workNs));
    // Every other task of the run was live too, and is no more.
    const live = (await tasks.custom.listNamespacedCustomObject({ group: 'taskgrant.io', version: 'v1alpha1', namespace: workNs, plural: 'agenttasks' })) as { items: { status?: { phase?: string } }[] };
    expect(live.items.filter((t) => ['Granted', 'Pending', 'AwaitingApproval'].includes(t.status?.phase ?? ''))).toEqual([]);
  }, 300_000);
});
