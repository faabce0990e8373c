// Facts about a task that both decisions derive the same way, grant time (the reconciler) and
// request time (the authorizer), from the caches they each read.
import { targetNamespaces } from './permissions.js';
import { sensitivityRank } from './sensitivity.js';
import type { AgentTask, TaskLookup } from './types.js';

/** Deeper chains are refused at grant time (DelegationInvalid); counting stops there. */
export const MAX_DELEGATION_DEPTH = 16;

/** How many `parentTask` links lead up from the task, capped at MAX_DELEGATION_DEPTH. */
export function delegationDepthOf(task: AgentTask, tasks: TaskLookup): number {
  let depth = 0;
  for (let t: AgentTask | undefined = task; t?.spec.parentTask && depth < MAX_DELEGATION_DEPTH; depth++) t = tasks.get(t.metadata.namespace, t.spec.parentTask);
  return depth;
}

/** The data owners' floor: the highest `taskgrant.io/sensitivity` of the namespaces the task reaches. */
export function sensitivityFloorOf(task: AgentTask, namespaceSensitivity: (namespace: string) => string | undefined): string | undefined {
  const floors = [task.metadata.namespace, ...targetNamespaces(task)].map(namespaceSensitivity);
  return floors.reduce<string | undefined>((high, s) => (s !== undefined && (high === undefined || sensitivityRank(s) > sensitivityRank(high)) ? s : high), undefined);
}
