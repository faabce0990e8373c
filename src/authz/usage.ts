// What each task identity did, counted where the authorizer decides and written to the task's
// status.usage every few seconds. The status is the shared record: every replica (and the next
// process after a restart) starts from what it holds and adds what it counted since, with the
// task's resourceVersion as precondition, so two writers never overwrite each other's counts.
import { expandPermissions, type AgentTask, type PermissionTuple, type TaskUsage } from '../api/index.js';
import { describeTuple } from '../policy/index.js';

interface Tally {
  namespace: string;
  name: string;
  /** Counted here and not yet written. */
  requests: number;
  denied: number;
  /** Granted permissions used (describeTuple names), written or not. */
  used: Set<string>;
  /** Something here is not in the status yet. */
  dirty: boolean;
}

/** Writes a task's usage if its resourceVersion is still `resourceVersion`; returns the updated task. */
export type UsageWriter = (task: AgentTask, usage: TaskUsage) => Promise<AgentTask>;

export class UsageBook {
  readonly #tallies = new Map<string, Tally>();

  /** Requests and refusals of the task so far: its status plus what this process has not written yet. */
  seen(task: AgentTask): { requests: number; denied: number } {
    const tally = this.#tallies.get(task.metadata.uid ?? '');
    const written = task.status?.usage;
    return { requests: (written?.requests ?? 0) + (tally?.requests ?? 0), denied: (written?.denied ?? 0) + (tally?.denied ?? 0) };
  }

  /** Counts one request of the task; `used` is the granted permission it went through, if it passed. */
  record(task: AgentTask, outcome: 'passed' | 'denied', used?: PermissionTuple): void {
    const uid = task.metadata.uid ?? '';
    let tally = this.#tallies.get(uid);
    if (!tally) {
      tally = { namespace: task.metadata.namespace, name: task.metadata.name, requests: 0, denied: 0, used: new Set(), dirty: false };
      this.#tallies.set(uid, tally);
    }
    tally.requests += 1;
    if (outcome === 'denied') tally.denied += 1;
    if (used) tally.used.add(describeTuple(used));
    tally.dirty = true;
  }

  /** Tasks with counts not yet in their status. */
  pending(): { uid: string; namespace: string; name: string }[] {
    return [...this.#tallies].filter(([, t]) => t.dirty).map(([uid, t]) => ({ uid, namespace: t.namespace, name: t.name }));
  }

  /**
   * Writes one task's counts on top of what its status holds. On success the written part is
   * taken off the tally; on a conflict nothing changes and the next flush tries again with the
   * newer status.
   */
  async flush(task: AgentTask, write: UsageWriter, now: Date): Promise<void> {
    const uid = task.metadata.uid ?? '';
    const tally = this.#tallies.get(uid);
    if (!tally?.dirty) return;
    const requests = tally.requests;
    const denied = tally.denied;
    await write(task, usageAfter(task, requests, denied, tally.used, now));
    tally.requests -= requests;
    tally.denied -= denied;
    tally.dirty = tally.requests > 0 || tally.denied > 0;
  }

  /** Drops a task that no longer exists. */
  forget(uid: string): void {
    this.#tallies.delete(uid);
  }
}

/** The task's usage with `requests`/`denied` more and `used` permissions no longer unused. */
export function usageAfter(task: AgentTask, requests: number, denied: number, used: ReadonlySet<string>, now: Date): TaskUsage {
  const written = task.status?.usage;
  // Before the first write every granted permission is unused; after it, the status says which still are.
  const unusedBefore = written?.unusedPermissions ?? expandPermissions(task).map(describeTuple);
  return {
    requests: (written?.requests ?? 0) + requests,
    denied: (written?.denied ?? 0) + denied,
    unusedPermissions: unusedBefore.filter((p) => !used.has(p)),
    updatedAt: now.toISOString(),
  };
}
