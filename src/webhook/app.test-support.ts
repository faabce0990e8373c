// Shared setup of the webhook app's unit tests (app*.test.ts): the app on a local port over a fake
// cluster, started afresh for each test, and helpers to send it AdmissionReviews.
import { afterEach, beforeEach, expect } from '@jest/globals';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import type { AdmissionResponse } from './admission.js';
import { createApp, type HandlerName } from './app.js';
import type { WebhookDeps } from './deps.js';
import { FakeCluster, NOW, applyPatch, decodePatch, type review } from './fixtures/kit.js';

export let cluster: FakeCluster;
export let metrics: Metrics;
export let logLines: string[];
let server: Server | undefined;
let base: string;

export async function start(overrides: Partial<WebhookDeps> = {}): Promise<void> {
  await stop();
  const logger = createLogger('debug', { write: (line: string) => void logLines.push(line) });
  const app = createApp({ tasks: cluster, slots: cluster, serviceAccounts: cluster, accessReviewer: cluster, metrics, logger, now: () => NOW, ...overrides });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function stop(): Promise<void> {
  const s = server;
  server = undefined;
  if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
}

/** A fresh cluster, metrics and log, and the app started on them, for each test of the calling file. */
export function startAppForEachTest(): void {
  beforeEach(async () => {
    cluster = new FakeCluster();
    metrics = new Metrics();
    logLines = [];
    await start();
  });
  afterEach(stop);
}

export async function post(path: string, body: unknown, contentType = 'application/json'): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export type Review = ReturnType<typeof review>;

export async function admit(path: string, r: Review): Promise<AdmissionResponse> {
  const res = await post(path, r);
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
  const response = res.body.response as AdmissionResponse;
  expect(response.uid).toBe(r.request.uid);
  return response;
}

export async function decisions(handler: HandlerName, result: 'allowed' | 'denied' | 'error'): Promise<number> {
  const values = (await metrics.admissionDecisions.get()).values;
  return values.find((v) => v.labels.handler === handler && v.labels.result === result)?.value ?? 0;
}

export function expectDenied(response: AdmissionResponse, message: string | RegExp, code = 403): void {
  expect(response.allowed).toBe(false);
  expect(response.patch).toBeUndefined();
  expect(response.status?.code).toBe(code);
  if (typeof message === 'string') expect(response.status?.message).toBe(message);
  else expect(response.status?.message).toMatch(message);
}

/** The object after the response's patch, as the API server would persist it. */
export function patched<T>(r: Review, response: AdmissionResponse): T {
  expect(response.allowed).toBe(true);
  if (response.patch !== undefined) expect(response.patchType).toBe('JSONPatch');
  return applyPatch(r.request.object, decodePatch(response.patch)) as T;
}
