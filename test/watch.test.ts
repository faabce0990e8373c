// The operator's own kubeconfig reader and watch stream against the real API server: what the
// informers stand on once client-node is out of the operator's runtime.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { loadKubeConfig, type KubeConfig } from '../src/kube/client.js';
import { rest, watch } from '../src/kube/rest.js';
import { adminConfig, createNamespace, eventually } from './harness/kube.js';

let kc: KubeConfig;
let ns: string;

beforeAll(async () => {
  kc = await loadKubeConfig(process.env.TASKGRANT_TEST_KUBECONFIG);
  ns = await createNamespace(adminConfig(), 'watch');
});

function recorder() {
  const events: Array<[string, string]> = [];
  const ends: Array<Error | undefined> = [];
  return {
    events,
    ends,
    onEvent: (type: string, object: unknown) => events.push([type, (object as { metadata?: { name?: string } }).metadata?.name ?? '']),
    onEnd: (err?: Error) => ends.push(err),
  };
}

describe('watch()', () => {
  it('streams events as they happen, and an abort ends it exactly once', async () => {
    const seen = recorder();
    // Only this test's objects: kube-controller-manager publishes kube-root-ca.crt into every new
    // namespace at a moment of its own.
    const handle = await watch(kc, `/api/v1/namespaces/${ns}/configmaps`, { labelSelector: 'watch-test=stream' }, seen.onEvent, seen.onEnd);
    for (const name of ['one', 'two']) expect((await rest(kc, 'POST', `/api/v1/namespaces/${ns}/configmaps`, { metadata: { name, labels: { 'watch-test': 'stream' } } })).status).toBe(201);
    expect((await rest(kc, 'DELETE', `/api/v1/namespaces/${ns}/configmaps/one`)).status).toBe(200);
    await eventually(async () => seen.events.length >= 3, 'three watch events');
    expect(seen.events).toEqual([
      ['ADDED', 'one'],
      ['ADDED', 'two'],
      ['DELETED', 'one'],
    ]);
    expect(seen.ends).toEqual([]);
    handle.abort();
    handle.abort();
    expect(seen.ends).toHaveLength(1);
    expect(seen.ends[0]?.message).toMatch(/aborted/);
  });

  it('ends without an error when the server closes the stream at timeoutSeconds', async () => {
    const seen = recorder();
    await watch(kc, `/api/v1/namespaces/${ns}/secrets`, { timeoutSeconds: 1 }, seen.onEvent, seen.onEnd);
    await eventually(async () => seen.ends.length > 0, 'the server to end the watch', 10_000);
    expect(seen.ends).toEqual([undefined]);
  });

  it('ends with the API server message when the watch is refused', async () => {
    const seen = recorder();
    await watch(kc, `/apis/example.invalid/v1/namespaces/${ns}/widgets`, {}, seen.onEvent, seen.onEnd);
    await eventually(async () => seen.ends.length > 0, 'the refusal');
    expect(seen.ends[0]?.message).toMatch(/404/);
    expect(seen.events).toEqual([]);
  });
});
