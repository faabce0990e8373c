// Writing what happened: the status (only when it changes anything a user sees), the audit
// record of every phase transition, and the finalizer that keeps a task until its grant is gone.
import { FINALIZER, LABEL_TASK_LIVE, type AgentTask } from '../api/index.js';
import type { AuditTrail } from './audit.js';
import type { Clock, ClusterView, ClusterWriter } from './ports.js';
import { nextStatus, type StatusUpdate } from './status.js';

export class Transitions {
  constructor(
    private readonly deps: {
      view: Pick<ClusterView, 'task'>;
      writer: Pick<ClusterWriter, 'patchTaskStatus' | 'setTaskFinalizers' | 'setTaskLiveLabel'>;
      audit: AuditTrail;
      clock: Clock;
      /** Label live tasks taskgrant.io/live (admission mode policy: the pod policies' parameters). */
      liveLabel?: boolean;
    },
  ) {}

  /** Before a task is seen as granted: its pods are admitted by the policies only once it is labelled. */
  async markLive(task: AgentTask): Promise<AgentTask> {
    if (!this.deps.liveLabel || task.metadata.labels?.[LABEL_TASK_LIVE] === 'true') return task;
    return this.deps.writer.setTaskLiveLabel(task, true);
  }

  /**
   * Writes the status when it changes anything a user sees; audits real phase transitions. A
   * revocation's latency is known only once its bindings are gone: given as a promise, the audit
   * line waits for it, so it never records an end that has not happened.
   */
  async write(task: AgentTask, update: StatusUpdate, latency?: number | Promise<number>): Promise<void> {
    const current = task.status;
    const unchanged =
      current?.phase === update.phase &&
      current.reason === update.reason &&
      current.message === update.message &&
      (update.grant === undefined || JSON.stringify(current.grant) === JSON.stringify(update.grant)) &&
      (update.decision === undefined || current.decision?.policyRevision === update.decision.policyRevision);
    if (unchanged) return;
    const status = nextStatus(task, update, this.deps.clock.now());
    const updated = await this.deps.writer.patchTaskStatus(task, status);
    if (current?.phase !== update.phase) {
      const latencyMs = await latency;
      await this.deps.audit.record({ task: updated, from: current?.phase, status, ...(latencyMs !== undefined ? { latencyMs } : {}) });
    }
  }

  /** A terminal transition of a task that holds nothing: no finalizer is needed any more. */
  async finish(task: AgentTask, update: StatusUpdate): Promise<void> {
    await this.write(task, update);
    await this.dropFinalizer(this.latest(task));
  }

  /** Before anything is granted: the finalizer, and the live label in the same write when the mode wants it. */
  async ensureFinalizer(task: AgentTask): Promise<AgentTask> {
    const finalizers = task.metadata.finalizers ?? [];
    const labelMissing = this.deps.liveLabel === true && task.metadata.labels?.[LABEL_TASK_LIVE] !== 'true';
    if (finalizers.includes(FINALIZER) && !labelMissing) return task;
    const withFinalizer = finalizers.includes(FINALIZER) ? finalizers : [...finalizers, FINALIZER];
    return this.deps.writer.setTaskFinalizers(task, withFinalizer, labelMissing ? true : undefined);
  }

  /** The finalizer and the live label go in one write. */
  async dropFinalizer(task: AgentTask): Promise<void> {
    // Whatever the mode now: a label left from another mode would only widen the policies' parameters.
    const labelled = task.metadata.labels?.[LABEL_TASK_LIVE] !== undefined;
    const finalizers = task.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER) && !labelled) return;
    await this.deps.writer.setTaskFinalizers(task, finalizers.filter((f) => f !== FINALIZER), labelled ? false : undefined);
  }

  /** The task as the cache holds it now (after our own writes), or as given. */
  latest(task: AgentTask): AgentTask {
    return this.deps.view.task(task.metadata.namespace, task.metadata.name) ?? task;
  }
}
