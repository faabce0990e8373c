// Request time: the local API server asks taskgrant's authorizer about every request of a task
// identity (AuthorizationConfiguration: Node, taskgrant, RBAC). Each test uses a real task token
// against the API server and reads what it answers.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import { RISK_CONFIGMAP } from '../src/api/index.js';
import { run } from '../src/cli/run.js';
import { authzFiles } from './harness/controlplane.js';
import { eventually, refusalMessage, statusOfCall, tokenConfig, uniqueName } from './harness/kube.js';
import type { TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { type TaskHelper, intentOf } from './harness/tasks.js';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns] } = await startOperatorSuite(['authz']));
  if (operator.authzPort === undefined) throw new Error('the test cluster was started without the request-time authorizer');
});

afterAll(async () => {
  await operator?.stop();
});

/** A granted task, a pod of it and that pod's token, as a CoreV1Api. */
async function grantedAgent(spec: { verbs?: string[]; maxRequests?: number } = {}): Promise<{ name: string; pod: string; api: k8s.CoreV1Api }> {
  const name = uniqueName('rt');
  const intent = { ...intentOf({ apiGroups: [''], resources: ['pods'], verbs: spec.verbs ?? ['get', 'list'] }), ...(spec.maxRequests ? { maxRequests: spec.maxRequests } : {}) };
  await tasks.create(ns, name, { agent: uniqueName('agent'), intent });
  const task = await tasks.waitForPhase(ns, name, 'Granted');
  const pod = await tasks.createTaskPod(task, `${name}-pod`);
  const token = await tasks.mintPodToken(ns, task.status?.grant?.serviceAccount ?? '', pod);
  return { name, pod: pod.metadata?.name ?? '', api: tasks.asToken(token) };
}

const listPods = (api: k8s.CoreV1Api) => () => api.listNamespacedPod({ namespace: ns });

describe('the request-time authorizer', () => {
  it('lets a call inside the grant go on to RBAC, and refuses one outside it itself', async () => {
    const agent = await grantedAgent();
    await eventually(async () => (await statusOfCall(listPods(agent.api))) === 200, 'the task token to list pods');
    const outside = await refusalMessage(() => agent.api.listNamespacedSecret({ namespace: ns }));
    expect(outside).toMatch(/taskgrant: list secrets in .* is outside AgentTask/);
  });

  it('refuses every call beyond spec.intent.maxRequests, and reports usage and unused permissions in status', async () => {
    const agent = await grantedAgent({ verbs: ['get', 'list', 'watch'], maxRequests: 3 });
    await eventually(async () => (await statusOfCall(listPods(agent.api))) === 200, 'the first call to pass');
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push(await statusOfCall(listPods(agent.api)));
    // However many the first wait took, the budget ends within these four.
    expect(statuses.at(-1)).toBe(403);
    expect(await refusalMessage(listPods(agent.api))).toMatch(/taskgrant: .* has used its budget of 3 requests/);
    const task = await eventually(async () => {
      const t = await tasks.get(ns, agent.name);
      return (t?.status?.usage?.requests ?? 0) >= 5 ? t : undefined;
    }, 'status.usage to count the calls');
    expect(task.status?.usage?.denied).toBeGreaterThanOrEqual(2);
    // Only list was used: get and watch are the least-privilege hint for the next task.
    expect(task.status?.usage?.unusedPermissions).toEqual(expect.arrayContaining([`get pods in ${ns}`, `watch pods in ${ns}`]));
    expect(task.status?.usage?.unusedPermissions).not.toContain(`list pods in ${ns}`);
    // What `kubectl taskgrant explain` shows the next task's author.
    let stdout = '';
    const code = await run(['--kubeconfig', process.env.TASKGRANT_TEST_KUBECONFIG ?? '', 'explain', agent.name, '-n', ns, '--operator-namespace', operator.config.namespace], { stdout: (out) => (stdout += out), stderr: () => undefined });
    expect(code).toBe(0);
    expect(stdout).toMatch(/Usage:[\s\S]*Refused:\s+\d+[\s\S]*Never used:\s+.*get pods in/);
    // At revocation the audit line reports granted against used.
    await tasks.annotate(ns, agent.name, { 'taskgrant.io/revoke': 'done' });
    await tasks.waitForPhase(ns, agent.name, 'Revoked');
    const line = await eventually(async () => readFileSync(operator.logFile, 'utf8').split('\n').find((l) => l.includes(`"uid":"${task.metadata.uid ?? ''}"`) && l.includes('"to":"Revoked"')), 'the revocation audit line');
    expect(JSON.parse(line)).toMatchObject({ audit: true, usage: { granted: 3, requests: expect.any(Number), unusedPermissions: expect.arrayContaining([`get pods in ${ns}`]) } });
  });

  it('refuses the next call once the pod ended, while the Role and RoleBinding still exist', async () => {
    const agent = await grantedAgent();
    await eventually(async () => (await statusOfCall(listPods(agent.api))) === 200, 'the task token to list pods');
    // The controller is held, so nothing is revoked or deleted: only the authorizer can refuse.
    await operator.controller.stop();
    try {
      await tasks.setPodPhase(ns, agent.pod, 'Succeeded');
      const message = await eventually(async () => {
        const status = await statusOfCall(listPods(agent.api));
        return status === 200 ? undefined : refusalMessage(listPods(agent.api));
      }, 'the ended pod to be refused');
      expect(message).toMatch(/taskgrant: the token's pod .* no longer holds the grant/);
      const task = await tasks.get(ns, agent.name);
      expect(['Granted', 'Active']).toContain(task?.status?.phase);
      expect(await tasks.grantObjects(task?.metadata.uid ?? '')).toHaveLength(3);
    } finally {
      operator.controller.start();
    }
  });

  it('fails closed: with nothing answering, or garbage answering, task identities are refused and nobody else is', async () => {
    const agent = await grantedAgent();
    await eventually(async () => (await statusOfCall(listPods(agent.api))) === 200, 'the task token to list pods');
    // An ordinary ServiceAccount allowed by RBAC alone, never sent to taskgrant.
    const plain = uniqueName('plain');
    await tasks.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: plain } } });
    await tasks.rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: plain }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }] } });
    await tasks.rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: { metadata: { name: plain }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: plain }, subjects: [{ kind: 'ServiceAccount', name: plain, namespace: ns }] },
    });
    const plainToken = (await tasks.core.createNamespacedServiceAccountToken({ name: plain, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 600 } } })).status?.token ?? '';
    const plainApi = tokenConfig(admin, plainToken).makeApiClient(k8s.CoreV1Api);
    await eventually(async () => (await statusOfCall(listPods(plainApi))) === 200, 'the plain ServiceAccount to list pods');

    const { target } = authzFiles(dirname(process.env.TASKGRANT_TEST_KUBECONFIG ?? ''));
    const ours = readFileSync(target, 'utf8');
    const garbage: Server = createServer((socket) => socket.end('HTTP/1.1 200 OK\r\n\r\n{"status":{"allowed":true}}'));
    await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
    const garbagePort = (garbage.address() as { port: number }).port;
    try {
      for (const elsewhere of [`127.0.0.1:${garbagePort}`, '127.0.0.1:1']) {
        writeFileSync(target, elsewhere);
        // The relay notices the new target within its poll and drops the API server's open connections.
        // A failed authorizer call is a refusal: 403, or 500 when the API server reports the error itself.
        const refused = await eventually(async () => {
          const status = await statusOfCall(listPods(agent.api));
          return status !== 200 ? status : undefined;
        }, `the task token to be refused with ${elsewhere} answering`);
        expect([403, 500]).toContain(refused);
        expect(await statusOfCall(listPods(plainApi))).toBe(200);
      }
    } finally {
      writeFileSync(target, ours);
      garbage.close();
    }
    await eventually(async () => (await statusOfCall(listPods(agent.api))) === 200, 'the task token to pass again');
  });

  it('refuses a risk level that is not one at the API server (the risk guard)', async () => {
    const message = await eventually(async () => {
      try {
        await tasks.core.createNamespacedConfigMap({ namespace: operator.config.namespace, body: { metadata: { name: RISK_CONFIGMAP }, data: { level: 'panic' } }, dryRun: 'All' });
        return undefined;
      } catch (err) {
        return refusalMessage(() => Promise.reject(err));
      }
    }, 'the risk guard to be enforced');
    expect(message).toMatch(/taskgrant-risk level must be normal, elevated or lockdown, not panic/);
  });

  it('lockdown refuses every task identity on its next call and revokes every live task (PolicyChanged)', async () => {
    const agent = await grantedAgent();
    await eventually(async () => (await statusOfCall(listPods(agent.api))) === 200, 'the task token to list pods');
    await tasks.core.createNamespacedConfigMap({ namespace: operator.config.namespace, body: { metadata: { name: RISK_CONFIGMAP }, data: { level: 'lockdown' } } });
    try {
      const message = await eventually(async () => ((await statusOfCall(listPods(agent.api))) === 403 ? refusalMessage(listPods(agent.api)) : undefined), 'lockdown to refuse the token');
      expect(message).toMatch(/taskgrant: .*lockdown|no AgentTask holds|is Revoked/);
      const revoked = await tasks.waitForPhase(ns, agent.name, 'Revoked', 30_000);
      expect(revoked.status?.reason).toBe('PolicyChanged');
      expect(revoked.status?.message).toMatch(/risk-lockdown/);
    } finally {
      await tasks.core.deleteNamespacedConfigMap({ name: RISK_CONFIGMAP, namespace: operator.config.namespace });
    }
  });
});
