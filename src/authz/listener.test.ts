// The authorizer over HTTP: only the API server's certificate is answered, bad bodies are
// refused, and the answer is a SubjectAccessReview that never says allowed.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import type { RequestAuthorizer } from './authorizer.js';
import { authzListener } from './listener.js';

const deny = { review: () => ({ type: 'deny' as const, reason: 'nope' }) } as unknown as RequestAuthorizer;
const throwing = { review: () => { throw new Error('bug'); } } as unknown as RequestAuthorizer;
const servers: Server[] = [];

async function serve(authorizer: RequestAuthorizer, requireClientCert: boolean): Promise<number> {
  const server = createServer(authzListener({ authorizer, logger: createLogger('fatal'), metrics: new Metrics(), requireClientCert }));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function post(port: number, body: string, path = '/authorize'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const review = JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user: 'system:serviceaccount:a:tg-x', resourceAttributes: { verb: 'get', resource: 'pods', namespace: 'a' } } });
let open: number;
let guarded: number;
let broken: number;

beforeAll(async () => {
  [open, guarded, broken] = await Promise.all([serve(deny, false), serve(deny, true), serve(throwing, false)]);
});
afterAll(() => servers.forEach((s) => s.close()));

describe('authzListener', () => {
  it('answers a SubjectAccessReview with a denial that names taskgrant', async () => {
    const res = await post(open, review);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', status: { allowed: false, denied: true, reason: 'taskgrant: nope' } });
  });

  it('refuses a caller without the API server client certificate before reading the body', async () => {
    const res = await post(guarded, review);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/only the API server may ask/);
  });

  it.each([
    ['not JSON', '{'],
    ['not a SubjectAccessReview', JSON.stringify({ kind: 'AdmissionReview' })],
    ['no user', JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { resourceAttributes: {} } })],
  ])('refuses a body that is %s', async (_what, body) => {
    const res = await post(open, body);
    expect(res.status).toBe(body === '{' ? 200 : 400);
    if (res.status === 200) expect(JSON.parse(res.body).status).toMatchObject({ allowed: false, denied: true });
  });

  it('denies when deciding throws (its own failure never lets a request through)', async () => {
    const res = await post(broken, review);
    expect(JSON.parse(res.body).status).toEqual({ allowed: false, denied: true, reason: 'taskgrant: taskgrant could not decide this request' });
  });

  it('serves POST /authorize only', async () => {
    expect((await post(open, review, '/other')).status).toBe(404);
  });
});
