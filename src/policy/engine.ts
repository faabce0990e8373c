// The policy engine: holds the policy set in force and decides tasks against it.
// Fail closed (STYLE.md habit 4): not loaded, an exception, a policy that errors, a request Cedar
// refuses — each ends in "not allowed" with a reason and a metric. A set that fails to load is
// refused whole and the last good one keeps serving (habit 5).
import { createHash } from 'node:crypto';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { authorize, preparePolicySet, prepareSchema, type CedarValue } from './cedar.js';
import { compilePolicySet, policyRevision, type CompileResult, type LoadedPolicy } from './compile.js';
import { decisionResult, describeTuple, explainingTuple, tupleReason, type Decision, type TupleDecision } from './decision.js';
import { buildRequests, type DecisionInput, type TupleRequest } from './request.js';
import type { PolicyFamily, PolicySource } from './sources.js';

export interface PolicyEngineOptions {
  /** The Cedar schema in human syntax (policies/schema.cedarschema). */
  schemaText: string;
  logger: Logger;
  metrics: Metrics;
  /** Which family this engine decides (default grant); only the grant family sets the revision gauge. */
  family?: PolicyFamily;
  /**
   * Verdicts kept for inputs decided before (default 4,096; 0: none). A live grant is re-derived
   * on each of its events and an agent's tasks repeat: the same requests under the same policy
   * revision get the same answer, which Cedar need not compute again.
   */
  decisionCacheSize?: number;
}

export type LoadResult =
  | { type: 'loaded'; revision: string; policyCount: number }
  | { type: 'rejected'; errors: string[]; keptRevision: string | undefined };

interface ActiveSet {
  revision: string;
  policies: ReadonlyMap<string, LoadedPolicy>;
}

type Verdict = Exclude<Decision, { type: 'error' }>;

let engines = 0;

export class PolicyEngine {
  readonly #schemaText: string;
  readonly #schemaId: string;
  /**
   * Where this engine's policy set lives in cedar-wasm's cache. One slot per engine, replaced on
   * each load, rather than one per revision: the cache has no eviction, so a slot per revision
   * would grow with every ConfigMap edit for the life of the process.
   */
  readonly #policySetId = `taskgrant-engine-${++engines}`;
  readonly #verbs: ReadonlySet<string>;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #family: PolicyFamily;
  #active: ActiveSet | undefined;
  /** Verdict by decisionKey, least recently used first (a Map keeps insertion order). */
  readonly #verdicts = new Map<string, Verdict>();
  readonly #cacheSize: number;

  /** Throws when the schema does not parse: nothing could be validated or decided without it. */
  constructor(options: PolicyEngineOptions) {
    this.#schemaText = options.schemaText;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#family = options.family ?? 'grant';
    this.#cacheSize = options.decisionCacheSize ?? 4096;
    // Keyed by content: cedar-wasm caches prepared schemas per process, shared by every engine.
    this.#schemaId = `schema-${createHash('sha256').update(options.schemaText).digest('hex').slice(0, 16)}`;
    const schema = prepareSchema(this.#schemaId, options.schemaText);
    if (schema.type === 'error') {
      const details = schema.errors.map((e) => e.message).join('; ');
      throw new Error(`the Cedar schema is invalid: ${details}`, { cause: schema.errors });
    }
    this.#verbs = new Set(schema.actions);
  }

  /** False until a policy set has loaded; until then every evaluation is an error (never an allow). */
  get ready(): boolean {
    return this.#active !== undefined;
  }

  get revision(): string | undefined {
    return this.#active?.revision;
  }

  /** The verbs the schema declares, sorted. */
  get verbs(): string[] {
    return [...this.#verbs].sort();
  }

  /** Ids of the policies in force, sorted. */
  policyIds(): string[] {
    return [...(this.#active?.policies.keys() ?? [])].sort();
  }

  policy(id: string): LoadedPolicy | undefined {
    return this.#active?.policies.get(id);
  }

  /** The source text (with its leading comment) of a policy in force, for `kubectl taskgrant explain`. */
  policyText(id: string): string | undefined {
    return this.policy(id)?.text;
  }

  /** Parses and strictly validates the whole set; any error refuses it and keeps the set in force. */
  load(sources: readonly PolicySource[]): LoadResult {
    const kept = this.#active?.revision;
    if (kept !== undefined && policyRevision(this.#schemaText, sources) === kept) {
      this.#metrics.policyReloads.inc({ result: 'success' });
      return { type: 'loaded', revision: kept, policyCount: this.#active?.policies.size ?? 0 };
    }
    let compiled: CompileResult;
    try {
      compiled = compilePolicySet(this.#schemaText, sources);
      if (compiled.type === 'compiled') {
        // Replaces the set evaluate() reads. Side-effect free on failure, and nothing between
        // here and `#active` can throw, so the cached set and `#active` never disagree.
        const prepared = preparePolicySet(this.#policySetId, compiled.texts);
        if (prepared.type === 'error') compiled = { type: 'rejected', errors: prepared.errors.map((e) => `preparing the policy set: ${e.message}`) };
      }
    } catch (cause) {
      this.#logger.error({ err: cause, keptRevision: kept }, 'policy set could not be compiled');
      compiled = { type: 'rejected', errors: [`compiling the policy set failed: ${cause instanceof Error ? cause.message : String(cause)}`] };
    }
    switch (compiled.type) {
      case 'rejected':
        this.#metrics.policyReloads.inc({ result: 'rejected' });
        this.#logger.error({ family: this.#family, errors: compiled.errors, keptRevision: kept, sources: sources.map((s) => s.origin) }, 'policy set rejected, keeping the previous one');
        return { type: 'rejected', errors: compiled.errors, keptRevision: kept };
      case 'compiled':
        this.#active = { revision: compiled.revision, policies: compiled.policies };
        // Keyed by revision, so none would be found again; dropped rather than left to age out.
        this.#verdicts.clear();
        this.#metrics.policyReloads.inc({ result: 'success' });
        if (this.#family === 'grant') this.#metrics.policyRevisionInfo.set(compiled.policies.size);
        if (compiled.warnings.length > 0) this.#logger.warn({ revision: compiled.revision, warnings: compiled.warnings }, 'policy set loaded with validation warnings');
        this.#logger.info({ family: this.#family, revision: compiled.revision, previousRevision: kept, policyCount: compiled.policies.size }, 'policy set loaded');
        return { type: 'loaded', revision: compiled.revision, policyCount: compiled.policies.size };
      default:
        return unreachable(compiled);
    }
  }

  /** Decides a task. Never throws; anything unexpected is a decision of type `error`. */
  evaluate(input: DecisionInput): Decision {
    const started = performance.now();
    const decision = this.#evaluate(input);
    this.#metrics.policyEvaluationSeconds.observe((performance.now() - started) / 1000);
    const result = decisionResult(decision);
    this.#metrics.decisions.inc({ result });
    const meta = input.task?.metadata;
    this.#logger.debug({ namespace: meta?.namespace, name: meta?.name, uid: meta?.uid, result, revision: decision.revision }, 'policy decision');
    return decision;
  }

  /**
   * Decides one request built elsewhere (the runtime family decides each API request of a task
   * identity so). The same fail-closed reading as a task's tuple: anything but `allowed` refuses.
   */
  decideRequest(request: TupleRequest, context: Record<string, CedarValue>): TupleDecision {
    if (!this.#active) return { tuple: request.tuple, outcome: 'policy_error', determiningPolicies: [], errors: ['policies not loaded yet'] };
    try {
      return this.#decideTuple(request, context);
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      return { tuple: request.tuple, outcome: 'policy_error', determiningPolicies: [], errors: [`policy evaluation failed: ${message}`] };
    }
  }

  #evaluate(input: DecisionInput): Decision {
    const active = this.#active;
    if (!active) return { type: 'error', revision: undefined, reason: 'policies not loaded yet', errors: [] };
    try {
      const first = this.#decide(active, input);
      if (first.type === 'deny' && !input.approved) {
        const approved = this.#decide(active, { ...input, approved: true });
        if (approved.type === 'allow') return withReason({ ...first, approvalWouldAllow: true });
      }
      return first;
    } catch (cause) {
      const meta = input.task?.metadata;
      this.#logger.error({ err: cause, namespace: meta?.namespace, name: meta?.name, revision: active.revision }, 'policy evaluation failed');
      const message = cause instanceof Error ? cause.message : String(cause);
      return { type: 'error', revision: active.revision, reason: `policy evaluation failed: ${message}`, errors: [message] };
    }
  }

  #decide(active: ActiveSet, input: DecisionInput): Verdict {
    const built = buildRequests(input);
    switch (built.type) {
      case 'invalid':
        return {
          type: 'deny',
          revision: active.revision,
          reason: `the task could not be evaluated: ${built.reason}`,
          determiningPolicies: [],
          errors: [built.reason],
          tuples: [],
          approvalWouldAllow: false,
        };
      case 'requests': {
        const key = this.#cacheSize > 0 ? decisionKey(active.revision, built.context, built.requests) : undefined;
        const kept = key === undefined ? undefined : this.#verdicts.get(key);
        if (key !== undefined && kept !== undefined) {
          this.#verdicts.delete(key);
          this.#verdicts.set(key, kept);
          return kept;
        }
        const verdict = this.#decideRequests(active, built.context, built.requests);
        // A verdict with an error in it (a policy that errored, a request Cedar refused) is decided
        // again next time: what failed once may not fail twice, and a deny is not kept for it.
        if (key !== undefined && verdict.tuples.every((t) => t.errors.length === 0)) {
          this.#verdicts.set(key, verdict);
          if (this.#verdicts.size > this.#cacheSize) this.#verdicts.delete(this.#verdicts.keys().next().value as string);
        }
        return verdict;
      }
      default:
        return unreachable(built);
    }
  }

  #decideRequests(active: ActiveSet, context: Record<string, CedarValue>, requests: readonly TupleRequest[]): Verdict {
    const tuples = requests.map((r) => this.#decideTuple(r, context));
    if (tuples.every((t) => t.outcome === 'allowed')) return { type: 'allow', revision: active.revision, determiningPolicies: unique(tuples.flatMap((t) => t.determiningPolicies)), tuples };
    const denied = tuples.filter((t) => t.outcome !== 'allowed');
    return withReason({
      type: 'deny',
      revision: active.revision,
      reason: '',
      determiningPolicies: unique(denied.flatMap((t) => t.determiningPolicies)),
      errors: tuples.flatMap((t) => t.errors.map((e) => `${describeTuple(t.tuple)}: ${e}`)),
      tuples,
      approvalWouldAllow: false,
    });
  }

  #decideTuple(request: TupleRequest, context: Record<string, CedarValue>): TupleDecision {
    const { tuple } = request;
    // Checked here, not left to Cedar, so the user reads which verb is wrong rather than a schema error.
    if (!this.#verbs.has(tuple.verb))
      return { tuple, outcome: 'invalid_request', determiningPolicies: [], errors: [`unknown verb ${JSON.stringify(tuple.verb)}: the policy schema declares no such action`] };
    const answer = authorize({ ...request, context, schemaId: this.#schemaId, policySetId: this.#policySetId });
    switch (answer.type) {
      case 'invalid':
        return { tuple, outcome: 'invalid_request', determiningPolicies: [], errors: answer.errors.map((e) => `the request was refused: ${e}`) };
      case 'decided': {
        const errors = answer.errors.map((e) => `policy ${e.policyId} errored: ${e.message}`);
        const outcome = errors.length > 0 ? 'policy_error' : answer.allowed ? 'allowed' : answer.determiningPolicies.length > 0 ? 'forbidden' : 'not_permitted';
        return { tuple, outcome, determiningPolicies: [...answer.determiningPolicies].sort(), errors };
      }
      default:
        return unreachable(answer);
    }
  }
}

/**
 * Everything Cedar sees of one decision — the policy set's revision, the context, and each
 * tuple's principal, action, resource and entities — hashed: equal keys, equal answers.
 */
function decisionKey(revision: string, context: Record<string, CedarValue>, requests: readonly TupleRequest[]): string {
  return createHash('sha256').update(JSON.stringify([revision, context, requests])).digest('base64');
}

function withReason(d: Extract<Decision, { type: 'deny' }>): Extract<Decision, { type: 'deny' }> {
  const explaining = explainingTuple(d.tuples);
  const reason = explaining ? tupleReason(explaining, d.approvalWouldAllow) : undefined;
  return reason === undefined ? d : { ...d, reason };
}

function unique(ids: readonly string[]): string[] {
  return [...new Set(ids)].sort();
}

function unreachable(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}
