// Task receipts end to end against the real control plane: a real pod-bound token goes through a
// real TokenReview, the receipt verifies against the served JWKS, /v1/verify follows the live
// task (revocation answers "no" before the receipt's exp), and the signing keys live in a real
// Secret that a second key manager (another replica, or a restart) picks up.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import express from 'express';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { TaskOfServiceAccount, TaskPods } from '../src/kube/lookups.js';
import { Reviews } from '../src/kube/reviews.js';
import { SIGNING_KEYS_SECRET, SecretSigningKeyStore } from '../src/kube/signing-keys.js';
import { KeyManager, createReceiptsRouter, type ReceiptsDeps } from '../src/receipts/index.js';
import type { AgentTask } from '../src/api/index.js';
import { eventually, uniqueName } from './harness/kube.js';
import type { TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';

const AUDIENCE = 'https://tools.example.com';

let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;
let keys: KeyManager;
let server: Server;
let issuer: string;

function keyManager(): KeyManager {
  return new KeyManager({ store: new SecretSigningKeyStore(operator.cluster.api, operator.config.namespace), logger: operator.logger });
}

beforeAll(async () => {
  ({ tasks, operator, namespaces: [ns] } = await startOperatorSuite(['rcpt']));
  keys = keyManager();
  await keys.start();
  expect(keys.ready).toBe(true);
  // The issuer is the served URL, so discovery and JWKS resolve for a real JOSE client.
  server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const deps: ReceiptsDeps = {
    issuer,
    keys,
    tokenReviewer: new Reviews(operator.cluster.api),
    tasks: { get: (namespace, name) => operator.cluster.task(namespace, name) },
    taskByServiceAccount: new TaskOfServiceAccount(operator.cluster),
    pods: new TaskPods(operator.cluster),
    metrics: operator.metrics,
    logger: operator.logger,
  };
  server.on('request', express().use(createReceiptsRouter(deps)));
});

afterAll(async () => {
  keys?.stop();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await operator?.stop();
});

type Answer = { status: number; body: Record<string, unknown> };

async function exchange(subjectToken: string): Promise<Answer> {
  const body = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    audience: AUDIENCE,
  });
  const res = await fetch(`${issuer}/v1/token`, { method: 'POST', body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A backend's question; the backend is AUDIENCE unless the question names another (or none: undefined). */
async function verify(question: Record<string, unknown>): Promise<Answer> {
  const res = await fetch(`${issuer}/v1/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ audience: AUDIENCE, ...question }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The first exchange of a new pod: the pod informer may take a moment to see it. */
async function firstReceipt(token: string): Promise<string> {
  let last: Answer | undefined;
  try {
    await eventually(async () => (last = await exchange(token)).status === 200, 'the token exchange to succeed');
  } catch (err) {
    throw new Error(`token exchange kept failing: ${JSON.stringify(last?.body)}`, { cause: err });
  }
  return last!.body.access_token as string;
}

async function grantedTaskWithPod(name: string): Promise<{ task: AgentTask; token: string; sa: string }> {
  await tasks.create(ns, name, { intent: intentOf(readPods) });
  const task = await tasks.waitForPhase(ns, name, 'Granted');
  const sa = task.status?.grant?.serviceAccount ?? '';
  const pod = await tasks.createTaskPod(task, `${name}-pod`);
  return { task, sa, token: await tasks.mintPodToken(ns, sa, pod) };
}

describe('a task pod\'s receipt', () => {
  let task: AgentTask;
  let podToken: string;
  let receipt: string;
  let claims: JWTPayload;

  beforeAll(async () => {
    const name = uniqueName('rcpt');
    ({ task, token: podToken } = await grantedTaskWithPod(name));
    receipt = await firstReceipt(podToken);
  });

  it('verifies with a remote JWKS client against the served keys, naming the task\'s intent', async () => {
    const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { jwks_uri: string; issuer: string };
    expect(discovery.issuer).toBe(issuer);
    const { payload, protectedHeader } = await jwtVerify(receipt, createRemoteJWKSet(new URL(discovery.jwks_uri)), { issuer, audience: AUDIENCE, algorithms: ['ES256'] });
    claims = payload;
    const current = await tasks.get(ns, task.metadata.name);
    expect(protectedHeader.kid).toBe(keys.signingKey(Date.now())?.kid);
    expect(payload).toMatchObject({
      sub: `${ns}/log-summarizer`,
      task_uid: task.metadata.uid,
      task_name: task.metadata.name,
      task_namespace: ns,
      requester: current?.spec.requester?.username ?? '',
      tools: ['kubectl-logs'],
      objective_sha256: createHash('sha256').update(task.spec.intent.objective).digest('hex'),
      pod: `${task.metadata.name}-pod`,
    });
    expect(payload.permissions).toEqual([
      { verb: 'get', apiGroup: '', resource: 'pods', name: '', namespace: ns },
      { verb: 'list', apiGroup: '', resource: 'pods', name: '', namespace: ns },
    ]);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(600);
    expect(payload.exp! * 1000).toBeLessThanOrEqual(Date.parse(task.status?.grant?.expiresAt ?? ''));
  });

  it('is allowed what the task was granted and declared, nothing else', async () => {
    expect((await verify({ token: receipt, verb: 'list', apiGroup: '', resource: 'pods', namespace: ns, name: '' })).body).toMatchObject({ allowed: true });
    expect((await verify({ token: receipt, tool: 'kubectl-logs' })).body).toMatchObject({ allowed: true });
    expect((await verify({ token: receipt, tool: 'kubectl-exec' })).body).toEqual({ allowed: false, reason: expect.stringMatching(/not among the task's declared tools/) });
    // Replayed at another backend (audit finding 12): refused, and a backend must say who it is.
    expect((await verify({ token: receipt, tool: 'kubectl-logs', audience: 'https://billing.example.com' })).body).toEqual({ allowed: false, reason: expect.stringMatching(/aud/) });
    const anonymous = await verify({ token: receipt, tool: 'kubectl-logs', audience: undefined });
    expect(anonymous).toEqual({ status: 400, body: { allowed: false, reason: expect.stringMatching(/audience is required/) } });
    expect((await verify({ token: receipt, verb: 'get', apiGroup: '', resource: 'secrets', namespace: ns, name: '' })).body).toEqual({ allowed: false, reason: expect.stringMatching(/outside the task's grant/) });
  });

  it('stops being allowed as soon as the task is revoked, before it expires, and the pod token no longer exchanges', async () => {
    await tasks.annotate(ns, task.metadata.name, { 'taskgrant.io/revoke': 'receipt test' });
    await eventually(async () => (await verify({ token: receipt, tool: 'kubectl-logs' })).body.allowed === false, 'verify to deny the revoked task', 5_000);
    expect(Date.now()).toBeLessThan(claims.exp! * 1000);
    expect((await verify({ token: receipt, verb: 'list', apiGroup: '', resource: 'pods', namespace: ns, name: '' })).body).toEqual({ allowed: false, reason: expect.stringMatching(/revoked|Revoked/) });

    await tasks.waitForPhase(ns, task.metadata.name, 'Revoked');
    const again = await exchange(podToken);
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: 'invalid_grant' });
  });
});

describe('token exchange refusals', () => {
  it('refuses the token of a pod that is not a task pod', async () => {
    const name = uniqueName('plain');
    await tasks.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
    const pod = await tasks.core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name }, spec: { serviceAccountName: name, automountServiceAccountToken: false, containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] } },
    });
    const token = await tasks.mintPodToken(ns, name, pod);
    expect(await tasks.tokenAuthenticates(token)).toBe(true);
    const res = await exchange(token);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_grant', error_description: expect.stringMatching(/not the grant of a taskgrant task/) });
  });

  it('refuses a task ServiceAccount token that is not bound to the task pod', async () => {
    const { sa, token: podToken } = await grantedTaskWithPod(uniqueName('unbound'));
    await firstReceipt(podToken);
    const minted = await tasks.core.createNamespacedServiceAccountToken({ name: sa, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 600 } } });
    const res = await exchange(minted.status?.token ?? '');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_grant', error_description: expect.stringMatching(/not bound to a pod/) });
  });

  it('refuses the token of a task revoked before it ever exchanged', async () => {
    const name = uniqueName('revoked');
    const { token } = await grantedTaskWithPod(name);
    await tasks.annotate(ns, name, { 'taskgrant.io/revoke': 'never mind' });
    await tasks.waitForPhase(ns, name, 'Revoked');
    const res = await exchange(token);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_grant' });
  });
});

describe('signing keys', () => {
  it('live in a labelled Opaque Secret in the operator namespace', async () => {
    const secret = await tasks.core.readNamespacedSecret({ name: SIGNING_KEYS_SECRET, namespace: operator.config.namespace });
    expect(secret.type).toBe('Opaque');
    expect(secret.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'taskgrant' });
    expect(Object.keys(secret.data ?? {})).toEqual(['keys.json']);
  });

  it('persist: a new key manager (a restart, another replica) signs and publishes the same keys', async () => {
    const other = keyManager();
    await other.start();
    other.stop();
    const now = Date.now();
    expect(other.signingKey(now)?.kid).toBe(keys.signingKey(now)?.kid);
    expect(other.publishedKeys(now).map((k) => k.kid)).toEqual(keys.publishedKeys(now).map((k) => k.kid));
  });

  it('converge across replicas when both rotate at once: the loser of the write race adopts the winner\'s ring', async () => {
    const store = new SecretSigningKeyStore(operator.cluster.api, operator.config.namespace);
    const other = keyManager();
    await other.start();
    other.stop();
    const before = keys.publishedKeys(Date.now()).length;
    const signing = keys.signingKey(Date.now())?.kid;
    // `racer` reads, then `other` rotates and saves, then `racer` saves with what it read: a real 409.
    let raced = false;
    const racer = new KeyManager({
      logger: operator.logger,
      store: {
        load: () => store.load(),
        save: async (document, resourceVersion) => {
          if (!raced) {
            raced = true;
            await other.rotateNow();
          }
          return store.save(document, resourceVersion);
        },
      },
    });
    await racer.start();
    racer.stop();
    await racer.rotateNow();
    await keys.sync();
    const now = Date.now();
    const kids = keys.publishedKeys(now).map((k) => k.kid);
    expect(kids).toHaveLength(before + 1);
    expect(racer.publishedKeys(now).map((k) => k.kid)).toEqual(kids);
    expect(other.publishedKeys(now).map((k) => k.kid)).toEqual(kids);
    // The new key is published ahead of signing: the current key is unchanged for now.
    expect(keys.signingKey(now)?.kid).toBe(signing);
    const jwks = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toEqual(kids);
  });
});
