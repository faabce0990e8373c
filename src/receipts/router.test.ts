import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { SignJWT, createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import type { AgentTask } from '../api/index.js';
import { KeyRing, generateSigningKey } from './keys.js';
import {
  Clock,
  EXCHANGE,
  FakeReviewer,
  ISSUER,
  NS,
  OBJECTIVE,
  POD,
  POD_TOKEN,
  ReceiptCluster,
  T0,
  TASK,
  TASK_UID,
  form,
  podBound,
  serve,
  task,
  taskPod,
  type Served,
} from './kit.test-support.js';
import type { KeySource, ReceiptsOptions } from './ports.js';

const MIN = 60_000;

let clock: Clock;
let cluster: ReceiptCluster;
let reviewer: FakeReviewer;
let ring: KeyRing;
let served: Served;

/** The ring a test may swap (rotate) while the server runs. */
const keys: KeySource = { signingKey: (now) => ring.signingKey(now), publishedKeys: (now) => ring.publishedKeys(now) };

async function start(extra: Partial<ReceiptsOptions> = {}): Promise<void> {
  await served?.close();
  served = await serve(cluster, reviewer, keys, clock, extra);
}

beforeEach(async () => {
  clock = new Clock();
  cluster = new ReceiptCluster();
  reviewer = new FakeReviewer();
  ring = await KeyRing.create(T0 - 60 * MIN);
  await start();
});
afterEach(() => served.close());

type Answer = { status: number; headers: Headers; body: Record<string, unknown> };

async function post(path: string, body: string, contentType: string): Promise<Answer> {
  const res = await fetch(`${served.base}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

const exchange = (fields: Record<string, string | string[]> = EXCHANGE) => post('/v1/token', form(fields), 'application/x-www-form-urlencoded');
/** A backend's question; it names itself (the exchange's audience) unless the test says otherwise. */
const verify = (body: Record<string, unknown>) => post('/v1/verify', JSON.stringify({ audience: EXCHANGE.audience, ...body }), 'application/json');

async function receipt(fields: Record<string, string | string[]> = EXCHANGE): Promise<string> {
  const res = await exchange(fields);
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

async function jwks(): Promise<JSONWebKeySet> {
  const res = await fetch(`${served.base}/.well-known/jwks.json`);
  expect(res.status).toBe(200);
  return (await res.json()) as JSONWebKeySet;
}

async function requests(endpoint: string, result: string): Promise<number> {
  return (await served.metrics.receiptRequests.get()).values.find((v) => v.labels.endpoint === endpoint && v.labels.result === result)?.value ?? 0;
}
async function issued(): Promise<number> {
  return (await served.metrics.receiptsIssued.get()).values[0]?.value ?? 0;
}

describe('POST /v1/token', () => {
  it('exchanges a task pod\'s token for an ES256 receipt naming the task\'s intent', async () => {
    const res = await exchange();
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({
      access_token: expect.any(String),
      issued_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_type: 'Bearer',
      expires_in: 600,
    });
    const token = res.body.access_token as string;
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid: ring.signingKey(clock.ms)?.kid, typ: 'JWT' });
    const { payload } = await jwtVerify(token, createLocalJWKSet(await jwks()), { issuer: ISSUER, audience: EXCHANGE.audience, currentDate: clock.now() });
    const iat = T0 / 1000;
    expect(payload).toEqual({
      iss: ISSUER,
      sub: `${NS}/log-summarizer`,
      aud: EXCHANGE.audience,
      iat,
      exp: iat + 600,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      task_uid: TASK_UID,
      task_name: TASK,
      task_namespace: NS,
      agent: 'log-summarizer',
      requester: 'alice@example.com',
      permissions: [
        { verb: 'get', apiGroup: '', resource: 'pods', name: '', namespace: NS },
        { verb: 'get', apiGroup: '', resource: 'pods/log', name: '', namespace: NS },
        { verb: 'list', apiGroup: '', resource: 'pods', name: '', namespace: NS },
        { verb: 'list', apiGroup: '', resource: 'pods/log', name: '', namespace: NS },
        { verb: 'get', apiGroup: '', resource: 'configmaps', name: 'app-config', namespace: NS },
      ],
      tools: ['kubectl-logs'],
      objective_sha256: createHash('sha256').update(OBJECTIVE).digest('hex'),
      pod: POD,
    });
    expect(reviewer.seen).toEqual([POD_TOKEN]);
    expect(await issued()).toBe(1);
    expect(await requests('token', 'issued')).toBe(1);
    const log = served.logLines.join('\n');
    expect(log).toContain(payload.jti);
    expect(log).toContain(TASK_UID);
    expect(log).not.toContain(POD_TOKEN);
    expect(log).not.toContain(token.split('.')[2]);
  });

  it('never lets a receipt outlive the grant', async () => {
    cluster.put(task({ expiresAt: T0 + 3 * MIN + 500 }));
    const res = await exchange();
    expect(res.body.expires_in).toBe(180);
    const { payload } = await jwtVerify(res.body.access_token as string, createLocalJWKSet(await jwks()), { currentDate: clock.now() });
    expect(payload.exp).toBe(Math.floor((T0 + 3 * MIN + 500) / 1000));
  });

  const malformed: Array<[string, Record<string, string | string[]>, string, RegExp]> = [
    ['no grant_type', { ...EXCHANGE, grant_type: '' }, 'invalid_request', /grant_type is required/],
    ['another grant type', { ...EXCHANGE, grant_type: 'client_credentials' }, 'unsupported_grant_type', /token-exchange/],
    ['a repeated grant_type', { ...EXCHANGE, grant_type: [EXCHANGE.grant_type, EXCHANGE.grant_type] }, 'invalid_request', /given once/],
    ['no subject_token', { ...EXCHANGE, subject_token: '' }, 'invalid_request', /subject_token is required/],
    ['another subject_token_type', { ...EXCHANGE, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' }, 'invalid_request', /subject_token_type/],
    ['an actor_token', { ...EXCHANGE, actor_token: 'x', actor_token_type: EXCHANGE.subject_token_type }, 'invalid_request', /actor_token/],
    ['another requested_token_type', { ...EXCHANGE, requested_token_type: 'urn:ietf:params:oauth:token-type:saml2' }, 'invalid_request', /requested_token_type/],
    ['no audience', { ...EXCHANGE, audience: '' }, 'invalid_request', /audience is required/],
    ['two audiences', { ...EXCHANGE, audience: ['a', 'b'] }, 'invalid_target', /exactly one audience/],
    ['an audience of 254 characters', { ...EXCHANGE, audience: 'a'.repeat(254) }, 'invalid_target', /1\.\.253/],
    ['an audience with a space', { ...EXCHANGE, audience: 'my backend' }, 'invalid_target', /without spaces/],
    ['a resource', { ...EXCHANGE, resource: 'https://x' }, 'invalid_target', /resource is not supported/],
  ];
  it.each(malformed)('refuses a request with %s before reviewing the token', async (_what, fields, error, description) => {
    const res = await exchange(fields);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error, error_description: expect.stringMatching(description) });
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(reviewer.seen).toEqual([]);
    expect(await requests('token', error)).toBe(1);
  });

  it('accepts an audience of exactly 253 characters', async () => {
    expect((await exchange({ ...EXCHANGE, audience: 'a'.repeat(253) })).status).toBe(200);
  });

  it('refuses a JSON body: the token endpoint takes a form', async () => {
    const res = await post('/v1/token', JSON.stringify(EXCHANGE), 'application/json');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/x-www-form-urlencoded/) });
  });

  it('refuses an oversized form with 413', async () => {
    const res = await exchange({ ...EXCHANGE, subject_token: 'x'.repeat(20_000) });
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ error: 'invalid_request' });
  });

  it('answers 405 to anything but POST', async () => {
    const res = await fetch(`${served.base}/v1/token`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });

  const otherTask = (t: AgentTask) => ({ ...t, status: { ...t.status, grant: { ...t.status!.grant!, serviceAccount: 'tg-someone-else-12345678' } } });
  const refusals: Array<[string, () => void, RegExp]> = [
    ['an unauthenticated token', () => reviewer.known.delete(POD_TOKEN), /not an authenticated Kubernetes token/],
    ['a user\'s token', () => reviewer.known.set(POD_TOKEN, podBound('alice@example.com')), /is not a ServiceAccount/],
    ['a token of a ServiceAccount that is no task\'s', () => reviewer.known.set(POD_TOKEN, podBound(`system:serviceaccount:${NS}:default`)), /not the grant of a taskgrant task/],
    ['a token of an account the task does not name as its grant', () => cluster.put(otherTask(task())), /not the grant of a taskgrant task/],
    ['a token not bound to a pod', () => reviewer.known.set(POD_TOKEN, podBound(undefined, null)), /not bound to a pod/],
    ['a token bound to a pod that is not a task pod', () => cluster.podFacts.clear(), /is not a task pod/],
    ['a token bound to another task\'s pod', () => cluster.podFacts.set(`${NS}/${POD}`, taskPod({ labels: { 'taskgrant.io/task': 'other' } })), /not a pod of task/],
    ['a token bound to a pod carrying another task uid', () => cluster.podFacts.set(`${NS}/${POD}`, taskPod({ annotations: { 'taskgrant.io/task-uid': 'stale' } })), /not a pod of task/],
    ['a token bound to a pod running as another account', () => cluster.podFacts.set(`${NS}/${POD}`, taskPod({ serviceAccountName: 'default' })), /does not run as/],
    ['a token bound to an earlier pod of the same name', () => reviewer.known.set(POD_TOKEN, podBound(undefined, POD, 'an-older-pod-uid')), /not the pod the token was bound to/],
    ['a token bound to a finished pod', () => cluster.podFacts.set(`${NS}/${POD}`, taskPod({ phase: 'Succeeded' })), /has finished/],
    ['a token bound to a terminating pod', () => cluster.podFacts.set(`${NS}/${POD}`, taskPod({ terminating: true })), /has finished/],
    ['a token of a Pending task', () => cluster.put(task({ phase: 'Pending' })), /is Pending, not Granted or Active/],
    ['a token of a Revoked task', () => cluster.put(task({ phase: 'Revoked' })), /is Revoked/],
    ['a token of a task marked for revocation', () => cluster.put(task({ annotations: { 'taskgrant.io/revoke': 'incident' } })), /was revoked/],
    ['a token of an expired task', () => cluster.put(task({ expiresAt: T0 - 1 })), /expired at/],
    ['a token of a task expiring within the second', () => cluster.put(task({ expiresAt: T0 + 400 })), /expires within a second/],
  ];
  it.each(refusals)('refuses %s with invalid_grant', async (_what, arrange, description) => {
    arrange();
    const res = await exchange();
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_grant', error_description: expect.stringMatching(description) });
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await issued()).toBe(0);
    expect(await requests('token', 'invalid_grant')).toBe(1);
    expect(served.logLines.join('\n')).not.toContain(POD_TOKEN);
  });

  it('answers 503 when the TokenReview does not answer in time', async () => {
    await start({ reviewTimeoutMs: 50 });
    reviewer.hang = true;
    const res = await exchange();
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: 'temporarily_unavailable' });
  });

  it('answers 503 while no signing key is loaded', async () => {
    await start({ keys: { signingKey: () => undefined, publishedKeys: () => [] } });
    const res = await exchange();
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect((await fetch(`${served.base}/.well-known/jwks.json`)).status).toBe(503);
    expect((await verify({ token: 'x', tool: 'kubectl-logs' })).body).toMatchObject({ allowed: false });
  });
});

describe('GET /.well-known', () => {
  it('publishes current and previous key after a rotation, and drops the previous once its receipts have expired', async () => {
    const before = ring.signingKey(clock.ms)!.kid;
    const oldReceipt = await receipt();
    ring = await ring.rotate(clock.ms);
    const after = ring.signingKey(clock.ms)!.kid;
    expect((await jwks()).keys.map((k) => k.kid)).toEqual([before, after]);
    expect(decodeProtectedHeader(await receipt()).kid).toBe(after);
    // A receipt signed by the previous key keeps verifying for as long as it lives.
    clock.advance(9 * MIN);
    expect((await verify({ token: oldReceipt, tool: 'kubectl-logs' })).body).toMatchObject({ allowed: true });

    clock.advance(ring.options.retentionMs - 9 * MIN);
    expect((await jwks()).keys.map((k) => k.kid)).toEqual([after]);
    for (const k of (await jwks()).keys) expect(k).toEqual({ kty: 'EC', crv: 'P-256', x: expect.any(String), y: expect.any(String), kid: k.kid, use: 'sig', alg: 'ES256' });
  });

  it('serves OpenID discovery pointing at the JWKS and the token endpoint', async () => {
    const res = await fetch(`${served.base}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      issuer: ISSUER,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      token_endpoint: `${ISSUER}/v1/token`,
      grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
      id_token_signing_alg_values_supported: ['ES256'],
    });
  });
});

describe('POST /v1/verify', () => {
  beforeEach(() => {
    // A long grant, so a receipt can expire while its task is still live.
    cluster.put(task({ expiresAt: T0 + 60 * MIN }));
  });

  const allowedCases: Array<[string, Record<string, unknown>]> = [
    ['a declared tool', { tool: 'kubectl-logs' }],
    ['a granted verb on an unnamed grant, for any name', { verb: 'get', apiGroup: '', resource: 'pods', namespace: NS, name: 'web-1' }],
    ['a granted list', { verb: 'list', resource: 'pods/log', namespace: NS }],
    ['a named grant, for that name', { verb: 'get', apiGroup: '', resource: 'configmaps', namespace: NS, name: 'app-config' }],
  ];
  it.each(allowedCases)('allows %s', async (_what, question) => {
    const res = await verify({ token: await receipt(), ...question });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ allowed: true, reason: expect.any(String) });
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await requests('verify', 'allowed')).toBe(1);
  });

  const deniedCases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an undeclared tool', { tool: 'kubectl-exec' }, /not among the task's declared tools/],
    ['a resource outside the grant', { verb: 'get', apiGroup: '', resource: 'secrets', namespace: NS }, /outside the task's grant/],
    ['an ungranted verb', { verb: 'delete', apiGroup: '', resource: 'pods', namespace: NS, name: 'web-1' }, /outside/],
    ['another namespace', { verb: 'get', apiGroup: '', resource: 'pods', namespace: 'team-b' }, /outside/],
    ['another API group', { verb: 'get', apiGroup: 'apps', resource: 'pods', namespace: NS }, /outside/],
    ['another name under a named grant', { verb: 'get', resource: 'configmaps', namespace: NS, name: 'db-password' }, /outside/],
    ['an unnamed request under a named grant', { verb: 'get', resource: 'configmaps', namespace: NS }, /outside/],
  ];
  it.each(deniedCases)('denies %s, with a reason', async (_what, question, reason) => {
    const res = await verify({ token: await receipt(), ...question });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ allowed: false, reason: expect.stringMatching(reason) });
    expect(await requests('verify', 'denied')).toBe(1);
  });

  const revoked: Array<[string, () => void, RegExp]> = [
    ['marked for revocation', () => cluster.put(task({ expiresAt: T0 + 60 * MIN, annotations: { 'taskgrant.io/revoke': 'incident' } })), /was revoked/],
    ['Revoked', () => cluster.put(task({ expiresAt: T0 + 60 * MIN, phase: 'Revoked' })), /is Revoked/],
    ['Completed', () => cluster.put(task({ expiresAt: T0 + 60 * MIN, phase: 'Completed' })), /is Completed/],
    ['deleted', () => cluster.tasks.clear(), /no longer exists/],
    ['recreated under the same name', () => cluster.put(task({ expiresAt: T0 + 60 * MIN, uid: 'a-new-uid' })), /deleted and recreated/],
  ];
  it.each(revoked)('denies everything once the task is %s, before the receipt expires', async (_what, arrange, reason) => {
    const token = await receipt();
    arrange();
    clock.advance(MIN);
    for (const question of [{ tool: 'kubectl-logs' }, { verb: 'get', resource: 'pods', namespace: NS }])
      expect((await verify({ token, ...question })).body).toEqual({ allowed: false, reason: expect.stringMatching(reason) });
  });

  it('denies an expired receipt even while the task is live', async () => {
    const token = await receipt();
    clock.advance(10 * MIN);
    expect((await verify({ token, tool: 'kubectl-logs' })).body).toEqual({ allowed: false, reason: 'the receipt has expired' });
  });

  it('denies a receipt whose signature does not verify', async () => {
    const [header, payload, signature] = (await receipt()).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const widened = Buffer.from(JSON.stringify({ ...claims, tools: ['kubectl-exec'] })).toString('base64url');
    expect((await verify({ token: `${header}.${widened}.${signature}`, tool: 'kubectl-exec' })).body).toEqual({ allowed: false, reason: 'the receipt signature does not verify' });
  });

  it('denies a receipt signed by a key taskgrant does not publish, even under a published kid', async () => {
    const good = await receipt();
    const { payload } = await jwtVerify(good, createLocalJWKSet(await jwks()), { currentDate: clock.now() });
    const foreign = await generateSigningKey(clock.ms);
    for (const kid of [foreign.kid, ring.signingKey(clock.ms)!.kid]) {
      const forged = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(foreign.privateKey);
      expect((await verify({ token: forged, tool: 'kubectl-logs' })).body).toMatchObject({ allowed: false, reason: expect.stringMatching(/not signed by a published|signature does not verify/) });
    }
  });

  it('denies a receipt for another audience when the backend names itself, or from another issuer', async () => {
    const token = await receipt();
    expect((await verify({ token, tool: 'kubectl-logs', audience: 'https://other.example.com' })).body).toEqual({ allowed: false, reason: expect.stringMatching(/aud/) });
    expect((await verify({ token, tool: 'kubectl-logs', audience: EXCHANGE.audience })).body).toMatchObject({ allowed: true });
    await start({ issuer: 'https://someone-else.example.com' });
    expect((await verify({ token, tool: 'kubectl-logs' })).body).toEqual({ allowed: false, reason: expect.stringMatching(/iss/) });
  });

  it('denies something that is not a receipt', async () => {
    expect((await verify({ token: 'not.a.jwt', tool: 'kubectl-logs' })).body).toEqual({ allowed: false, reason: 'the token is not a taskgrant receipt' });
  });

  const badRequests: Array<[string, string, string]> = [
    ['no token', JSON.stringify({ tool: 'kubectl-logs', audience: 'backend' }), 'application/json'],
    ['no audience (a receipt for another backend would pass)', JSON.stringify({ token: 'x', tool: 'kubectl-logs' }), 'application/json'],
    ['an empty audience', JSON.stringify({ token: 'x', tool: 'kubectl-logs', audience: '' }), 'application/json'],
    ['no question', JSON.stringify({ token: 'x' }), 'application/json'],
    ['both a tool and a resource', JSON.stringify({ token: 'x', tool: 't', verb: 'get', resource: 'pods', namespace: NS }), 'application/json'],
    ['a resource without a namespace', JSON.stringify({ token: 'x', verb: 'get', resource: 'pods' }), 'application/json'],
    ['a non-string name', JSON.stringify({ token: 'x', verb: 'get', resource: 'pods', namespace: NS, name: 7 }), 'application/json'],
    ['bad JSON', '{"token":', 'application/json'],
    ['a JSON array', '[]', 'application/json'],
    ['a form', 'token=x&tool=y', 'application/x-www-form-urlencoded'],
  ];
  it.each(badRequests)('answers 400 to %s', async (_what, body, contentType) => {
    const res = await post('/v1/verify', body, contentType);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ allowed: false, reason: expect.any(String) });
    expect(await requests('verify', 'invalid_request')).toBe(1);
  });
});


