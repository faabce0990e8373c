// The informer against a scripted API server: list then watch, 410s, stalls, re-lists and
// write-through, with opaque resourceVersions and fake time.
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { Metrics } from '../telemetry/metrics.js';
import { silentLogger } from '../telemetry/logger.js';
import { Informer, type KubeObject } from './informer.js';
import { FakeTransport, json, status } from './transport.test-support.js';

const PATH = '/api/v1/namespaces/ops/configmaps';
const STALL_MS = 60_000;
const HOLD_MS = 30_000;

type ConfigMap = KubeObject & { data?: Record<string, string> };

const cm = (name: string, resourceVersion: string): ConfigMap => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ops', resourceVersion } });
const list = (resourceVersion: string, ...items: ConfigMap[]) => json(200, { kind: 'ConfigMapList', metadata: { resourceVersion }, items });

let transport: FakeTransport;
let lists: Array<ReturnType<typeof list>>;
let events: string[];
let informer: Informer<ConfigMap>;

const flush = () => jest.advanceTimersByTimeAsync(0);
const listCalls = () => transport.sent.filter((s) => s.method === 'GET').length;
const cached = (name: string) => informer.get('ops', name)?.metadata.resourceVersion;

/** Starts an informer whose list calls answer `lists` in turn (the last one repeats). */
async function start(...answers: Array<ReturnType<typeof list>>): Promise<void> {
  lists = answers;
  transport.handler = () => (lists.length > 1 ? lists.shift()! : lists[0]!);
  informer = new Informer<ConfigMap>({ transport, path: PATH, resource: 'configmaps', logger: silentLogger(), metrics: new Metrics(), stallMs: STALL_MS, watchTimeoutSeconds: 300, writeHoldMs: HOLD_MS });
  informer.on((event, object) => void events.push(`${event} ${object.metadata.name}@${object.metadata.resourceVersion}`));
  await informer.start();
  await flush();
}

beforeEach(() => {
  jest.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z') });
  transport = new FakeTransport();
  events = [];
});

afterEach(async () => {
  await informer.stop();
  jest.useRealTimers();
});

describe('Informer: list and watch', () => {
  it('lists, then watches from the list resourceVersion, and resumes from the last one seen when the server ends the watch', async () => {
    await start(list('q7', cm('a', 'k9')));
    expect(events).toEqual(['add a@k9']);
    expect(transport.current.query).toMatchObject({ resourceVersion: 'q7', allowWatchBookmarks: true });

    transport.current.send('ADDED', cm('b', 'm2'));
    transport.current.send('BOOKMARK', { metadata: { resourceVersion: 'p4' } });
    transport.current.end(); // the server's timeoutSeconds
    await flush();
    expect(transport.watches).toHaveLength(2);
    expect(transport.current.query).toMatchObject({ resourceVersion: 'p4' });
    expect(listCalls()).toBe(1); // resumed, not re-listed
    expect(events).toEqual(['add a@k9', 'add b@m2']);
  });

  it('lets a watch event replace the cached object whatever its resourceVersion looks like', async () => {
    // Numerically "older", but the stream is in order: the event is the newer state.
    await start(list('30', cm('a', '20')));
    transport.current.send('MODIFIED', cm('a', '9'));
    expect(cached('a')).toBe('9');
    expect(events).toEqual(['add a@20', 'update a@9']);
  });

  it('re-lists at once on a watch ERROR event with code 410, and replaces the store with the list', async () => {
    await start(list('50', cm('a', '40'), cm('gone', '41')), list('7', cm('a', '6'), cm('new', '5')));
    transport.current.send('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    await flush();
    expect(listCalls()).toBe(2);
    expect(cached('a')).toBe('6');
    expect(informer.get('ops', 'gone')).toBeUndefined();
    // What the list did not show is deleted once the whole list is in.
    expect(events).toEqual(['add a@40', 'add gone@41', 'update a@6', 'add new@5', 'delete gone@41']);
    expect(transport.current.query).toMatchObject({ resourceVersion: '7' });
  });

  it('applies a paged list page by page, and deletes nothing when a later page fails', async () => {
    const page = (items: ConfigMap[], cont: string, resourceVersion = '9') => json(200, { kind: 'ConfigMapList', metadata: { resourceVersion, continue: cont }, items });
    await start(list('50', cm('a', '40'), cm('b', '41'), cm('c', '42')));
    // The re-list: page 1 is served, the continue token has expired by page 2.
    const answers = [page([cm('a', '60')], 'next'), json(410, { kind: 'Status', code: 410, reason: 'Expired' })];
    transport.handler = () => answers.shift() ?? list('70', cm('a', '61'), cm('c', '62'));
    transport.current.send('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    await flush();
    await jest.advanceTimersByTimeAsync(60_000);
    // The failed list changed a (a real, newer state) and removed nothing; the full one that
    // followed replaced the store and deleted b.
    expect(events).toEqual(['add a@40', 'add b@41', 'add c@42', 'update a@60', 'update a@61', 'update c@62', 'delete b@41']);
    expect(cached('b')).toBeUndefined();
  });

  it('re-lists at once when the watch request itself is answered 410 Gone', async () => {
    await start(list('r1', cm('a', 'x1')), list('r2', cm('a', 'x2')));
    transport.current.refuse(410, 'too old resource version');
    await flush(); // no backoff: a 410 is a normal event in a watch's life
    expect(listCalls()).toBe(2);
    expect(cached('a')).toBe('x2');
    expect(transport.current.query).toMatchObject({ resourceVersion: 'r2' });
  });

  it('restarts a watch silent for longer than stallMs, re-lists, and ignores what the abandoned watch still sends', async () => {
    await start(list('r1', cm('a', 'x1')), list('r2', cm('a', 'x2')));
    const first = transport.current;
    await jest.advanceTimersByTimeAsync(STALL_MS - 1_000);
    first.send('BOOKMARK', { metadata: { resourceVersion: 'r1b' } }); // a bookmark is a sign of life
    await jest.advanceTimersByTimeAsync(STALL_MS - 1_000);
    expect(first.aborted).toBe(false);

    await jest.advanceTimersByTimeAsync(1_000);
    expect(first.aborted).toBe(true);
    await jest.advanceTimersByTimeAsync(100); // the first restart's backoff
    expect(transport.watches).toHaveLength(2);
    expect(listCalls()).toBe(2);
    expect(cached('a')).toBe('x2');

    first.send('MODIFIED', cm('a', 'late'));
    expect(cached('a')).toBe('x2');
  });

  it('backs off and re-lists after a failed list', async () => {
    let fail = true;
    await start(list('r1', cm('a', 'x1')));
    transport.handler = () => (fail ? status(500, 'InternalError') : list('r2', cm('a', 'x2')));
    transport.current.end(new Error('connection reset'));
    await jest.advanceTimersByTimeAsync(100);
    expect(listCalls()).toBe(2);
    expect(transport.watches).toHaveLength(1);
    fail = false;
    await jest.advanceTimersByTimeAsync(200);
    expect(listCalls()).toBe(3);
    expect(cached('a')).toBe('x2');
    expect(transport.watches).toHaveLength(2);
  });
});

describe('Informer: write-through', () => {
  it('keeps our write when the watch then delivers an older version of the object', async () => {
    await start(list('r1', cm('a', 'a0')));
    informer.upsert(cm('a', 'b7')); // what our PUT returned
    transport.current.send('MODIFIED', cm('a', 'a1')); // someone's write before ours, still in the stream
    expect(cached('a')).toBe('b7');
    transport.current.send('MODIFIED', cm('a', 'b7')); // our write's own event
    transport.current.send('MODIFIED', cm('a', 'c3')); // a later write
    expect(cached('a')).toBe('c3');
    expect(events).toEqual(['add a@a0', 'update a@b7', 'update a@c3']);
  });

  it('ignores a write-through the watch has already delivered and moved past', async () => {
    await start(list('r1', cm('a', 'a0')));
    transport.current.send('MODIFIED', cm('a', 'x1')); // our write
    transport.current.send('MODIFIED', cm('a', 'y2')); // someone's after it
    informer.upsert(cm('a', 'x1')); // our write's response, processed late
    expect(cached('a')).toBe('y2');
  });

  it('keeps a write made while a re-list was under way, but not against a list begun after it', async () => {
    await start(list('r1', cm('a', 'a0')));
    let answer!: (value: ReturnType<typeof list>) => void;
    transport.handler = () => new Promise((resolve) => (answer = resolve));
    transport.current.send('ERROR', { code: 410 });
    await flush();
    informer.upsert(cm('a', 'w1'));
    answer(list('r2', cm('a', 'l0'))); // listed before our write landed
    await flush();
    expect(cached('a')).toBe('w1');

    transport.handler = () => list('r3', cm('a', 'l9'));
    transport.current.send('ERROR', { code: 410 });
    await flush();
    expect(cached('a')).toBe('l9'); // a list begun after the write shows it, or something newer
  });

  it('lets go of a write-through once a re-list shows it, so later events apply at once', async () => {
    await start(list('r1', cm('a', 'a0')));
    let answer!: (value: ReturnType<typeof list>) => void;
    transport.handler = () => new Promise((resolve) => (answer = resolve));
    transport.current.send('ERROR', { code: 410 });
    await flush();
    informer.upsert(cm('a', 'w1'));
    answer(list('r2', cm('a', 'w1'))); // served after our write landed
    await flush();
    transport.current.send('MODIFIED', cm('a', 'n2'));
    expect(cached('a')).toBe('n2');
  });

  it('shows what the stream says once a write-through outlived writeHoldMs without its own event', async () => {
    await start(list('r1', cm('a', 'a0')));
    informer.upsert(cm('a', 'w1'));
    transport.current.send('MODIFIED', cm('a', 's5'));
    await jest.advanceTimersByTimeAsync(HOLD_MS - 1);
    expect(cached('a')).toBe('w1');
    await jest.advanceTimersByTimeAsync(1);
    expect(cached('a')).toBe('s5');
    expect(events).toEqual(['add a@a0', 'update a@s5']);
  });

  it('does not resurrect an object deleted after our write', async () => {
    await start(list('r1', cm('a', 'a0')));
    informer.upsert(cm('a', 'w1'));
    transport.current.send('MODIFIED', cm('a', 'w1'));
    transport.current.send('DELETED', cm('a', 'd2'));
    expect(informer.get('ops', 'a')).toBeUndefined();
    expect(events).toEqual(['add a@a0', 'update a@w1', 'delete a@w1']);
  });

  it('applies at once a deletion our write caused and a new object under the same name', async () => {
    await start(list('r1', { ...cm('a', 'a0'), metadata: { ...cm('a', 'a0').metadata, uid: 'u1' } }));
    // Our write dropped the last finalizer: the API server deletes the object, with another resourceVersion.
    informer.upsert({ ...cm('a', 'w1'), metadata: { ...cm('a', 'w1').metadata, uid: 'u1' } });
    transport.current.send('DELETED', { ...cm('a', 'd2'), metadata: { ...cm('a', 'd2').metadata, uid: 'u1' } });
    expect(informer.get('ops', 'a')).toBeUndefined();
    transport.current.send('ADDED', { ...cm('a', 'n3'), metadata: { ...cm('a', 'n3').metadata, uid: 'u2' } });
    expect(cached('a')).toBe('n3');
    // And a new object replaces a write-through of the old one it could never be older than.
    informer.upsert({ ...cm('a', 'w4'), metadata: { ...cm('a', 'w4').metadata, uid: 'u2' } });
    transport.current.send('ADDED', { ...cm('a', 'n5'), metadata: { ...cm('a', 'n5').metadata, uid: 'u3' } });
    expect(cached('a')).toBe('n5');
  });
});
