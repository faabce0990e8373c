// Builds the Cedar request of the runtime family (policies/runtime.cedarschema) for one API call
// of a task identity: the call as principal/action/resource, the task and the moment as context.
import { DEFAULT_SENSITIVITY, higherSensitivity, type AgentTask, type PermissionTuple, type RiskLevel } from '../api/index.js';
import type { CedarValue, EntityRef } from './cedar.js';
import { agentId, resourceId, type TupleRequest } from './request.js';

export interface RuntimeInput {
  task: AgentTask;
  /** The call, named like a granted tuple: resource carries the subresource ("pods/log"). */
  call: PermissionTuple;
  /** Calls of the task before this one, and how many of them were refused. */
  requests: number;
  denied: number;
  risk: RiskLevel;
  /** A person approved this very task. */
  approved: boolean;
  delegationDepth: number;
  /** The highest `taskgrant.io/sensitivity` of the namespaces the task reaches. */
  sensitivityFloor?: string | undefined;
  now: Date;
}

const READ_VERBS = new Set(['get', 'list', 'watch']);

export function buildRuntimeRequest(input: RuntimeInput): { request: TupleRequest; context: Record<string, CedarValue> } {
  const { task, call } = input;
  const issuedAt = Date.parse(task.status?.grant?.issuedAt ?? '');
  const context: Record<string, CedarValue> = {
    task: {
      objective: task.spec.intent.objective,
      tools: [...(task.spec.intent.tools ?? [])],
      sensitivity: higherSensitivity(task.spec.intent.sensitivity ?? DEFAULT_SENSITIVITY, input.sensitivityFloor),
      namespace: task.metadata.namespace,
      approved: input.approved,
      delegationDepth: input.delegationDepth,
      maxRequests: task.spec.intent.maxRequests ?? 0,
    },
    requests: input.requests,
    denied: input.denied,
    risk: input.risk,
    readOnly: READ_VERBS.has(call.verb),
    secondsSinceGrant: Number.isFinite(issuedAt) ? Math.max(0, Math.floor((input.now.getTime() - issuedAt) / 1000)) : 0,
    hourUtc: input.now.getUTCHours(),
  };
  const principal: EntityRef = { type: 'Agent', id: agentId(task) };
  const resource: EntityRef = { type: 'Resource', id: resourceId(call) };
  return {
    context,
    request: {
      tuple: call,
      principal,
      action: { type: 'Action', id: call.verb },
      resource,
      entities: [
        { uid: principal, attrs: { name: task.spec.agent, namespace: task.metadata.namespace, requester: task.spec.requester?.username ?? '' } },
        { uid: resource, attrs: { apiGroup: call.apiGroup, resource: call.resource, namespace: call.namespace, name: call.name } },
      ],
    },
  };
}
