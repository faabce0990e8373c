// Deciding a request: a pure function from the task, its parent, its approvals, the agent's
// ledger and the policy to a plan. No I/O and no clock of its own, so every outcome is unit-tested
// without a cluster; the reconciler carries the plan out.
import {
  DEFAULT_TOKEN_EXPIRATION_SECONDS,
  expandPermissions,
  formatDuration,
  isLive,
  isTerminal,
  MAX_DELEGATION_DEPTH,
  targetNamespaces,
  taskIdentityOf,
  taskServiceAccountName,
  tupleCovered,
  type AgentTask,
  type TaskApproval,
} from '../api/index.js';
import { describeTuple, type Decision, type DecisionInput } from '../policy/index.js';
import type { LedgerEntry } from './ports.js';

/** The part of the policy engine the controller uses. */
export interface PolicyDecider {
  readonly ready: boolean;
  readonly revision: string | undefined;
  evaluate(input: DecisionInput): Decision;
}

export type Refusal = { reason: string; message: string };

/** Before policy is asked: what the task's namespace, parent and approvals already settle. */
export type Precheck =
  | { type: 'ok' }
  | { type: 'wait'; reason: 'WaitingForParent'; message: string }
  | ({ type: 'deny' } & Refusal);

export interface RequestFacts {
  task: AgentTask;
  /** The parent the task names, if it still is the one the grant was decided against. */
  parent: AgentTask | undefined;
  /** How many `parentTask` links lead up from the task (capped at MAX_DELEGATION_DEPTH). */
  depth: number;
  /** The latest TaskApproval of this very uid, if any. */
  approval: TaskApproval | undefined;
  operatorNamespace: string | undefined;
}

export function precheck({ task, parent, depth, approval, operatorNamespace }: RequestFacts): Precheck {
  if (operatorNamespace && targetNamespaces(task).includes(operatorNamespace)) {
    return { type: 'deny', reason: 'OperatorNamespace', message: `No task may be granted access in ${operatorNamespace}, taskgrant's own namespace (it holds the operator's keys and records).` };
  }
  const creator = taskIdentityOf(task.spec.requester?.username);
  // The webhook makes a task identity's tasks children of its own task; one that arrives
  // otherwise (the webhook skipped, or the parent named another) is refused here too.
  if (creator && (!parent || creator.namespace !== task.metadata.namespace || creator.name !== taskServiceAccountName(parent.metadata.name, parent.metadata.uid ?? ''))) {
    return { type: 'deny', reason: 'DelegationRequired', message: `Requested by the task identity ${task.spec.requester?.username ?? ''}: a task's agent may only create children of its own task (spec.parentTask naming that task).` };
  }
  if (task.spec.parentTask) {
    const verdict = delegationVerdict(task, parent, depth);
    if (verdict.type !== 'ok') return verdict;
  }
  if (approval?.spec.decision === 'Deny') {
    return { type: 'deny', reason: 'ApprovalDenied', message: `Denied by ${approval.spec.approver?.username ?? 'an approver'}: ${approval.spec.reason ?? 'no reason given'}.` };
  }
  return { type: 'ok' };
}

function delegationVerdict(task: AgentTask, parent: AgentTask | undefined, depth: number): Precheck {
  const parentName = task.spec.parentTask ?? '';
  if (!parent) return { type: 'deny', reason: 'ParentNotFound', message: `Parent task ${parentName} does not exist in ${task.metadata.namespace}.` };
  if (parent.metadata.uid === task.metadata.uid) return { type: 'deny', reason: 'DelegationInvalid', message: 'A task cannot be its own parent.' };
  const parentPhase = parent.status?.phase;
  if (isTerminal(parentPhase)) return { type: 'deny', reason: 'ParentNotActive', message: `Parent task ${parentName} is ${parentPhase}; only a Granted or Active parent can delegate.` };
  if (!isLive(parentPhase)) return { type: 'wait', reason: 'WaitingForParent', message: `Waiting for parent task ${parentName} (${parentPhase ?? 'Pending'}) to be granted.` };
  if (depth >= MAX_DELEGATION_DEPTH) return { type: 'deny', reason: 'DelegationInvalid', message: 'The delegation chain is too deep or loops.' };
  const parentTuples = expandPermissions(parent);
  const excess = expandPermissions(task).filter((t) => !tupleCovered(t, parentTuples));
  if (excess.length > 0) {
    const named = excess.slice(0, 3).map(describeTuple).join('; ');
    return { type: 'deny', reason: 'DelegationExceedsParent', message: `A delegated task can only narrow its parent's access; ${parentName} was not granted: ${named}${excess.length > 3 ? ` (and ${excess.length - 3} more)` : ''}.` };
  }
  const wider = widerThanParent(task, parent);
  if (wider.length > 0) return { type: 'deny', reason: 'DelegationExceedsParent', message: `A delegated task can only narrow its parent's access; ${wider.join('; ')}.` };
  return { type: 'ok' };
}

/**
 * Beyond its permissions, what else a child could hold more of than its parent: more pods
 * carrying the grant, a longer-lived token, or a token for an audience the parent has none for.
 */
export function widerThanParent(child: AgentTask, parent: AgentTask): string[] {
  const name = parent.metadata.name;
  const wider: string[] = [];
  const [childPods, parentPods] = [child.spec.maxPods ?? 1, parent.spec.maxPods ?? 1];
  if (childPods > parentPods) wider.push(`maxPods ${childPods} is more than ${name}'s ${parentPods}`);
  const lifetime = (t: AgentTask) => t.spec.token?.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS;
  if (lifetime(child) > lifetime(parent)) wider.push(`token expirationSeconds ${lifetime(child)} is more than ${name}'s ${lifetime(parent)}`);
  // No audience listed means the API server's own.
  const audiences = (t: AgentTask) => (t.spec.token?.audiences?.length ? t.spec.token.audiences : ['']);
  const foreign = audiences(child).filter((a) => !audiences(parent).includes(a));
  if (foreign.length > 0) wider.push(`token audience ${foreign.map((a) => (a === '' ? '(the API server)' : a)).join(', ')} is not among ${name}'s`);
  return wider;
}

/** What a policy decision means for a task that is asking. */
export type Plan =
  | { type: 'grant'; decision: Extract<Decision, { type: 'allow' }> }
  | { type: 'await-approval'; decision: Extract<Decision, { type: 'deny' }>; message: string }
  | { type: 'deny'; decision: Extract<Decision, { type: 'deny' }>; message: string }
  | { type: 'retry'; message: string };

export interface PolicyFacts {
  task: AgentTask;
  approved: boolean;
  /** The agent's other grants inside the re-issuance window. */
  recent: LedgerEntry[];
  depth: number;
  /** The highest sensitivity floor of the namespaces the task reaches. */
  sensitivityFloor?: string | undefined;
  reissueWindowMs: number;
}

export function plan(policy: PolicyDecider, facts: PolicyFacts): Plan {
  const decision = evaluate(policy, facts);
  switch (decision.type) {
    case 'error':
      return { type: 'retry', message: `Policy could not decide, so nothing is granted: ${decision.reason}.` };
    case 'allow':
      return { type: 'grant', decision };
    case 'deny':
      if (decision.approvalWouldAllow && !facts.approved) {
        return { type: 'await-approval', decision, message: `${capitalize(decision.reason)}; a TaskApproval for uid ${facts.task.metadata.uid ?? ''} would allow it.` };
      }
      return { type: 'deny', decision, message: `${capitalize(decision.reason)}${retryHint(facts.recent, facts.reissueWindowMs)}.` };
    default:
      return assertNever(decision);
  }
}

// Timed by the engine itself (taskgrant_policy_evaluation_seconds), once per decision.
export function evaluate(policy: PolicyDecider, { task, approved, recent, depth, sensitivityFloor }: PolicyFacts): Decision {
  try {
    return policy.evaluate({
      task,
      approved,
      recentGrants: recent.length,
      recentGrantSeconds: recent.reduce((sum, e) => sum + e.ttlSeconds, 0),
      delegationDepth: depth,
      ...(sensitivityFloor !== undefined ? { sensitivityFloor } : {}),
    });
  } catch (err) {
    // The engine is meant never to throw; if it does, that is a deny, not a crash.
    return { type: 'error', revision: policy.revision, reason: `policy evaluation failed: ${(err as Error).message}`, errors: [String(err)] };
  }
}

/** When the agent's oldest counted grant leaves the window: the earliest it may ask again. */
function retryHint(recent: LedgerEntry[], windowMs: number): string {
  if (recent.length === 0) return '';
  const oldest = Math.min(...recent.map((e) => e.at));
  const at = new Date(oldest + windowMs).toISOString();
  return ` (the agent holds ${recent.length} grant(s) issued in the last ${formatDuration(windowMs / 1000)}; the oldest leaves the window at ${at})`;
}

/** Only approvals naming this very task instance count; the webhook already refuses the rest. */
export function latestApproval(task: AgentTask, approvals: TaskApproval[]): TaskApproval | undefined {
  return approvals
    .filter((a) => a.spec.taskUID === task.metadata.uid)
    .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''))
    .at(-1);
}

export function approvalStatus(approval: TaskApproval, now: number) {
  return {
    username: approval.spec.approver?.username ?? '',
    reason: approval.spec.reason ?? '',
    approvedAt: approval.metadata.creationTimestamp ?? new Date(now).toISOString(),
    approval: approval.metadata.name,
  };
}

function capitalize(text: string): string {
  return text.length === 0 ? text : text[0]!.toUpperCase() + text.slice(1);
}

function assertNever(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`);
}
