// No token leaks: a full lifecycle (grant, pod admitted, token minted and used, revocation; an
// approval; a denial) with the operator logging at its most verbose level, then every place
// taskgrant writes to is searched for a JWT and for the exact tokens used in the test.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, statusOfCall, uniqueName } from './harness/kube.js';
import type { TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { repoRoot } from './harness/paths.js';
import { JWT_PATTERN, canApprove, canCreate, healthRequest, userWith, type TestUser } from './harness/security.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import type { AgentTask } from '../src/api/index.js';

const group = 'taskgrant.io';
const version = 'v1alpha1';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;
/** Every bearer token this test held: none may appear anywhere taskgrant writes. */
const tokens: string[] = [];
const taskUids: string[] = [];

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns] } = await startOperatorSuite(['leak'], { logLevel: 'trace' }));
  const requester: TestUser = await userWith(admin, ns, 'requester', [canCreate('agenttasks')]);
  const approver: TestUser = await userWith(admin, ns, 'approver', [canCreate('taskapprovals'), canApprove]);
  tokens.push(requester.token, approver.token);

  const create = async (who: TestUser, name: string, permissions: Array<Record<string, unknown>>) => {
    const task = (await who.custom.createNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: 'agenttasks',
      body: { apiVersion: `${group}/${version}`, kind: 'AgentTask', metadata: { name }, spec: { agent: uniqueName('leaky'), intent: intentOf(...permissions) } },
    })) as AgentTask;
    taskUids.push(task.metadata.uid ?? '');
    return task;
  };

  // 1. Granted, a pod admitted by the webhook, a pod-bound token minted and used, then completed.
  const granted = uniqueName('granted');
  await create(requester, granted, [readPods]);
  await tasks.waitForPhase(ns, granted, 'Granted');
  const pod = await tasks.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: `${granted}-pod`, labels: { 'taskgrant.io/task': granted } }, spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] } } });
  const podToken = await tasks.mintPodToken(ns, pod.spec?.serviceAccountName ?? '', pod);
  tokens.push(podToken);
  const asTask = tasks.asToken(podToken);
  await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: ns }))) === 200, 'the task token to work');
  expect(await statusOfCall(() => asTask.listNamespacedSecret({ namespace: ns }))).toBe(403);
  await tasks.waitForPhase(ns, granted, 'Active');
  await tasks.setPodPhase(ns, pod.metadata?.name ?? '', 'Succeeded');
  await tasks.waitForPhase(ns, granted, 'Completed');
  await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: ns }))) >= 401, 'the task token to stop working');

  // 2. Held for approval, approved by someone else, granted, then revoked by hand.
  const approved = uniqueName('approved');
  const held = await create(requester, approved, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['db'] }]);
  await tasks.waitForPhase(ns, approved, 'AwaitingApproval');
  await approver.custom.createNamespacedCustomObject({
    group,
    version,
    namespace: ns,
    plural: 'taskapprovals',
    body: { apiVersion: `${group}/${version}`, kind: 'TaskApproval', metadata: { name: `${approved}-ok` }, spec: { task: approved, taskUID: held.metadata.uid, decision: 'Approve', reason: 'CHG-7' } },
  });
  await tasks.waitForPhase(ns, approved, 'Granted');
  await tasks.annotate(ns, approved, { 'taskgrant.io/revoke': 'done early' });
  await tasks.waitForPhase(ns, approved, 'Revoked');

  // 3. Denied by a guardrail.
  const denied = uniqueName('denied');
  await create(requester, denied, [{ apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] }]);
  await tasks.waitForPhase(ns, denied, 'Denied');

  // Events are written asynchronously; wait until every transition has one.
  await eventually(async () => (await tasks.core.listNamespacedEvent({ namespace: ns })).items.filter((e) => e.source?.component === 'taskgrant' || e.reportingComponent === 'taskgrant').length >= 6, 'the lifecycle Events');
});

afterAll(async () => {
  await operator?.stop();
});

/** Fails naming the sink when `text` holds a JWT or any token of this test. */
function expectNoToken(sink: string, text: string): void {
  const jwt = JWT_PATTERN.exec(text);
  expect({ sink, jwt: jwt?.[0].slice(0, 24) }).toEqual({ sink, jwt: undefined });
  for (const [i, token] of tokens.entries()) {
    // The signature alone is enough to replay nothing, but finding it means the token was written.
    const signature = token.split('.')[2] ?? token;
    expect({ sink, token: i, found: text.includes(token) || text.includes(signature) }).toEqual({ sink, token: i, found: false });
  }
}

describe('no token leaks', () => {
  it('held real tokens that the scan would recognise', () => {
    expect(tokens).toHaveLength(3);
    for (const token of tokens) expect(token).toMatch(JWT_PATTERN);
  });

  it('writes none to the operator log at trace level', async () => {
    // An audit line follows its transition's Event (exactly-once recording), a moment after the
    // status the scenario waited for.
    await eventually(async () => /"to":"Denied"/.test(readFileSync(operator.logFile, 'utf8')) && /"to":"Completed"/.test(readFileSync(operator.logFile, 'utf8')), 'the audit lines');
    const log = readFileSync(operator.logFile, 'utf8');
    // The scan must be over the right, verbose, complete log: each task's story is in it.
    expect(log).toMatch(/"level":"(debug|trace)"/);
    for (const uid of taskUids) expect(log).toContain(uid);
    expect(log).toMatch(/"to":"Completed"/);
    expect(log).toMatch(/"to":"Revoked"/);
    expect(log).toMatch(/"to":"Denied"/);
    expectNoToken('operator log', log);
  });

  it('masks token-shaped fields if one ever reaches a log call', () => {
    const canary = tokens[2] ?? '';
    operator.logger.info({ token: canary, status: { token: canary }, headers: { authorization: `Bearer ${canary}` }, bearerToken: canary, subject_token: canary, access_token: canary }, 'leak canary');
    const line = readFileSync(operator.logFile, 'utf8').split('\n').find((l) => l.includes('leak canary')) ?? '';
    expect(line).not.toBe('');
    expect(line.match(/\[REDACTED\]/g)).toHaveLength(6);
    expectNoToken('operator log canary line', line);
  });

  it('writes none to an Event', async () => {
    for (const namespace of [ns, operator.config.namespace]) {
      const events = await tasks.core.listNamespacedEvent({ namespace });
      if (namespace === ns) expect(events.items.map((e) => e.reason)).toEqual(expect.arrayContaining(['PolicyAllowed', 'PodAdmitted', 'PodSucceeded', 'ApprovalRequired', 'Manual', 'PolicyDenied']));
      expectNoToken(`Events in ${namespace}`, JSON.stringify(events.items));
    }
  });

  it('writes none to an AgentTask or TaskApproval', async () => {
    for (const plural of ['agenttasks', 'taskapprovals']) {
      const list = (await tasks.custom.listNamespacedCustomObject({ group, version, namespace: ns, plural })) as { items: unknown[] };
      expect(list.items.length).toBeGreaterThan(0);
      expectNoToken(plural, JSON.stringify(list.items));
    }
  });

  it('writes none to its ConfigMaps (grant ledgers)', async () => {
    const configMaps = await tasks.core.listNamespacedConfigMap({ namespace: operator.config.namespace });
    expect(configMaps.items.some((c) => c.metadata?.name?.startsWith('taskgrant-ledger-'))).toBe(true);
    expectNoToken('operator ConfigMaps', JSON.stringify(configMaps.items));
  });

  it('writes none to the metrics', async () => {
    const metrics = await healthRequest(operator.healthPort, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/taskgrant_grants_total [1-9]/);
    expectNoToken('/metrics', metrics.body);
  });

  it('writes none into the Helm chart notes', () => {
    const chart = join(repoRoot(), 'charts', 'taskgrant');
    const notes = join(chart, 'templates', 'NOTES.txt');
    const helm = process.env.TASKGRANT_HELM;
    if (existsSync(notes) && helm && existsSync(helm)) {
      // `helm template` skips NOTES.txt; a client-side dry-run install renders it.
      const rendered = execFileSync(helm, ['install', 'leak-check', chart, '--dry-run=client', '--namespace', 'taskgrant-system'], { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
      expect(rendered).toContain('NOTES:');
      expectNoToken('rendered chart NOTES', rendered.slice(rendered.indexOf('NOTES:')));
      return;
    }
    // No notes to render (or no helm): the chart's template text itself must not carry a token.
    const templates = join(chart, 'templates');
    const files = existsSync(templates) ? readdirSync(templates).map((f) => join(templates, f)).filter((f) => statSync(f).isFile()) : [];
    for (const file of files) expectNoToken(file, readFileSync(file, 'utf8'));
  });
});
