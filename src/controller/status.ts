// Builds task statuses: phase, reason, one human sentence, and conditions that agree with them.
import type { AgentTask, AgentTaskStatus, Condition, ConditionType, DecisionStatus, Phase } from '../api/index.js';
import type { Decision } from '../policy/index.js';

export function decisionStatus(decision: Exclude<Decision, { type: 'error' }>, at: number): DecisionStatus {
  return {
    allowed: decision.type === 'allow',
    determiningPolicies: decision.determiningPolicies.slice(0, 256),
    errors: decision.type === 'deny' ? decision.errors.slice(0, 64).map((e) => e.slice(0, 2048)) : [],
    policyRevision: decision.revision,
    evaluatedAt: new Date(at).toISOString(),
  };
}

function condition(type: ConditionType, ok: boolean, reason: string, message: string, previous: Condition[] | undefined, now: string): Condition {
  const status = ok ? 'True' : 'False';
  const prior = previous?.find((c) => c.type === type);
  return { type, status, reason, message, lastTransitionTime: prior && prior.status === status ? prior.lastTransitionTime : now };
}

export interface StatusUpdate {
  phase: Phase;
  reason: string;
  message: string;
  decision?: DecisionStatus;
  grant?: AgentTaskStatus['grant'];
  approval?: AgentTaskStatus['approval'];
  revokedAt?: string;
}

/** The complete next status (a merge patch replaces conditions wholesale, so they are recomputed). */
export function nextStatus(task: AgentTask, update: StatusUpdate, at: number): AgentTaskStatus {
  const now = new Date(at).toISOString();
  const previous = task.status?.conditions;
  const decision = update.decision ?? task.status?.decision;
  const live = update.phase === 'Granted' || update.phase === 'Active';
  const revoked = update.phase === 'Revoked' || update.phase === 'Expired' || update.phase === 'Completed';
  const conditions: Condition[] = [
    condition('Ready', live, update.reason, update.message, previous, now),
    condition('PolicyAllowed', decision?.allowed === true, decision?.allowed ? 'PolicyAllowed' : update.reason, update.message, previous, now),
    condition('Revoked', revoked, revoked ? update.reason : 'NotRevoked', revoked ? update.message : 'The grant has not been revoked.', previous, now),
  ];
  return {
    ...task.status,
    phase: update.phase,
    reason: update.reason,
    message: update.message.slice(0, 2048),
    ...(decision ? { decision } : {}),
    ...(update.grant ? { grant: update.grant } : {}),
    ...(update.approval ? { approval: update.approval } : {}),
    ...(update.revokedAt ? { revokedAt: update.revokedAt } : {}),
    conditions,
    observedGeneration: task.metadata.generation ?? 1,
  };
}
