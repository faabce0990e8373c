// Property: /v1/verify allows a (verb, group, resource, namespace, name) exactly when one of the
// task's permission rules covers it, checked against an oracle written from the RBAC rule shape
// rather than from the tuples the receipt carries.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { PermissionRule } from '../api/index.js';
import { silentLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import { exchangeToken } from './exchange.js';
import { KeyRing } from './keys.js';
import { Clock, FakeReviewer, ISSUER, NS, POD_TOKEN, ReceiptCluster, T0, task } from './kit.test-support.js';
import type { ReceiptsDeps } from './ports.js';
import { verifyReceipt } from './verify.js';

const VERBS = ['get', 'list', 'watch', 'delete'];
const GROUPS = ['', 'apps', 'batch'];
const RESOURCES = ['pods', 'secrets', 'deployments'];
const NAMES = ['a', 'b'];
const NAMESPACES = [NS, 'team-b'];
const TOOLS = ['kubectl-logs', 'kubectl-exec', 'grep', 'curl'];

const some = <T>(items: T[]) => fc.subarray(items, { minLength: 1 });
const rule: fc.Arbitrary<PermissionRule> = fc.record(
  {
    apiGroups: some(GROUPS),
    resources: some(RESOURCES),
    verbs: some(VERBS),
    resourceNames: fc.subarray(NAMES),
    namespace: fc.constantFrom(...NAMESPACES),
  },
  { requiredKeys: ['apiGroups', 'resources', 'verbs'] },
);
const request = fc.record({
  verb: fc.constantFrom(...VERBS),
  apiGroup: fc.constantFrom(...GROUPS),
  resource: fc.constantFrom(...RESOURCES),
  namespace: fc.constantFrom(...NAMESPACES),
  name: fc.constantFrom('', ...NAMES, 'c'),
});
type Request = typeof request extends fc.Arbitrary<infer R> ? R : never;

function oracle(rules: PermissionRule[], r: Request): boolean {
  return rules.some(
    (g) =>
      g.verbs.includes(r.verb) &&
      g.apiGroups.includes(r.apiGroup) &&
      g.resources.includes(r.resource) &&
      (g.namespace ?? NS) === r.namespace &&
      // An unnamed rule covers every name (and a list); a named one only its names.
      (!g.resourceNames || g.resourceNames.length === 0 || g.resourceNames.includes(r.name)),
  );
}

describe('verify against the grant', () => {
  it('allows a request iff the task\'s permissions cover it, and a tool iff it is declared', async () => {
    const clock = new Clock();
    const ring = await KeyRing.create(T0);
    const base = { tokenReviewer: new FakeReviewer(), keys: ring, issuer: ISSUER, metrics: new Metrics(), logger: silentLogger(), now: clock.now };
    await fc.assert(
      fc.asyncProperty(fc.array(rule, { minLength: 1, maxLength: 4 }), fc.subarray(TOOLS), fc.array(request, { minLength: 1, maxLength: 8 }), fc.constantFrom(...TOOLS), async (rules, tools, requests, tool) => {
        const cluster = new ReceiptCluster().put(task({ permissions: rules, tools }));
        const deps: ReceiptsDeps = { ...base, tasks: cluster.taskLookup, taskByServiceAccount: cluster.byServiceAccount, pods: cluster.pods };
        const issued = await exchangeToken({ subjectToken: POD_TOKEN, audience: 'backend' }, deps);
        if (issued.type !== 'issued') throw new Error(`exchange ${issued.type}`);
        const token = issued.response.access_token;
        for (const r of requests) {
          const answer = await verifyReceipt({ token, question: { type: 'resource', tuple: r }, audience: 'backend' }, deps);
          expect([answer.type, r]).toEqual([oracle(rules, r) ? 'allowed' : 'denied', r]);
        }
        const toolAnswer = await verifyReceipt({ token, question: { type: 'tool', tool }, audience: 'backend' }, deps);
        expect(toolAnswer.type).toBe(tools.includes(tool) ? 'allowed' : 'denied');
      }),
      { numRuns: 150 },
    );
  });
});
