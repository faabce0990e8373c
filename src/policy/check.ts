// Offline checking of a policy directory, for `kubectl taskgrant check --policy-dir DIR` and CI:
// the same loader and engine the operator runs, with no cluster and no metrics endpoint.
import { silentLogger, type Logger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import { PolicyEngine } from './engine.js';
import { readPolicyDir, type PolicySource } from './sources.js';

export type PolicyDirCheck =
  | { type: 'loaded'; engine: PolicyEngine; revision: string; policyCount: number }
  | { type: 'rejected'; errors: string[] };

// Duck-typed rather than `instanceof Error`: errors from node:fs may come from another realm
// (jest's module sandbox), and a CLI user wants the whole chain on one line.
function messageChain(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && parts.length < 5; ) {
    const record = typeof e === 'object' ? (e as { message?: unknown; cause?: unknown }) : undefined;
    parts.push(typeof record?.message === 'string' ? record.message : String(e));
    e = record?.cause;
  }
  return parts.join(': ');
}

/**
 * Reads `dir` (schema + `*.cedar`), plus any extra sources (e.g. ConfigMap keys saved to files),
 * and loads them into a fresh engine. Never throws: unreadable files and an invalid schema are
 * reported as errors like any policy mistake.
 */
export async function checkPolicyDir(
  dir: string,
  options: { extraSources?: readonly PolicySource[]; logger?: Logger; metrics?: Metrics } = {},
): Promise<PolicyDirCheck> {
  let engine: PolicyEngine;
  let sources: PolicySource[];
  try {
    const read = await readPolicyDir(dir);
    engine = new PolicyEngine({ schemaText: read.schemaText, logger: options.logger ?? silentLogger(), metrics: options.metrics ?? new Metrics() });
    sources = [...read.sources, ...(options.extraSources ?? [])];
  } catch (err) {
    return { type: 'rejected', errors: [messageChain(err)] };
  }
  const result = engine.load(sources);
  switch (result.type) {
    case 'loaded':
      return { type: 'loaded', engine, revision: result.revision, policyCount: result.policyCount };
    case 'rejected':
      return { type: 'rejected', errors: result.errors };
    default:
      return unreachable(result);
  }
}

function unreachable(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}
