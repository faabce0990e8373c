// Hostile input: manifests the API server must refuse with a message naming the field, raw
// AdmissionReviews the webhook must refuse (HTTP 400 or allowed: false, never a 5xx, never an
// allow) while staying healthy and flat in memory, and Cedar policy sets that must be refused
// whole, or, when a forbid errors at run time, must never turn into an allow.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { eventually, uniqueName } from './harness/kube.js';
import type { TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { apiServerRequest, healthRequest, metricValue, webhookCaPem, webhookRequest, type RawResponse } from './harness/security.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';
import { manifestCases, reviewCases, type ReviewCase, type ReviewContext } from './corpus/hostile.js';
import type { AgentTask } from '../src/api/index.js';

const group = 'taskgrant.io';
const version = 'v1alpha1';

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;
let corpusNs: string;
let caPem: string;
let ctx: ReviewContext;

beforeAll(async () => {
  ({ admin, tasks, operator, namespaces: [ns, corpusNs] } = await startOperatorSuite(['bad', 'bad-corpus']));
  caPem = await webhookCaPem(admin, operator.config.namespace);
  const name = uniqueName('corpus');
  await tasks.create(ns, name, { agent: uniqueName('corpus-agent'), intent: intentOf(readPods) });
  const task = await tasks.waitForPhase(ns, name, 'Granted');
  ctx = {
    namespace: ns,
    otherNamespace: corpusNs,
    taskName: name,
    taskUid: task.metadata.uid ?? '',
    serviceAccount: task.status?.grant?.serviceAccount ?? '',
    requester: task.spec.requester?.username ?? '',
  };
  expect(ctx.requester).not.toBe('');
});

afterAll(async () => {
  await operator?.stop();
});

it('has a corpus of at least 50 hostile inputs', () => {
  expect(manifestCases.length + reviewCases.length).toBeGreaterThanOrEqual(50);
});

describe('hostile manifests through the API server', () => {
  it.each(manifestCases.map((c) => [c.plural, c.title, c] as const))('refuses a %s manifest with %s', async (plural, _title, c) => {
    const res = await apiServerRequest(admin, {
      method: 'POST',
      // What kubectl sends by default: unknown and duplicate fields are errors, not warnings.
      path: `/apis/${group}/${version}/namespaces/${corpusNs}/${plural}?fieldValidation=Strict`,
      body: c.body(uniqueName('hostile')),
      headers: { 'Content-Type': 'application/json' },
    });
    // 400/422 from decoding and the schema; 403 when taskgrant's own admission webhook refuses first.
    expect([400, 403, 422]).toContain(res.status);
    expect((res.json() as { message: string }).message).toMatch(c.expect);
  });

  it('created none of them', async () => {
    for (const plural of ['agenttasks', 'taskapprovals']) {
      const list = (await tasks.custom.listNamespacedCustomObject({ group, version, namespace: corpusNs, plural })) as { items: unknown[] };
      expect(list.items).toEqual([]);
    }
  });
});

describe('the metrics the alerts read', () => {
  it('exports that this replica reconciles and when the certificate it serves expires', async () => {
    const text = (await healthRequest(operator.healthPort, '/metrics')).body;
    expect(metricValue(text, 'taskgrant_leader')).toBe(1);
    const expiry = metricValue(text, 'taskgrant_webhook_certificate_expiry_timestamp_seconds');
    // The test operator's self-managed certificate is valid for a day.
    expect(expiry * 1000).toBeGreaterThan(Date.now());
    expect(expiry * 1000).toBeLessThanOrEqual(Date.now() + 2 * 24 * 3_600_000);
  });
});

describe('hostile AdmissionReviews straight to the webhook port', () => {
  async function send(c: ReviewCase): Promise<{ res: RawResponse; sent: string | Buffer }> {
    const sent = c.body(ctx);
    const res = await webhookRequest(operator.webhookPort, caPem, { method: 'POST', path: c.path, body: sent, headers: { 'Content-Type': 'application/json', ...c.headers } });
    return { res, sent };
  }

  /** The sentence a caller reads, from a 400 or from an allowed: false review; fails on anything else. */
  function refusal({ res, sent }: { res: RawResponse; sent: string | Buffer }): string {
    expect(res.status).toBeLessThan(500);
    const body = res.json() as { message?: string; response?: { uid?: string; allowed?: boolean; status?: { message?: string } } };
    if (res.status === 400) return body.message ?? '';
    expect(res.status).toBe(200);
    expect(body.response?.allowed).toBe(false);
    expect(body.response?.uid).toBe((JSON.parse(sent.toString()) as { request: { uid: string } }).request.uid);
    return body.response?.status?.message ?? '';
  }

  it.each(reviewCases.map((c) => [c.path, c.title, c] as const))('%s refuses %s', async (_path, _title, c) => {
    const message = refusal(await send(c));
    expect(message).toMatch(c.expect);
    // A clear sentence, not a stack trace.
    expect(message).not.toMatch(/\n\s+at /);
    expect(message.length).toBeLessThan(1_000);
  });

  it('stays healthy, allows none of them and keeps memory flat over repeated rounds', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    const metricsText = async () => (await healthRequest(operator.healthPort, '/metrics')).body;
    const rounds = async (n: number) => {
      for (let i = 0; i < n; i += 1) for (const c of reviewCases) await send(c);
    };
    await rounds(1);
    gc?.();
    // With a collection before each reading the JS heap is the leak signal; RSS also moves with
    // the allocator and with whatever else this process did, so it is only logged.
    const before = process.memoryUsage();
    const allowedBefore = metricValue(await metricsText(), 'taskgrant_admission_decisions_total', { result: 'allowed' });
    const started = Date.now();
    await rounds(3);
    gc?.();
    const after = process.memoryUsage();
    const grown = gc ? after.heapUsed - before.heapUsed : after.rss - before.rss;
    console.error(`[bad-input] ${3 * reviewCases.length} hostile reviews in ${Date.now() - started} ms; ${gc ? 'heap after gc' : 'rss'} ${grown >= 0 ? '+' : ''}${(grown / 2 ** 20).toFixed(1)} MB (rss ${((after.rss - before.rss) / 2 ** 20).toFixed(1)} MB)`);
    expect(grown).toBeLessThan((gc ? 25 : 50) * 2 ** 20);
    expect(metricValue(await metricsText(), 'taskgrant_admission_decisions_total', { result: 'allowed' })).toBe(allowedBefore);
    expect((await healthRequest(operator.healthPort, '/healthz')).status).toBe(200);
    expect((await healthRequest(operator.healthPort, '/readyz')).status).toBe(200);
    // JSON.parse makes "__proto__" an own key; nothing may have reached the shared prototype.
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Record<string, unknown>).approved).toBeUndefined();
    // And the webhook still does its job for a well-formed pod of the live task.
    const pod = await tasks.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: uniqueName('after'), labels: { 'taskgrant.io/task': ctx.taskName } }, spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] } } });
    expect(pod.spec?.serviceAccountName).toBe(ctx.serviceAccount);
  });
});

describe('bad Cedar policies', () => {
  const policyConfigMaps: string[] = [];

  afterAll(async () => {
    for (const name of policyConfigMaps) await tasks.core.deleteNamespacedConfigMap({ name, namespace: operator.config.namespace }).catch(() => undefined);
  });

  async function applyPolicy(name: string, key: string, text: string): Promise<k8s.V1ConfigMap> {
    policyConfigMaps.push(name);
    return tasks.core.createNamespacedConfigMap({
      namespace: operator.config.namespace,
      body: { metadata: { name, labels: { 'taskgrant.io/policy': 'true' } }, data: { [key]: text } },
    });
  }

  async function removePolicy(name: string): Promise<void> {
    await tasks.core.deleteNamespacedConfigMap({ name, namespace: operator.config.namespace });
  }

  const rejectedCount = async () => metricValue((await healthRequest(operator.healthPort, '/metrics')).body, 'taskgrant_policy_reloads_total', { result: 'rejected' });

  async function grantedStill(): Promise<void> {
    const name = uniqueName('still');
    await tasks.create(ns, name, { agent: uniqueName('still-agent'), intent: intentOf(readPods) });
    await tasks.waitForPhase(ns, name, 'Granted');
  }

  const bad: Array<[string, string, RegExp]> = [
    ['a syntax error', '@id("broken")\npermit (principal, action, resource) when { context.approved == };\n', /unexpected token|expected/i],
    ['an attribute the schema does not have', '@id("unknown-attr")\nforbid (principal, action, resource) when { context.owner == "me" };\n', /owner/],
    ['a type error', '@id("type-error")\npermit (principal, action, resource) when { context.ttlSeconds == "short" };\n', /type|Long|String/i],
    ['an action the schema does not declare', '@id("unknown-action")\npermit (principal, action == Action::"sudo", resource);\n', /sudo/],
    ['a policy without an @id', 'permit (principal, action, resource);\n', /has no @id/],
    ['an @id that shadows a default policy', '@id("forbid-escalation-verbs")\npermit (principal, action, resource);\n', /duplicate @id\("forbid-escalation-verbs"\)/],
    ['a template', '@id("template")\npermit (principal == ?principal, action, resource);\n', /templates are not supported/],
  ];

  it.each(bad)('refuses a set with %s whole, reports it on the ConfigMap, and keeps the last good set', async (_title, text, why) => {
    const revision = operator.engine.revision;
    expect(revision).toBeDefined();
    const rejectedBefore = await rejectedCount();
    const name = uniqueName('bad-policy');
    const cm = await applyPolicy(name, 'extra.cedar', text);

    await eventually(async () => (await rejectedCount()) > rejectedBefore, 'a rejected policy reload');
    const event = await eventually(async () => {
      const list = await tasks.core.listNamespacedEvent({ namespace: operator.config.namespace, fieldSelector: `involvedObject.name=${name}` });
      return list.items.find((e) => e.reason === 'PolicyRejected' && e.involvedObject.uid === cm.metadata?.uid);
    }, 'a PolicyRejected Event on the ConfigMap');
    expect(event.type).toBe('Warning');
    expect(event.message).toContain(`configmap:${operator.config.namespace}/${name}#extra.cedar`);
    expect(event.message).toMatch(why);
    expect(operator.engine.revision).toBe(revision);
    expect(operator.engine.policyIds()).not.toContain('broken');

    await removePolicy(name);
  });

  it('keeps granting under the last good set while a bad ConfigMap is present', async () => {
    const revision = operator.engine.revision;
    const rejectedBefore = await rejectedCount();
    const name = uniqueName('bad-policy');
    // Bad as a whole because of its second policy: the permissive first one must not slip in.
    await applyPolicy(name, 'mixed.cedar', '@id("permit-everything")\npermit (principal, action, resource);\n@id("broken")\nforbid (principal, action, resource) when { };\n');
    await eventually(async () => (await rejectedCount()) > rejectedBefore, 'a rejected policy reload');
    expect(operator.engine.policyIds()).not.toContain('permit-everything');
    await grantedStill();
    const secrets = uniqueName('still-secret');
    await tasks.create(ns, secrets, { agent: uniqueName('still-agent'), intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }) });
    await tasks.waitForPhase(ns, secrets, 'AwaitingApproval');
    expect(operator.engine.revision).toBe(revision);
    await removePolicy(name);
  });

  it('never turns a forbid that errors at run time into an allow', async () => {
    const agent = uniqueName('overflow');
    const revision = operator.engine.revision;
    // Cedar skips a policy whose evaluation errors; taskgrant must count the error as a deny.
    const name = uniqueName('overflow-policy');
    await applyPolicy(
      name,
      'overflow.cedar',
      `// Errors (Long overflow) for this one agent only.\n@id("overflowing-forbid")\nforbid (principal, action, resource)\nwhen { principal.name == "${agent}" && context.ttlSeconds + 9223372036854775807 > 0 };\n`,
    );
    await eventually(async () => operator.engine.revision !== revision && operator.engine.policyIds().includes('overflowing-forbid'), 'the policy set with the erroring forbid to load');

    const doomed = uniqueName('overflow-task');
    const created = await tasks.create(ns, doomed, { agent, intent: intentOf(readPods) });
    const task: AgentTask = await tasks.waitForPhase(ns, doomed, ['Denied', 'Pending', 'Granted', 'AwaitingApproval']);
    expect(task.status?.phase).toBe('Denied');
    expect(task.status?.decision?.allowed).toBe(false);
    expect(task.status?.decision?.errors?.join(' ')).toMatch(/overflowing-forbid/);
    expect(task.status?.decision?.errors?.join(' ')).toMatch(/overflow/i);
    expect(await tasks.grantObjects(created.metadata.uid ?? '')).toEqual([]);

    // The same read for any other agent is untouched by the erroring policy.
    await grantedStill();
    await removePolicy(name);
    await eventually(async () => !operator.engine.policyIds().includes('overflowing-forbid'), 'the erroring forbid to be unloaded');
  });
});
