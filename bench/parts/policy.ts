// policy: taskgrant's evaluation vs raw statefulIsAuthorized on the same tuples — a typical task
// (4 tuples), a sweep to 64 and 1,024 tuples, and the deny path.
import { join } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PolicyEngine, readPolicyDir } from '../../src/policy/index.js';
import { buildRequests, type DecisionInput } from '../../src/policy/request.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import type { AgentTask } from '../../src/api/index.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, round } from '../stats.js';
import { typicalTask } from '../tasks.js';

/**
 * The engine as the operator holds it (default policies) and the same set prepared raw in
 * cedar-wasm. Its decision cache is off (`decisionCacheSize` 0): each sample is an evaluation,
 * as a task seen for the first time gets; `cached` is the engine as shipped, for a repeat.
 */
async function engines(root: string) {
  const dir = await readPolicyDir(join(root, 'policies'));
  const make = (decisionCacheSize?: number) => {
    const engine = new PolicyEngine({ schemaText: dir.schemaText, logger: silentLogger(), metrics: new Metrics(), ...(decisionCacheSize !== undefined ? { decisionCacheSize } : {}) });
    if (engine.load(dir.sources).type !== 'loaded') throw new Error('default policies did not load');
    return engine;
  };
  cedar.preparseSchema('bench-schema', dir.schemaText);
  cedar.preparsePolicySet('bench-raw', { staticPolicies: dir.sources.map((s) => s.text).join('\n') });
  return { engine: make(0), cached: make() };
}

/** A task asking for `names` resource names of pods and pods/log, get and list: 4 tuples per name (4 with none). */
function taskOfTuples(names: number): AgentTask {
  const task = typicalTask();
  const resourceNames = Array.from({ length: names }, (_, i) => `pod-${i}`);
  return { ...task, spec: { ...task.spec, intent: { ...task.spec.intent, permissions: [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'], ...(names > 0 ? { resourceNames } : {}) }] } } };
}

/** Our evaluation of `task` beside raw statefulIsAuthorized calls of the same tuples, interleaved. */
function compare(engine: PolicyEngine, task: AgentTask, rounds: number) {
  const input: DecisionInput = { task, approved: false, recentGrants: 3, recentGrantSeconds: 2700, delegationDepth: 0 };
  const built = buildRequests(input);
  if (built.type !== 'requests') throw new Error('could not build requests');
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
  for (let i = 0; i < Math.max(10, rounds / 10); i += 1) {
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
  return { tuples: calls.length, ours: ourSamples, raw: rawSamples };
}

/** The deny path: a TTL the limits forbid, which the engine evaluates again as if approved (to say whether approval would help). */
function denyPath(engine: PolicyEngine, rounds: number): number[] {
  const task = typicalTask();
  const input: DecisionInput = { task: { ...task, spec: { ...task.spec, ttl: '5h' } }, approved: false, recentGrants: 3, recentGrantSeconds: 2700, delegationDepth: 0 };
  const once = () => {
    if (engine.evaluate(input).type !== 'deny') throw new Error('engine did not deny a 5h TTL');
  };
  for (let i = 0; i < rounds / 10; i += 1) once();
  const samples: number[] = [];
  for (let i = 0; i < rounds; i += 1) {
    const t = performance.now();
    once();
    samples.push((performance.now() - t) * 1000);
  }
  return samples;
}

async function benchPolicy({ root, results, keep }: BenchContext): Promise<void> {
  const { engine, cached } = await engines(root);
  const typical = compare(engine, taskOfTuples(0), 1500);
  const repeat = compare(cached, taskOfTuples(0), 1000);
  const deny = denyPath(engine, 1500);
  keep('policy.ours_us', typical.ours);
  keep('policy.raw_us', typical.raw);
  keep('policy.deny_us', deny);
  const figures: Record<string, number> = {
    tuples: typical.tuples,
    p50_us: round(percentile(typical.ours, 50), 1),
    p99_us: round(percentile(typical.ours, 99), 1),
    raw_p50_us: round(percentile(typical.raw, 50), 1),
    raw_p99_us: round(percentile(typical.raw, 99), 1),
    ratio_p50: round(percentile(typical.ours, 50) / percentile(typical.raw, 50), 2),
    // The same task decided again (a live grant re-derived on each of its events): the kept verdict.
    cached_p50_us: round(percentile(repeat.ours, 50), 1),
    cached_p99_us: round(percentile(repeat.ours, 99), 1),
    deny_p50_us: round(percentile(deny, 50), 1),
    deny_p99_us: round(percentile(deny, 99), 1),
  };
  // The sweep: 64 tuples with 150 samples behind its p99; 1,024 (a fifth of a second each) with
  // 30, so its tail is named max.
  for (const [names, rounds] of [[16, 150], [256, 30]] as const) {
    const sweep = compare(engine, taskOfTuples(names), rounds);
    figures[`sweep_${sweep.tuples}_p50_us`] = round(percentile(sweep.ours, 50), 1);
    if (rounds >= 100) figures[`sweep_${sweep.tuples}_p99_us`] = round(percentile(sweep.ours, 99), 1);
    else figures[`sweep_${sweep.tuples}_max_us`] = round(Math.max(...sweep.ours), 1);
    figures[`sweep_${sweep.tuples}_ratio_p50`] = round(percentile(sweep.ours, 50) / percentile(sweep.raw, 50), 2);
  }
  results.policy = figures;
}

export const policyPart: BenchPart = { name: 'policy', title: 'policy evaluation', run: benchPolicy };
