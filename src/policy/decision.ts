// What a policy evaluation concludes, per tuple and for the whole task, and the sentence a user
// reads in the task's status when it is denied.
import type { PermissionTuple } from '../api/index.js';

/**
 * - `allowed`: a permit matched, no forbid did, nothing errored.
 * - `forbidden`: a forbid matched (determiningPolicies names it).
 * - `not_permitted`: no permit matched.
 * - `policy_error`: some policy failed while evaluating; Cedar skips such a policy, so the
 *   answer cannot be trusted and counts as a deny whatever Cedar decided.
 * - `invalid_request`: Cedar refused the request itself (e.g. a verb the schema does not know).
 */
export type TupleOutcome = 'allowed' | 'forbidden' | 'not_permitted' | 'policy_error' | 'invalid_request';

export interface TupleDecision {
  tuple: PermissionTuple;
  outcome: TupleOutcome;
  /** Permits that allowed it, or forbids that denied it (policy `@id`s). */
  determiningPolicies: string[];
  errors: string[];
}

export type Decision =
  | { type: 'allow'; revision: string; determiningPolicies: string[]; tuples: TupleDecision[] }
  | {
      type: 'deny';
      revision: string;
      reason: string;
      determiningPolicies: string[];
      errors: string[];
      tuples: TupleDecision[];
      /** The same task, approved, would be allowed: its phase is AwaitingApproval rather than Denied. */
      approvalWouldAllow: boolean;
    }
  | { type: 'error'; revision: string | undefined; reason: string; errors: string[] };

/** The metric label and the word logs use for a decision. */
export type DecisionResult = 'allow' | 'deny' | 'approval_required' | 'error';

export function decisionResult(d: Decision): DecisionResult {
  switch (d.type) {
    case 'allow':
      return 'allow';
    case 'deny':
      return d.approvalWouldAllow ? 'approval_required' : 'deny';
    case 'error':
      return 'error';
    default:
      return unreachable(d);
  }
}

function unreachable(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}

/** `get secrets "db" in team-a`, `patch deployments.apps/scale in team-b`: how kubectl users name things. */
export function describeTuple(t: PermissionTuple): string {
  const slash = t.resource.indexOf('/');
  const [base, sub] = slash < 0 ? [t.resource, ''] : [t.resource.slice(0, slash), t.resource.slice(slash)];
  const resource = t.apiGroup === '' ? t.resource : `${base}.${t.apiGroup}${sub}`;
  const name = t.name === '' ? '' : ` ${JSON.stringify(t.name)}`;
  return `${t.verb} ${resource}${name} in ${t.namespace}`;
}

function policies(ids: readonly string[]): string {
  return ids.length === 0 ? 'a policy' : ids.join(', ');
}

/** Why one tuple is not allowed, as the end of a sentence about it; undefined when it is allowed. */
export function tupleReason(d: TupleDecision, approvalWouldAllow: boolean): string | undefined {
  const what = describeTuple(d.tuple);
  const verdict = approvalWouldAllow ? 'needs approval' : 'is not allowed';
  switch (d.outcome) {
    case 'allowed':
      return undefined;
    case 'forbidden':
      return `${what} ${verdict} (forbidden by ${policies(d.determiningPolicies)})`;
    case 'not_permitted':
      return `${what} ${verdict} (no policy permits it)`;
    case 'policy_error':
      return `${what} is not allowed: a policy errored while evaluating it, which counts as a deny (${d.errors[0] ?? 'unknown error'})`;
    case 'invalid_request':
      return `${what} is not allowed: ${d.errors[0] ?? 'the request could not be evaluated'}`;
    default:
      return unreachable(d.outcome);
  }
}

/**
 * The tuple a deny is explained by: the first one whose policy errored (that needs an
 * administrator), then the first one Cedar could not evaluate (the task must be fixed; approval
 * cannot help), otherwise the first denied one.
 */
export function explainingTuple(tuples: readonly TupleDecision[]): TupleDecision | undefined {
  return (
    tuples.find((t) => t.outcome === 'policy_error') ??
    tuples.find((t) => t.outcome === 'invalid_request') ??
    tuples.find((t) => t.outcome !== 'allowed')
  );
}
