// The webhook app's pod routes: /mutate/pods turns a labelled pod into a task pod, /validate/pods
// guards task identities. AgentTask and TaskApproval routes are in app-tasks.test.ts, malformed
// requests in app-malformed.test.ts; the shared setup in app.test-support.ts.
import { beforeEach, describe, expect, it } from '@jest/globals';
import { ANNOTATION_POD_TASK_UID, LABEL_TASK, TOKEN_FILE_ENV, TOKEN_MOUNT_PATH, TOKEN_VOLUME } from '../api/index.js';
import { NOW, TASK_SA, TASK_UID, decodePatch, liveTask, review, type Json } from './fixtures/kit.js';
import type { Pod } from './pods.js';
import { admit, cluster, decisions, expectDenied, logLines, metrics, patched, start, startAppForEachTest } from './app.test-support.js';

/** The cluster CA beside the tokens, so the agent can verify the API server. */
const clusterCa = { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } };

startAppForEachTest();

describe('POST /mutate/pods', () => {
  beforeEach(() => {
    cluster.addTask(liveTask());
  });

  it('turns the pod the ServiceAccount plugin defaulted into a task pod', async () => {
    const r = review('pod-create');
    const response = await admit('/mutate/pods', r);
    const pod = patched<Pod>(r, response);
    expect(pod.spec.serviceAccountName).toBe(TASK_SA);
    expect(pod.spec.serviceAccount).toBe(TASK_SA);
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    expect(pod.spec.volumes).toEqual([
      { name: 'workspace', emptyDir: {} },
      { name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 600 } }, clusterCa] } },
    ]);
    const all = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
    expect(all.map((c) => c.name)).toEqual(['fetch-runbook', 'agent', 'log-shipper']);
    for (const c of all) {
      expect(c.volumeMounts?.filter((m) => m.name.startsWith('kube-api-access-'))).toEqual([]);
      expect(c.volumeMounts?.at(-1)).toEqual({ name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true });
    }
    expect(pod.spec.initContainers?.[0]?.volumeMounts?.[0]).toEqual({ name: 'workspace', mountPath: '/workspace' });
    const agent = pod.spec.containers[0]!;
    // The forged value is replaced where it stood; the other entries keep their place.
    expect(agent.env).toEqual([
      { name: 'INCIDENT', value: 'INC-1234' },
      { name: TOKEN_FILE_ENV, value: '/var/run/secrets/taskgrant.io/token' },
      { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
    ]);
    expect(pod.spec.containers[1]!.env).toEqual([{ name: TOKEN_FILE_ENV, value: '/var/run/secrets/taskgrant.io/token' }]);
    // The task uid, and the maxPods claim it holds (named after the pod).
    expect(pod.metadata?.annotations).toEqual({ 'example.com/owner~team': 'sre', [ANNOTATION_POD_TASK_UID]: TASK_UID, 'taskgrant.io/slot': 'summarize-errors-agent' });
    // Untouched fields ride along.
    expect(pod.spec.tolerations).toEqual(r.request.object.spec && (r.request.object.spec as Record<string, Json>).tolerations);
    expect(decodePatch(response.patch).map((op) => op.path)).toContain('/metadata/annotations/taskgrant.io~1task-uid');
    expect(await decisions('mutate-pods', 'allowed')).toBe(1);
    expect((await metrics.admissionSeconds.get()).values.find((v) => v.metricName?.endsWith('_count') && v.labels.handler === 'mutate-pods')?.value).toBe(1);
  });

  it('admits a ReplicaSet pod that has only generateName', async () => {
    const r = review('pod-create-replicaset');
    const pod = patched<Pod>(r, await admit('/mutate/pods', r));
    expect(pod.spec.serviceAccountName).toBe(TASK_SA);
    expect(pod.spec.volumes?.map((v) => v.name)).toEqual([TOKEN_VOLUME]);
  });

  it('mounts one token per audience', async () => {
    cluster.addTask(liveTask('Active', {}, { token: { audiences: ['tools.example.com', 'vault'], expirationSeconds: 1200 } }));
    const r = review('pod-create');
    const pod = patched<Pod>(r, await admit('/mutate/pods', r));
    expect(pod.spec.volumes?.find((v) => v.name === TOKEN_VOLUME)).toEqual({
      name: TOKEN_VOLUME,
      projected: {
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 1200, audience: 'tools.example.com' } },
          { serviceAccountToken: { path: 'token-1', expirationSeconds: 1200, audience: 'vault' } },
          clusterCa,
        ],
      },
    });
  });

  it('leaves pods without the task label alone', async () => {
    const r = review('pod-create-stolen-sa');
    const response = await admit('/mutate/pods', r);
    expect(response).toEqual({ uid: r.request.uid, allowed: true });
  });

  it('does not touch UPDATEs', async () => {
    const response = await admit('/mutate/pods', review('pod-update-label-changed'));
    expect(response.allowed).toBe(true);
    expect(response.patch).toBeUndefined();
  });

  it.each([
    ['the task is missing', () => cluster.tasks.clear(), 'task team-a/summarize-errors not found'],
    ['the task awaits approval', () => cluster.addTask(liveTask('AwaitingApproval')), 'task team-a/summarize-errors is AwaitingApproval, not Granted or Active'],
    ['the task is revoked', () => cluster.addTask(liveTask('Revoked')), 'task team-a/summarize-errors is Revoked, not Granted or Active'],
    ['the task has no phase yet', () => cluster.addTask({ ...liveTask(), status: {} }), 'task team-a/summarize-errors is Pending, not Granted or Active'],
    ['the grant has expired', () => cluster.addTask(liveTask('Active', { expiresAt: '2026-03-02T09:15:00Z' })), 'task team-a/summarize-errors expired at 2026-03-02T09:15:00Z'],
    ['the grant is unreadable', () => cluster.addTask(liveTask('Granted', { expiresAt: 'soon' })), 'task team-a/summarize-errors has an unreadable grant expiry soon'],
    ['the pod quota is used', () => cluster.boundPods.set(`team-a/${TASK_UID}`, 1), 'task team-a/summarize-errors already has 1 pod (maxPods 1)'],
    ['the pod quota of 2 is used', () => (cluster.addTask(liveTask('Active', {}, { maxPods: 2 })), cluster.boundPods.set(`team-a/${TASK_UID}`, 3)), 'task team-a/summarize-errors already has 3 pods (maxPods 2)'],
    ['the token would live 3607 s', () => cluster.addTask(liveTask('Granted', {}, { token: { expirationSeconds: 3607 } })), /expirationSeconds 3607; it must be an integer from 600 to 2\^32 and not 3607/],
    ['the token would live under 600 s', () => cluster.addTask(liveTask('Granted', {}, { token: { expirationSeconds: 60 } })), /expirationSeconds 60;/],
  ])('refuses when %s', async (_what, arrange, message) => {
    arrange();
    expectDenied(await admit('/mutate/pods', review('pod-create')), message);
    expect(await decisions('mutate-pods', 'denied')).toBe(1);
  });

  it('refuses a pod that names another ServiceAccount instead of rewriting it', async () => {
    const r = review('pod-create');
    Object.assign(r.request.object.spec as Record<string, Json>, { serviceAccountName: 'deployer', serviceAccount: 'deployer' });
    expectDenied(await admit('/mutate/pods', r), /spec.serviceAccountName to deployer; a pod of task team-a\/summarize-errors runs as the task's ServiceAccount tg-summarize-errors-0f6a1c2e/);
  });

  it('refuses a task pod that projects a ServiceAccount token of its own (any audience, any lifetime)', async () => {
    const r = review('pod-create');
    const spec = r.request.object.spec as Record<string, Json>;
    spec.volumes = [...((spec.volumes as Json[]) ?? []), { name: 'year-long', projected: { sources: [{ serviceAccountToken: { path: 't', audience: 'vault', expirationSeconds: 31_536_000 } }] } }];
    expectDenied(await admit('/mutate/pods', r), /pod of task team-a\/summarize-errors projects its own ServiceAccount token \(volume year-long\)/);
    // A volume it calls taskgrant-token is rewritten, not refused: the webhook owns that name.
    const own = review('pod-create');
    (own.request.object.spec as Record<string, Json>).volumes = [{ name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 31_536_000 } }] } }];
    const pod = patched<Pod>(own, await admit('/mutate/pods', own));
    expect(pod.spec.volumes?.find((v) => v.name === TOKEN_VOLUME)).toEqual({ name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 600 } }, clusterCa] } });
  });

  it('accepts a pod that already names the task ServiceAccount', async () => {
    const r = review('pod-create');
    Object.assign(r.request.object.spec as Record<string, Json>, { serviceAccountName: TASK_SA, serviceAccount: TASK_SA });
    expect((await admit('/mutate/pods', r)).allowed).toBe(true);
  });

  it('refuses a pod with neither name nor generateName without holding a slot for it', async () => {
    const r = review('pod-create-replicaset');
    delete (r.request.object.metadata as Record<string, Json>).generateName;
    expectDenied(await admit('/mutate/pods', r), 'pod needs metadata.name or metadata.generateName');
    expect((await admit('/mutate/pods', review('pod-create'))).allowed).toBe(true);
  });

  it('refuses an empty task label', async () => {
    const r = review('pod-create');
    ((r.request.object.metadata as Record<string, Json>).labels as Record<string, Json>)[LABEL_TASK] = '';
    expectDenied(await admit('/mutate/pods', r), /label taskgrant.io\/task is empty/);
  });

  it('counts pods it admitted before the informer sees them, but not a retry of the same pod', async () => {
    const first = review('pod-create');
    expect((await admit('/mutate/pods', first)).allowed).toBe(true);
    // Retrying the same pod (e.g. after a later admission step refused it) is not a second pod.
    expect((await admit('/mutate/pods', review('pod-create'))).allowed).toBe(true);
    expectDenied(await admit('/mutate/pods', review('pod-create-replicaset')), 'task team-a/summarize-errors already has 1 pod (maxPods 1)');
  });

  it('frees a claim whose pod never appeared after the grace window', async () => {
    let now = NOW;
    await start({ now: () => now });
    cluster.claimGraceMs = 1_000;
    expect((await admit('/mutate/pods', review('pod-create'))).allowed).toBe(true);
    now = new Date(NOW.getTime() + 1_001);
    expect((await admit('/mutate/pods', review('pod-create-replicaset'))).allowed).toBe(true);
  });

  it('holds a generateName pod\'s slot under its admission uid and stamps it on the pod', async () => {
    const r = review('pod-create-replicaset');
    const pod = patched<Pod>(r, await admit('/mutate/pods', r));
    expect(pod.metadata?.annotations?.['taskgrant.io/slot']).toBe(r.request.uid);
    expect(cluster.claims.get(TASK_UID)?.map((c) => c.id)).toEqual([r.request.uid]);
  });

  it('refuses, naming why, when no slot can be held', async () => {
    cluster.claim = async () => ({ type: 'refused', message: "the grant is not recorded in its agent's ledger" });
    expectDenied(await admit('/mutate/pods', review('pod-create')), /no pod slot of task team-a\/summarize-errors could be held: the grant is not recorded/);
  });

  it('does not hold a slot for a dry run', async () => {
    const dry = review('pod-create');
    dry.request.dryRun = true;
    expect((await admit('/mutate/pods', dry)).allowed).toBe(true);
    expect((await admit('/mutate/pods', review('pod-create-replicaset'))).allowed).toBe(true);
  });

  it('refuses, without crashing, when a lookup throws', async () => {
    cluster.lookupFailure = new Error('informer cache corrupted');
    const r = review('pod-create');
    const response = await admit('/mutate/pods', r);
    expectDenied(response, /taskgrant could not check this request \(internal error in mutate-pods\)/, 500);
    expect(response.status?.message).not.toMatch(/informer/);
    expect(await decisions('mutate-pods', 'error')).toBe(1);
    expect(logLines.join('')).toMatch(/informer cache corrupted/);
    // The server is still answering.
    expect((await admit('/mutate/pods', review('pod-create-stolen-sa'))).allowed).toBe(true);
  });
});

describe('POST /validate/pods (identity guard)', () => {
  beforeEach(() => {
    cluster.addTask(liveTask('Active'));
    cluster.managedAccounts.set(`team-a/${TASK_SA}`, 'summarize-errors');
  });

  it('refuses a pod borrowing a task ServiceAccount without the task label', async () => {
    expectDenied(await admit('/validate/pods', review('pod-create-stolen-sa')), /ServiceAccount tg-summarize-errors-0f6a1c2e is a taskgrant task identity/);
    expect(await decisions('validate-pods', 'denied')).toBe(1);
  });

  it('recognises a managed ServiceAccount by name even before the cache has it', async () => {
    cluster.managedAccounts.clear();
    expectDenied(await admit('/validate/pods', review('pod-create-stolen-sa')), /is a taskgrant task identity/);
  });

  it('recognises a managed ServiceAccount by label whatever its name', async () => {
    cluster.managedAccounts.set('team-a/agent-runner', 'summarize-errors');
    const r = review('pod-create-stolen-sa');
    Object.assign(r.request.object.spec as Record<string, Json>, { serviceAccountName: 'agent-runner', serviceAccount: 'agent-runner' });
    expectDenied(await admit('/validate/pods', r), /ServiceAccount agent-runner is a taskgrant task identity/);
  });

  it('refuses a pod labelled for another task', async () => {
    cluster.addTask({ ...liveTask('Active'), metadata: { name: 'deploy-hotfix', namespace: 'team-a', uid: 'b0b0b0b0-0000-4000-8000-000000000000' } });
    const r = review('pod-create-stolen-sa');
    (r.request.object.metadata as Record<string, Json>).labels = { [LABEL_TASK]: 'deploy-hotfix' };
    expectDenied(await admit('/validate/pods', r), 'ServiceAccount tg-summarize-errors-0f6a1c2e belongs to task team-a/summarize-errors, not team-a/deploy-hotfix');
  });

  it('admits a task pod after /mutate/pods, confirming ownership from the task when the ServiceAccount cache lags', async () => {
    const r = review('pod-create');
    const mutated = structuredClone(r);
    mutated.request.object = patched(r, await admit('/mutate/pods', r));
    expect(await admit('/validate/pods', mutated)).toEqual({ uid: r.request.uid, allowed: true });
    cluster.managedAccounts.clear();
    expect((await admit('/validate/pods', mutated)).allowed).toBe(true);
    cluster.addTask(liveTask('Active', { serviceAccount: 'tg-summarize-errors-ffffffff' }));
    expectDenied(await admit('/validate/pods', mutated), /cannot be confirmed as the grant of task team-a\/summarize-errors/);
  });

  it('refuses a task pod that carries a ServiceAccount token projection besides taskgrant-token', async () => {
    const r = review('pod-create');
    const mutated = structuredClone(r);
    mutated.request.object = patched(r, await admit('/mutate/pods', r));
    const spec = mutated.request.object.spec as Record<string, Json>;
    spec.volumes = [...((spec.volumes as Json[]) ?? []), { name: 'extra', projected: { sources: [{ configMap: { name: 'x' } }, { serviceAccountToken: { path: 't' } }] } }];
    expectDenied(await admit('/validate/pods', mutated), /pod running as tg-summarize-errors-0f6a1c2e projects its own ServiceAccount token \(volume extra\)/);
  });

  it('refuses a labelled pod that skipped /mutate/pods', async () => {
    const r = review('pod-create');
    Object.assign(r.request.object.spec as Record<string, Json>, { serviceAccountName: TASK_SA, serviceAccount: TASK_SA });
    expectDenied(await admit('/validate/pods', r), /was not admitted by the taskgrant pod mutating webhook/);
  });

  it('admits ordinary pods and pod subresource creations', async () => {
    const plain = review('pod-create-stolen-sa');
    Object.assign(plain.request.object.spec as Record<string, Json>, { serviceAccountName: 'default', serviceAccount: 'default' });
    expect((await admit('/validate/pods', plain)).allowed).toBe(true);
    const binding = review('pod-create-stolen-sa');
    binding.request.subResource = 'binding';
    binding.request.object = { kind: 'Binding', apiVersion: 'v1', metadata: { name: 'debug' }, target: { kind: 'Node', name: 'worker-1' } };
    expect((await admit('/validate/pods', binding)).allowed).toBe(true);
  });

  it.each([
    ['pod-update-label-changed', 'label taskgrant.io/task cannot be changed on an existing pod'],
    ['pod-update-annotation-removed', 'annotation taskgrant.io/task-uid cannot be removed from an existing pod'],
  ] as const)('refuses %s', async (fixture, message) => {
    expectDenied(await admit('/validate/pods', review(fixture)), message);
  });

  it('refuses adding the marks to an existing pod, also through pods/status', async () => {
    const r = review('pod-update-label-changed');
    r.request.subResource = 'status';
    const old = r.request.oldObject as { metadata: { labels: Record<string, string>; annotations: Record<string, string> } };
    delete old.metadata.labels[LABEL_TASK];
    delete old.metadata.annotations[ANNOTATION_POD_TASK_UID];
    expectDenied(await admit('/validate/pods', r), 'label taskgrant.io/task cannot be added to an existing pod');
  });

  it('allows an UPDATE that keeps the marks, even after the task is gone', async () => {
    cluster.tasks.clear();
    cluster.managedAccounts.clear();
    const r = review('pod-update-label-changed');
    r.request.object = structuredClone(r.request.oldObject) as typeof r.request.object;
    (r.request.object.metadata as Record<string, Json>).finalizers = [];
    expect((await admit('/validate/pods', r)).allowed).toBe(true);
  });

  it('allows DELETE', async () => {
    const r = review('pod-update-label-changed');
    r.request.operation = 'DELETE';
    expect((await admit('/validate/pods', r)).allowed).toBe(true);
  });
});
