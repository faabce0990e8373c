// Builds the Cedar requests for one task (the Cedar model the README describes): one request per
// permission tuple, the same principal and context for all of them.
import { DEFAULT_TTL, higherSensitivity, type RiskLevel, expandPermissions, parseDurationSeconds, type AgentTask, type PermissionTuple } from '../api/index.js';
import type { CedarEntity, CedarValue, EntityRef } from './cedar.js';

export interface DecisionInput {
  task: AgentTask;
  /** A TaskApproval with decision Approve exists for this task's uid. */
  approved: boolean;
  /** Grants already issued to the same <namespace>/<agent> within the rate window, excluding this task. */
  recentGrants: number;
  /** Seconds of access granted to the same <namespace>/<agent> within the rate window, excluding this task. */
  recentGrantSeconds: number;
  /** 0 for a task a person created; the parent's depth + 1 for a delegated task. */
  delegationDepth: number;
  /**
   * The highest `taskgrant.io/sensitivity` label of the namespaces the task reaches: the data
   * owner's floor. Policy sees the higher of it and what the requester declared, so declaring
   * less than the data is gates nothing.
   */
  sensitivityFloor?: string;
  /** The cluster's risk level (taskgrant-risk); normal when not given. */
  risk?: RiskLevel;
}

export interface TupleRequest {
  tuple: PermissionTuple;
  principal: EntityRef;
  action: EntityRef;
  resource: EntityRef;
  entities: CedarEntity[];
}

export type TaskRequests =
  | { type: 'requests'; context: Record<string, CedarValue>; requests: TupleRequest[] }
  | { type: 'invalid'; reason: string };

/**
 * 32 rules of 32 verbs x 32 groups x 32 resources x 32 names would be millions of tuples; a task
 * that broad is not task-scoped, and evaluating it would stall the reconciler and the webhook.
 */
export const MAX_TUPLES = 1024;

export function tupleCount(task: Pick<AgentTask, 'spec'>): number {
  return task.spec.intent.permissions.reduce(
    (sum, r) => sum + r.verbs.length * r.apiGroups.length * r.resources.length * Math.max(1, r.resourceNames?.length ?? 0),
    0,
  );
}

export function agentId(task: Pick<AgentTask, 'spec' | 'metadata'>): string {
  return `${task.metadata.namespace}/${task.spec.agent}`;
}

export function resourceId(t: PermissionTuple): string {
  return `${t.namespace}/${t.apiGroup}/${t.resource}/${t.name}`;
}

function countError(name: string, value: number): string | undefined {
  return Number.isSafeInteger(value) && value >= 0 ? undefined : `${name} must be a non-negative integer, got ${value}`;
}

export function buildRequests(input: DecisionInput): TaskRequests {
  const { task } = input;
  for (const [name, value] of [
    ['recentGrants', input.recentGrants],
    ['recentGrantSeconds', input.recentGrantSeconds],
    ['delegationDepth', input.delegationDepth],
  ] as const) {
    const error = countError(name, value);
    if (error) return { type: 'invalid', reason: error };
  }
  // Not api's ttlSeconds(): it reads an unparseable ttl as 0, which would pass every `ttl <=` limit.
  const ttl = parseDurationSeconds(task.spec.ttl ?? DEFAULT_TTL);
  if (ttl === undefined || ttl <= 0 || !Number.isSafeInteger(Math.ceil(ttl))) return { type: 'invalid', reason: `spec.ttl ${JSON.stringify(task.spec.ttl)} is not a positive duration` };
  const count = tupleCount(task);
  // Every tuple must be allowed; with none, "every" would be vacuously true.
  if (count === 0) return { type: 'invalid', reason: 'the task asks for no permissions' };
  if (count > MAX_TUPLES) return { type: 'invalid', reason: `the task asks for ${count} permission tuples; at most ${MAX_TUPLES} are evaluated` };

  const context: Record<string, CedarValue> = {
    objective: task.spec.intent.objective,
    tools: [...(task.spec.intent.tools ?? [])],
    sensitivity: higherSensitivity(task.spec.intent.sensitivity, input.sensitivityFloor),
    // Rounded up: a fractional ttl ("3600.5s") must not slip under an integer limit.
    ttlSeconds: Math.ceil(ttl),
    taskNamespace: task.metadata.namespace,
    delegationDepth: input.delegationDepth,
    approved: input.approved,
    recentGrants: input.recentGrants,
    recentGrantSeconds: input.recentGrantSeconds,
    risk: input.risk ?? 'normal',
  };
  const principal: EntityRef = { type: 'Agent', id: agentId(task) };
  const agent: CedarEntity = {
    uid: principal,
    attrs: { name: task.spec.agent, namespace: task.metadata.namespace, requester: task.spec.requester?.username ?? '' },
  };
  const requests = expandPermissions(task).map((tuple): TupleRequest => {
    const resource: EntityRef = { type: 'Resource', id: resourceId(tuple) };
    return {
      tuple,
      principal,
      action: { type: 'Action', id: tuple.verb },
      resource,
      entities: [agent, { uid: resource, attrs: { apiGroup: tuple.apiGroup, resource: tuple.resource, namespace: tuple.namespace, name: tuple.name } }],
    };
  });
  return { type: 'requests', context, requests };
}
