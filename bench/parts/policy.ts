// policy: taskgrant's evaluation vs raw statefulIsAuthorized on the same tuples.
import { join } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PolicyEngine, readPolicyDir } from '../../src/policy/index.js';
import { buildRequests, type DecisionInput } from '../../src/policy/request.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, round } from '../stats.js';
import { typicalTask } from '../tasks.js';

async function benchPolicy({ root, results }: BenchContext): Promise<void> {
  const dir = await readPolicyDir(join(root, 'policies'));
  const engine = new PolicyEngine({ schemaText: dir.schemaText, logger: silentLogger(), metrics: new Metrics() });
  if (engine.load(dir.sources).type !== 'loaded') throw new Error('default policies did not load');
  const input: DecisionInput = { task: typicalTask(), approved: false, recentGrants: 3, recentGrantSeconds: 2700, delegationDepth: 0 };
  const built = buildRequests(input);
  if (built.type !== 'requests') throw new Error('could not build requests');
  cedar.preparseSchema('bench-schema', dir.schemaText);
  cedar.preparsePolicySet('bench-raw', { staticPolicies: dir.sources.map((s) => s.text).join('\n') });
  const calls = built.requests.map((r) => ({
    principal: r.principal,
    action: r.action,
    resource: r.resource,
    context: built.context,
    entities: r.entities.map((e) => ({ uid: e.uid, attrs: e.attrs, parents: [] })),
    preparsedSchemaName: 'bench-schema',
    validateRequest: true,
    preparsedPolicySetId: 'bench-raw',
  }));
  const raw = () => {
    for (const call of calls) {
      const answer = cedar.statefulIsAuthorized(call as unknown as Parameters<typeof cedar.statefulIsAuthorized>[0]);
      if (answer.type !== 'success' || answer.response.decision !== 'allow') throw new Error(`raw call did not allow: ${JSON.stringify(answer)}`);
    }
  };
  const ours = () => {
    if (engine.evaluate(input).type !== 'allow') throw new Error('engine did not allow');
  };
  const rounds = 3000;
  for (let i = 0; i < 300; i += 1) {
    raw();
    ours();
  } // warm-up
  const rawSamples: number[] = [];
  const ourSamples: number[] = [];
  // Interleaved, so both see the same machine noise.
  for (let i = 0; i < rounds; i += 1) {
    let t = performance.now();
    raw();
    rawSamples.push((performance.now() - t) * 1000);
    t = performance.now();
    ours();
    ourSamples.push((performance.now() - t) * 1000);
  }
  results.policy = {
    tuples: calls.length,
    p50_us: round(percentile(ourSamples, 50), 1),
    p99_us: round(percentile(ourSamples, 99), 1),
    raw_p50_us: round(percentile(rawSamples, 50), 1),
    raw_p99_us: round(percentile(rawSamples, 99), 1),
    ratio_p50: round(percentile(ourSamples, 50) / percentile(rawSamples, 50), 2),
  };
}

export const policyPart: BenchPart = { name: 'policy', title: 'policy evaluation', run: benchPolicy };
