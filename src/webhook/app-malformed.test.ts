// The webhook app's answers to requests that are no AdmissionReview it can read, or go elsewhere
// (shared setup in app.test-support.ts).
import { describe, expect, it } from '@jest/globals';
import { review, type Json } from './fixtures/kit.js';
import { decisions, post, start, startAppForEachTest } from './app.test-support.js';

startAppForEachTest();

describe('malformed requests', () => {
  it.each([
    ['invalid JSON', '{"kind": "AdmissionReview",', 'application/json', /not valid JSON/],
    ['a non-JSON content type', JSON.stringify(review('pod-create')), 'text/plain', /expected a JSON AdmissionReview object/],
    ['an AdmissionReview v1beta1', { ...review('pod-create'), apiVersion: 'admission.k8s.io/v1beta1' }, 'application/json', /expected apiVersion admission.k8s.io\/v1/],
    ['a review without request', { kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1' }, 'application/json', /request is required/],
    ['a request without uid', (() => { const r = review('pod-create'); delete r.request.uid; return r; })(), 'application/json', /request.uid/],
    ['an unknown operation', (() => { const r = review('pod-create'); r.request.operation = 'PATCH'; return r; })(), 'application/json', /request.operation/],
    ['bad userInfo.extra', (() => { const r = review('pod-create'); r.request.userInfo.extra = { a: 'b' }; return r; })(), 'application/json', /userInfo.extra/],
    ['a JSON array', '[]', 'application/json', /expected a JSON AdmissionReview object/],
  ])('answers 400 to %s', async (_what, body, contentType, message) => {
    const res = await post('/mutate/pods', body, contentType);
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(message);
    expect(await decisions('mutate-pods', 'error')).toBe(1);
  });

  it('answers 400 to a body over the limit', async () => {
    await start({ bodyLimitBytes: 4096 });
    const r = review('pod-create');
    (r.request.object.metadata as Record<string, Json>).annotations = { big: 'x'.repeat(5000) };
    const res = await post('/validate/pods', r);
    expect(res.status).toBe(400);
    expect(res.body.message).toBe('AdmissionReview body exceeds 4096 bytes');
    expect(await decisions('validate-pods', 'error')).toBe(1);
  });

  it('answers 404 elsewhere', async () => {
    const res = await post('/mutate/secrets', review('pod-create'));
    expect(res.status).toBe(404);
    expect(res.body.message).toMatch(/\/mutate\/pods/);
  });
});
