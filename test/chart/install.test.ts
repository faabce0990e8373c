// helm install into the local control plane, then the operator run with nothing but the chart's
// ServiceAccount token: every permission it uses must come from the chart's RBAC, and the grantable
// ceiling must stop a grant the policies allow. The operator runs as a local process and the webhook
// configurations point at it (webhook.url), exactly as with the operator outside the cluster; the
// Deployment's pods stay unscheduled (the test node admits only pods that tolerate it).
// test/chart/in-cluster.test.ts runs the chart's own pods.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeApi } from '../../src/kube/api.js';
import { LeaderElector } from '../../src/kube/leader.js';
import { freePort } from '../harness/controlplane.js';
import { adminConfig, createNamespace, eventually, refusalMessage, statusOfCall, tokenConfig, uniqueName } from '../harness/kube.js';
import { repoRoot } from '../harness/paths.js';
import { spawnOperator, type OperatorProcess } from '../harness/process.js';
import { canApprove, canCreate, metricValue, userWith } from '../harness/security.js';
import { TaskHelper, intentOf, readPods } from '../harness/tasks.js';
import { chartDir, chartOperatorArgs, helmOk, valuesFile } from './helm.js';

const RELEASE = 'tgchart';
const FULLNAME = 'tgchart-taskgrant';
const LEASE = 'tgchart-leader';
const group = 'taskgrant.io';
const version = 'v1alpha1';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let releaseNs: string;
let workNs: string;
let operatorKubeconfig: string;
let operatorKc: k8s.KubeConfig;
let operator: OperatorProcess | undefined;
let installed = false;

const kubeconfigPath = () => process.env.TASKGRANT_TEST_KUBECONFIG ?? '';
const logDir = () => join(process.env.TASKGRANT_TEST_CONTROLPLANE_DIR ?? join(repoRoot(), '.local'), 'operator-logs');

beforeAll(async () => {
  admin = adminConfig();
  tasks = new TaskHelper(admin);
  releaseNs = uniqueName('tgchart-system');
  workNs = await createNamespace(admin, 'tgchart-work');
  const webhookPort = await freePort();
  // The operator here is a local process this suite stops itself, so nothing would answer the
  // uninstall hook (test/chart/in-cluster.test.ts proves the hook with the chart's own pods).
  const values = valuesFile({ webhook: { url: `https://127.0.0.1:${webhookPort}` }, leaderElection: { leaseName: LEASE }, logLevel: 'debug', uninstall: { revokeLiveTasks: false } });
  await helmOk(['install', RELEASE, chartDir, '--namespace', releaseNs, '--create-namespace', '--kubeconfig', kubeconfigPath(), '-f', values]);
  installed = true;

  // The operator's credentials: a token of the chart's ServiceAccount, nothing else.
  const token = (await tasks.core.createNamespacedServiceAccountToken({ name: FULLNAME, namespace: releaseNs, body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token;
  if (!token) throw new Error('no token for the operator ServiceAccount');
  operatorKc = tokenConfig(admin, token);
  mkdirSync(logDir(), { recursive: true });
  operatorKubeconfig = join(logDir(), `${releaseNs}.kubeconfig`);
  writeFileSync(operatorKubeconfig, operatorKc.exportConfig(), { mode: 0o600 });

  operator = await spawnOperator({
    kubeconfig: operatorKubeconfig,
    namespace: releaseNs,
    logFile: join(logDir(), `${releaseNs}.log`),
    extra: chartOperatorArgs({ fullname: FULLNAME, webhookPort, leaseName: LEASE }),
  });
}, 120_000);

afterAll(async () => {
  await operator?.kill('SIGTERM');
  // The webhook configurations fail closed and point at the stopped process: never leave them.
  if (installed) await helmOk(['uninstall', RELEASE, '--namespace', releaseNs, '--kubeconfig', kubeconfigPath(), '--wait']);
}, 120_000);

const operatorUser = () => `system:serviceaccount:${releaseNs}:${FULLNAME}`;

async function operatorCan(attributes: k8s.V1ResourceAttributes): Promise<boolean> {
  const review = await admin.makeApiClient(k8s.AuthorizationV1Api).createSubjectAccessReview({
    body: { spec: { user: operatorUser(), groups: ['system:serviceaccounts', `system:serviceaccounts:${releaseNs}`, 'system:authenticated'], resourceAttributes: attributes } },
  });
  return review.status?.allowed === true;
}

describe('helm install', () => {
  it('installs the release with its CRDs, webhooks and identity guard', async () => {
    const status = await helmOk(['status', RELEASE, '--namespace', releaseNs, '--kubeconfig', kubeconfigPath()]);
    expect(status).toMatch(/STATUS: deployed/);
    expect(status).toMatch(/kubectl get agenttasks -w/);
    const admission = admin.makeApiClient(k8s.AdmissionregistrationV1Api);
    await admission.readMutatingWebhookConfiguration({ name: FULLNAME });
    await admission.readValidatingAdmissionPolicy({ name: `${FULLNAME}-identity-guard` });
    await admin.makeApiClient(k8s.ApiextensionsV1Api).readCustomResourceDefinition({ name: 'agenttasks.taskgrant.io' });
  });

  it('lets the operator keep the caBundle of its own webhook configurations', async () => {
    const admission = admin.makeApiClient(k8s.AdmissionregistrationV1Api);
    await eventually(async () => {
      const config = await admission.readValidatingWebhookConfiguration({ name: FULLNAME });
      return config.webhooks?.every((w) => (w.clientConfig.caBundle ?? '').length > 0);
    }, 'the operator to inject its CA');
  });
});

describe("the operator's own RBAC", () => {
  const allowed: Array<[string, k8s.V1ResourceAttributes]> = [
    ['watch AgentTasks everywhere', { group, resource: 'agenttasks', verb: 'watch' }],
    ['write an AgentTask status', { group, resource: 'agenttasks', subresource: 'status', verb: 'patch', namespace: 'team-a' }],
    ['watch TaskApprovals everywhere', { group, resource: 'taskapprovals', verb: 'watch' }],
    ['delete an ended AgentTask and its approvals (retention)', { group, resource: 'agenttasks', verb: 'delete', namespace: 'team-a' }],
    ['delete a TaskApproval (retention)', { group, resource: 'taskapprovals', verb: 'delete', namespace: 'team-a' }],
    ['watch pods everywhere', { resource: 'pods', verb: 'watch' }],
    ['create a task ServiceAccount', { resource: 'serviceaccounts', verb: 'create', namespace: 'team-a' }],
    ['delete a task ServiceAccount', { resource: 'serviceaccounts', verb: 'delete', namespace: 'team-a' }],
    ['create a task Role', { group: 'rbac.authorization.k8s.io', resource: 'roles', verb: 'create', namespace: 'team-a' }],
    ['delete a task RoleBinding', { group: 'rbac.authorization.k8s.io', resource: 'rolebindings', verb: 'delete', namespace: 'team-a' }],
    ['record an Event', { resource: 'events', verb: 'create', namespace: 'team-a' }],
    ['review a token', { group: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create' }],
    ['review an approver', { group: 'authorization.k8s.io', resource: 'subjectaccessreviews', verb: 'create' }],
    ['patch its own webhook configuration', { group: 'admissionregistration.k8s.io', resource: 'mutatingwebhookconfigurations', verb: 'patch', name: FULLNAME }],
    ['write a ledger ConfigMap in its namespace', { resource: 'configmaps', verb: 'update', namespace: '<release>' }],
    ['read its TLS Secret', { resource: 'secrets', verb: 'get', name: 'taskgrant-webhook-tls', namespace: '<release>' }],
    ['update its signing keys', { resource: 'secrets', verb: 'update', name: 'taskgrant-signing-keys', namespace: '<release>' }],
    ['read its audit key', { resource: 'secrets', verb: 'get', name: 'taskgrant-audit-key', namespace: '<release>' }],
    ['read an Event (its own audit record)', { resource: 'events', verb: 'get', namespace: 'team-a' }],
    ['watch labelled namespaces (sensitivity floors)', { resource: 'namespaces', verb: 'watch' }],
    ['renew its Lease', { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', name: LEASE, namespace: '<release>' }],
    ['read pod logs (the ceiling)', { resource: 'pods', subresource: 'log', verb: 'get', namespace: 'team-a' }],
  ];
  const refused: Array<[string, k8s.V1ResourceAttributes]> = [
    ['read Secrets of other namespaces', { resource: 'secrets', verb: 'get', namespace: 'team-a' }],
    ['list Secrets of its own namespace', { resource: 'secrets', verb: 'list', namespace: '<release>' }],
    ["read Helm's release records", { resource: 'secrets', verb: 'get', name: `sh.helm.release.v1.${RELEASE}.v1`, namespace: '<release>' }],
    ['escalate Roles', { group: 'rbac.authorization.k8s.io', resource: 'roles', verb: 'escalate', namespace: 'team-a' }],
    ['bind ClusterRoles', { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb: 'bind', name: 'cluster-admin' }],
    ['impersonate users', { group: '', resource: 'users', verb: 'impersonate', name: 'admin' }],
    ['impersonate ServiceAccounts', { resource: 'serviceaccounts', verb: 'impersonate', namespace: 'team-a' }],
    ['mint ServiceAccount tokens', { resource: 'serviceaccounts', subresource: 'token', verb: 'create', namespace: 'team-a' }],
    ['create pods', { resource: 'pods', verb: 'create', namespace: 'team-a' }],
    ['exec into pods', { resource: 'pods', subresource: 'exec', verb: 'create', namespace: 'team-a' }],
    ['approve AgentTasks', { group, resource: 'agenttasks', verb: 'approve', namespace: 'team-a' }],
    ['create TaskApprovals', { group, resource: 'taskapprovals', verb: 'create', namespace: 'team-a' }],
    ["patch other webhook configurations", { group: 'admissionregistration.k8s.io', resource: 'mutatingwebhookconfigurations', verb: 'patch', name: 'someone-else' }],
    ['delete its own webhook configuration', { group: 'admissionregistration.k8s.io', resource: 'validatingwebhookconfigurations', verb: 'delete', name: FULLNAME }],
    ['touch the identity guard', { group: 'admissionregistration.k8s.io', resource: 'validatingadmissionpolicies', verb: 'update', name: `${FULLNAME}-identity-guard` }],
    ['update CRDs', { group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', verb: 'update', name: 'agenttasks.taskgrant.io' }],
    ['write ClusterRoleBindings', { group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings', verb: 'create' }],
    ['write ConfigMaps outside its namespace', { resource: 'configmaps', verb: 'create', namespace: 'team-a' }],
    ['take another Lease', { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', name: 'kube-controller-manager', namespace: '<release>' }],
    ['delete namespaces', { resource: 'namespaces', verb: 'delete', name: 'team-a' }],
    ['write nodes', { resource: 'nodes', verb: 'patch', name: 'node-1' }],
  ];
  const inRelease = (a: k8s.V1ResourceAttributes) => (a.namespace === '<release>' ? { ...a, namespace: releaseNs } : a);

  it.each(allowed)('may %s', async (_what, attributes) => {
    expect(await operatorCan(inRelease(attributes))).toBe(true);
  });

  it.each(refused)('may not %s', async (_what, attributes) => {
    expect(await operatorCan(inRelease(attributes))).toBe(false);
  });
});

describe("the operator guard: the operator's writes in its namespace, by name", () => {
  const refusal = async (write: () => Promise<unknown>): Promise<string> => {
    try {
      await write();
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('the write was expected to be refused but succeeded');
  };
  const operatorApi = () => new KubeApi(operatorKc);

  it('refuses a ServiceAccount token Secret (a long-lived token for its own identity), whatever its name', async () => {
    const secret = (name: string) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/service-account-token',
      metadata: { name, namespace: releaseNs, annotations: { 'kubernetes.io/service-account.name': FULLNAME } },
    });
    const message = await eventually(() => refusal(() => operatorApi().create(`/api/v1/namespaces/${releaseNs}/secrets`, secret('persist'))), 'the operator guard to refuse');
    expect(message).toMatch(/taskgrant writes only the Secrets taskgrant-webhook-tls, taskgrant-signing-keys and taskgrant-audit-key, not persist/);
    expect(await refusal(() => operatorApi().create(`/api/v1/namespaces/${releaseNs}/secrets`, secret('taskgrant-signing-keys')))).toMatch(/only Opaque Secrets/);
  });

  it('refuses rewriting a policy ConfigMap, or planting one', async () => {
    const path = `/api/v1/namespaces/${releaseNs}/configmaps/${FULLNAME}-policy-settings`;
    const current = await operatorApi().get<{ data: Record<string, string> }>(path);
    const permitAll = { ...current, data: { 'chart-settings.cedar': '@id("open") permit (principal, action, resource);' } };
    expect(await refusal(() => operatorApi().replace(path, permitAll))).toMatch(/writes and deletes only its grant ledgers \(taskgrant-ledger-\*\) and taskgrant-modes, not ConfigMap/);
    const planted = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'taskgrant-ledger-planted', namespace: releaseNs, labels: { 'taskgrant.io/policy': 'true' } }, data: {} };
    expect(await refusal(() => operatorApi().create(`/api/v1/namespaces/${releaseNs}/configmaps`, planted))).toMatch(/never writes policy ConfigMaps/);
  });

  it('deletes its own ledgers, and refuses deleting a policy ConfigMap (which would loosen policy)', async () => {
    expect(await refusal(() => operatorApi().delete(`/api/v1/namespaces/${releaseNs}/configmaps/${FULLNAME}-policy-settings`))).toMatch(/writes and deletes only its grant ledgers/);
    const ledger = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'taskgrant-ledger-deadbeef', namespace: releaseNs }, data: { grants: '[]' } };
    await operatorApi().create(`/api/v1/namespaces/${releaseNs}/configmaps`, ledger);
    expect(await operatorApi().delete(`/api/v1/namespaces/${releaseNs}/configmaps/taskgrant-ledger-deadbeef`)).toBe(true);
  });
});

describe('the task lifecycle through the operator running as the chart ServiceAccount', () => {
  let granted: { name: string; uid: string; token: string };

  it('grants a task reading pods; the pod-bound token of its ServiceAccount can list pods', async () => {
    const name = uniqueName('chart-read');
    const reconcileErrors = async () => metricValue(await fetch(`http://127.0.0.1:${operator?.healthPort ?? 0}/metrics`).then((r) => r.text()), 'taskgrant_reconcile_errors_total');
    const errorsBefore = await reconcileErrors();
    await tasks.create(workNs, name, { agent: uniqueName('agent'), intent: intentOf(readPods) });
    const task = await tasks.waitForPhase(workNs, name, 'Granted', 30_000);
    // Granted by the first reconcile: without bind, the API server refuses a RoleBinding whose
    // Role is still being created, so the operator must write the Role first.
    expect(await reconcileErrors()).toBe(errorsBefore);
    expect(task.spec.requester?.username).toBeTruthy(); // stamped by the webhook, through the chart's configuration
    // The pod goes through the mutating webhook (labelled) and the identity guard.
    const pod = await tasks.core.createNamespacedPod({ namespace: workNs, body: { metadata: { name: `${name}-pod`, labels: { 'taskgrant.io/task': name } }, spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] } } });
    const serviceAccount = task.status?.grant?.serviceAccount ?? '';
    expect(pod.spec?.serviceAccountName).toBe(serviceAccount);
    const token = await tasks.mintPodToken(workNs, serviceAccount, pod);
    const asTask = tasks.asToken(token);
    await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: workNs }))) === 200, 'the task token to list pods');
    expect(await statusOfCall(() => asTask.listNamespacedSecret({ namespace: workNs }))).toBe(403);
    granted = { name, uid: task.metadata.uid ?? '', token };
  });

  it('fails a task that policy allows once approved but that exceeds the ceiling, leaving nothing behind', async () => {
    const name = uniqueName('chart-secrets');
    await tasks.create(workNs, name, { agent: uniqueName('agent'), intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) });
    const waiting = await tasks.waitForPhase(workNs, name, 'AwaitingApproval', 30_000);
    // Someone else than the requester, allowed to approve in this namespace.
    const approver = await userWith(admin, workNs, uniqueName('approver'), [canCreate('taskapprovals'), canApprove]);
    await approver.custom.createNamespacedCustomObject({
      group,
      version,
      namespace: workNs,
      plural: 'taskapprovals',
      body: { apiVersion: `${group}/${version}`, kind: 'TaskApproval', metadata: { name: `${name}-ok` }, spec: { task: name, taskUID: waiting.metadata.uid, decision: 'Approve', reason: 'on-call approved' } },
    });
    const failed = await tasks.waitForPhase(workNs, name, 'Failed', 30_000);
    expect(failed.status?.reason).toBe('CeilingExceeded');
    expect(failed.status?.decision?.allowed).toBe(true);
    expect(failed.status?.message).toMatch(/ceiling/);
    expect(await tasks.grantObjects(failed.metadata.uid ?? '')).toEqual([]);
  });

  it('revokes on the revoke annotation: objects gone, the token powerless', async () => {
    await tasks.annotate(workNs, granted.name, { 'taskgrant.io/revoke': 'chart-test' });
    const revoked = await tasks.waitForPhase(workNs, granted.name, 'Revoked', 30_000);
    expect(revoked.status?.reason).toBe('Manual');
    await eventually(async () => (await tasks.grantObjects(granted.uid)).length === 0, 'the grant objects to be deleted');
    const asTask = tasks.asToken(granted.token);
    await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: workNs }))) >= 401, 'the token to stop working');
  });
});

describe("the chart's identity guard", () => {
  const pod = (name: string, spec: Partial<k8s.V1PodSpec>, annotations: Record<string, string> = {}): k8s.V1Pod => ({
    metadata: { name, annotations },
    spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }], ...spec },
  });

  it('refuses an unlabelled pod running as a tg- ServiceAccount, with no webhook involved', async () => {
    // The ServiceAccount exists (else the ServiceAccount admission plugin refuses first).
    await tasks.core.createNamespacedServiceAccount({ namespace: workNs, body: { metadata: { name: 'tg-payroll-0a1b2c3d' } } });
    // eventually: the API server takes a moment to start enforcing a newly created policy.
    const message = await eventually(
      () => refusalMessage(() => tasks.core.createNamespacedPod({ namespace: workNs, body: pod(uniqueName('thief'), { serviceAccountName: 'tg-payroll-0a1b2c3d' }) })),
      'the identity guard to refuse',
    );
    expect(message).toMatch(new RegExp(`ValidatingAdmissionPolicy '${FULLNAME}-identity-guard'`));
    expect(message).toMatch(/ServiceAccount tg-payroll-0a1b2c3d is reserved for taskgrant/);
  });

  it('refuses re-annotating a pod with another task uid', async () => {
    const name = uniqueName('plain');
    await tasks.core.createNamespacedPod({ namespace: workNs, body: pod(name, {}, { 'taskgrant.io/task-uid': '00000000-0000-4000-8000-000000000001' }) });
    let attempt = 1;
    const message = await eventually(
      () =>
        refusalMessage(() =>
          tasks.core.patchNamespacedPod(
            { namespace: workNs, name, body: { metadata: { annotations: { 'taskgrant.io/task-uid': `00000000-0000-4000-8000-${String(++attempt).padStart(12, '0')}` } } } },
            k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
          ),
        ),
      'the identity guard to refuse',
    );
    expect(message).toMatch(/taskgrant\.io\/task-uid annotation of a pod is set when the pod is created/);
  });
});

describe('helm upgrade', () => {
  it('keeps the caBundle the operator wrote, so admission keeps working across an upgrade', async () => {
    const admission = admin.makeApiClient(k8s.AdmissionregistrationV1Api);
    const before = (await admission.readMutatingWebhookConfiguration({ name: FULLNAME })).webhooks?.map((w) => w.clientConfig.caBundle);
    await helmOk(['upgrade', RELEASE, chartDir, '--namespace', releaseNs, '--kubeconfig', kubeconfigPath(), '--reuse-values', '--set', 'logLevel=info']);
    const after = (await admission.readMutatingWebhookConfiguration({ name: FULLNAME })).webhooks?.map((w) => w.clientConfig.caBundle);
    expect(after).toEqual(before);
    const name = uniqueName('after-upgrade');
    await tasks.create(workNs, name, { agent: uniqueName('agent'), intent: intentOf(readPods) });
    await tasks.waitForPhase(workNs, name, 'Granted', 30_000);
  });
});

describe('leader election under the chart Role', () => {
  it('elects exactly one of two replicas on the chart Lease, hands over on release, and cannot take any other Lease', async () => {
    // The operator process goes first: from here the Lease is the electors' alone.
    await operator?.kill('SIGTERM');
    operator = undefined;
    const api = new KubeApi(operatorKc);
    const timings = { leaseDurationSeconds: 3, renewDeadlineMs: 2_000, retryPeriodMs: 250 };
    const a = new LeaderElector({ api, namespace: releaseNs, name: LEASE, identity: 'replica-a', ...timings });
    const b = new LeaderElector({ api, namespace: releaseNs, name: LEASE, identity: 'replica-b', ...timings });
    const other = new LeaderElector({ api, namespace: releaseNs, name: 'not-the-chart-lease', identity: 'replica-c', ...timings });
    try {
      a.start();
      b.start();
      other.start();
      const first = await eventually(async () => (a.isLeader ? a : b.isLeader ? b : undefined), 'a leader', 10_000);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(Number(a.isLeader) + Number(b.isLeader)).toBe(1);
      const second = first === a ? b : a;
      await first.stop();
      await eventually(async () => second.isLeader, 'the other replica to take over', 2_000);
      expect(other.isLeader).toBe(false); // get/update are limited to the chart's Lease name
    } finally {
      await Promise.all([a.stop(), b.stop(), other.stop()]);
    }
  });
});
