// What a receipt says, and whether the task behind it still holds its grant. The claims are flat
// and JSON-only so a backend can enforce them with any JWT library: permissions are the task's
// own permission tuples (an unnamed tuple covers every name), exactly what Cedar decided on.
import { createHash } from 'node:crypto';
import { isString, ANNOTATION_REVOKE, LIVE_PHASES, expandPermissions, type AgentTask, type PermissionTuple } from '../api/index.js';

export interface TaskClaims {
  task_uid: string;
  task_name: string;
  task_namespace: string;
  agent: string;
  /** Username of whoever created the task (written by the admission webhook); '' if unknown. */
  requester: string;
  permissions: PermissionTuple[];
  tools: string[];
  /** Hex SHA-256 of the objective: lets a backend match the intent without the text travelling. */
  objective_sha256: string;
  /** The task pod the exchanged token was bound to. */
  pod: string;
}

export interface ReceiptClaims extends TaskClaims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  exp: number;
  jti: string;
}

export function objectiveSha256(objective: string): string {
  return createHash('sha256').update(objective, 'utf8').digest('hex');
}

/** `sub`: the Cedar principal id (`<namespace>/<agent>`), so receipts and policies name agents alike. */
export function subjectOf(task: AgentTask): string {
  return `${task.metadata.namespace}/${task.spec.agent}`;
}

export function taskClaims(task: AgentTask, pod: string): TaskClaims {
  return {
    task_uid: task.metadata.uid ?? '',
    task_name: task.metadata.name,
    task_namespace: task.metadata.namespace,
    agent: task.spec.agent,
    requester: task.spec.requester?.username ?? '',
    permissions: expandPermissions(task),
    tools: [...(task.spec.intent.tools ?? [])],
    objective_sha256: objectiveSha256(task.spec.intent.objective),
    pod,
  };
}

const isTuple = (v: unknown): v is PermissionTuple =>
  typeof v === 'object' && v !== null && (['verb', 'apiGroup', 'resource', 'name', 'namespace'] as const).every((k) => isString((v as Record<string, unknown>)[k]));

/** The task claims of a verified payload, or undefined when any is missing or mistyped. */
export function parseTaskClaims(payload: Record<string, unknown>): TaskClaims | undefined {
  const { task_uid, task_name, task_namespace, agent, requester, permissions, tools, objective_sha256, pod } = payload;
  if (![task_uid, task_name, task_namespace, agent, requester, objective_sha256, pod].every(isString)) return undefined;
  if (!Array.isArray(permissions) || !permissions.every(isTuple) || !Array.isArray(tools) || !tools.every(isString)) return undefined;
  return {
    task_uid: task_uid as string,
    task_name: task_name as string,
    task_namespace: task_namespace as string,
    agent: agent as string,
    requester: requester as string,
    permissions,
    tools,
    objective_sha256: objective_sha256 as string,
    pod: pod as string,
  };
}

export type Liveness = { live: true; expiresAtMs: number } | { live: false; reason: string };

/**
 * Whether the task holds its grant at `nowMs`. A revoke annotation or a deletion counts as
 * revoked at once, before the controller has finished deleting the grant.
 */
export function taskLiveness(task: AgentTask | undefined, expectedUid: string | undefined, nowMs: number): Liveness {
  if (!task) return { live: false, reason: 'the task no longer exists' };
  const where = `task ${task.metadata.namespace}/${task.metadata.name}`;
  if (!task.metadata.uid || (expectedUid !== undefined && task.metadata.uid !== expectedUid)) return { live: false, reason: `${where} was deleted and recreated` };
  if (task.metadata.deletionTimestamp) return { live: false, reason: `${where} is being deleted` };
  if (task.metadata.annotations?.[ANNOTATION_REVOKE] !== undefined) return { live: false, reason: `${where} was revoked` };
  const phase = task.status?.phase ?? 'Pending';
  if (!LIVE_PHASES.includes(phase)) return { live: false, reason: `${where} is ${phase}, not ${LIVE_PHASES.join(' or ')}` };
  const expiresAt = Date.parse(task.status?.grant?.expiresAt ?? '');
  if (Number.isNaN(expiresAt)) return { live: false, reason: `${where} has no readable grant expiry` };
  if (expiresAt <= nowMs) return { live: false, reason: `${where} expired at ${task.status?.grant?.expiresAt}` };
  return { live: true, expiresAtMs: expiresAt };
}
