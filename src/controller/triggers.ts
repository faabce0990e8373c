// Which revocation trigger, if any, has fired for a live task: pure, so every trigger and their
// precedence are unit-tested without a cluster.
import { ANNOTATION_POD_TASK_UID, ANNOTATION_REVOKE, holdsGrant, isLive, type AgentTask } from '../api/index.js';
import { podFacts } from '../kube/lookups.js';
import type { PodObject } from '../kube/objects.js';

export type RevocationReason =
  | 'Manual'
  | 'ParentRevoked'
  | 'PodFailed'
  | 'PodDeleted'
  | 'PodSucceeded'
  | 'MaxPodsExceeded'
  | 'TTLExpired'
  | 'PolicyChanged'
  | 'TaskDeleted'
  | 'NamespaceDeleted'
  | 'CeilingExceeded'
  | 'GrantUnverified';

export interface Trigger {
  reason: RevocationReason;
  phase: 'Completed' | 'Expired' | 'Revoked';
  message: string;
}

/** Pods that carry this task's grant: labelled for the task and stamped with its uid at admission. */
export function boundPods(task: AgentTask, pods: PodObject[]): PodObject[] {
  return pods.filter((p) => p.metadata.annotations?.[ANNOTATION_POD_TASK_UID] === task.metadata.uid);
}

const MAX_REASON_TEXT = 256;

function quoted(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  return clean.length > MAX_REASON_TEXT ? `${clean.slice(0, MAX_REASON_TEXT)}…` : clean;
}

export interface TriggerInput {
  task: AgentTask;
  pods: PodObject[];
  parent?: AgentTask | undefined;
  now: number;
}

export function firedTrigger({ task, pods, parent, now }: TriggerInput): Trigger | undefined {
  const name = `${task.metadata.namespace}/${task.metadata.name}`;
  const manual = task.metadata.annotations?.[ANNOTATION_REVOKE];
  if (manual !== undefined) {
    return { reason: 'Manual', phase: 'Revoked', message: `Revoked by annotation: ${quoted(manual) || 'no reason given'}.` };
  }
  if (task.spec.parentTask && !isLive(parent?.status?.phase)) {
    const parentState = parent ? `is ${parent.status?.phase ?? 'Pending'}` : 'no longer exists';
    return { reason: 'ParentRevoked', phase: 'Revoked', message: `Parent task ${task.spec.parentTask} ${parentState}, so its delegated grant ends too.` };
  }
  const bound = boundPods(task, pods);
  const failed = bound.find((p) => p.status?.phase === 'Failed');
  if (failed) return { reason: 'PodFailed', phase: 'Revoked', message: `Pod ${failed.metadata.name} failed; the grant of ${name} is revoked.` };
  // The webhook holds each pod's slot in the ledger; should more pods carry the grant anyway (a
  // webhook bypassed by an admin, a slot annotation rewritten), the grant ends for all of them.
  const maxPods = task.spec.maxPods ?? 1;
  const running = pods.filter((p) => holdsGrant(podFacts(p), task.metadata.uid ?? ''));
  if (running.length > maxPods) {
    return { reason: 'MaxPodsExceeded', phase: 'Revoked', message: `${running.length} pods carry the grant of ${name} (${running.map((p) => p.metadata.name).sort().join(', ')}), more than its maxPods ${maxPods}; the grant is revoked.` };
  }
  const recorded = task.status?.grant?.pods ?? [];
  const present = new Set(bound.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name));
  const gone = recorded.find((p) => !present.has(p));
  if (gone) return { reason: 'PodDeleted', phase: 'Revoked', message: `Pod ${gone} was deleted before it finished; the grant of ${name} is revoked.` };
  if (bound.length > 0 && bound.every((p) => p.status?.phase === 'Succeeded')) {
    return { reason: 'PodSucceeded', phase: 'Completed', message: `Pod ${bound[0]?.metadata.name ?? ''} succeeded; the task is complete and its grant revoked.` };
  }
  const expiresAt = Date.parse(task.status?.grant?.expiresAt ?? '');
  if (Number.isFinite(expiresAt) && expiresAt <= now) {
    return { reason: 'TTLExpired', phase: 'Expired', message: `The grant expired at ${new Date(expiresAt).toISOString()}.` };
  }
  return undefined;
}
