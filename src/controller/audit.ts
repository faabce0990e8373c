// The audit trail: one structured JSON line and one Kubernetes Event per phase transition,
// naming intent, decision, grant and revocation. Never a token: none passes through here.
import { expandPermissions, type AgentTask, type AgentTaskStatus } from '../api/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { ClusterWriter } from './ports.js';

export interface Transition {
  task: AgentTask;
  from: string | undefined;
  status: AgentTaskStatus;
  /** Trigger to revocation, for revocations. */
  latencyMs?: number;
}

/**
 * The Event of a transition has a name fixed by (task uid, phase): recording it again after a
 * crash is refused by the API server (409), so every transition is recorded exactly once in the
 * cluster, and its audit line is written only by the call that created the Event.
 */
export function auditEventName(task: AgentTask, phase: string): string {
  return `${task.metadata.name}.${(task.metadata.uid ?? '').slice(0, 8)}.${phase.toLowerCase()}`;
}

const RECHECK_WINDOW_MS = 45 * 60_000;

export class AuditTrail {
  /** Transitions known to be recorded (uid/phase), so a reconcile asks the API server once. */
  private readonly recorded = new Set<string>();

  constructor(
    private readonly logger: Logger,
    private readonly writer: Pick<ClusterWriter, 'recordEvent'>,
  ) {}

  /**
   * Records the task's current phase if this process has not seen it recorded: after a crash
   * between a status write and its audit, the restart completes the audit (once).
   */
  async ensureRecorded(task: AgentTask): Promise<void> {
    const phase = task.status?.phase;
    if (!phase || this.recorded.has(`${task.metadata.uid}/${phase}`)) return;
    // Events expire (kube-apiserver --event-ttl, 1 h by default): an older transition cannot be
    // checked, and was audited by the process that made it.
    const times = (task.status?.conditions ?? []).map((c) => Date.parse(c.lastTransitionTime)).filter(Number.isFinite);
    if (times.length === 0 || Date.now() - Math.max(...times) > RECHECK_WINDOW_MS) {
      this.recorded.add(`${task.metadata.uid}/${phase}`);
      return;
    }
    await this.record({ task, from: undefined, status: task.status ?? {} });
  }

  async record({ task, from, status, latencyMs }: Transition): Promise<void> {
    const phase = status.phase ?? 'Pending';
    const key = `${task.metadata.uid}/${phase}`;
    if (this.recorded.has(key)) return;
    const warning = phase === 'Denied' || phase === 'Failed' || phase === 'Revoked';
    let created: boolean;
    try {
      created = await this.writer.recordEvent(task, warning ? 'Warning' : 'Normal', status.reason ?? phase, status.message ?? phase, auditEventName(task, phase));
    } catch (err) {
      // The transition itself stands (its status is written). Failing the reconcile makes it
      // retry, and a reconcile first records the task's current phase (ensureRecorded) before it
      // can move the task on, so no transition goes unrecorded.
      throw new Error(`recording the ${phase} transition of ${task.metadata.namespace}/${task.metadata.name}`, { cause: err });
    }
    this.recorded.add(key);
    if (!created) return; // recorded before a crash or by another replica
    this.logger.info(
      {
        audit: true,
        event: 'transition',
        task: { namespace: task.metadata.namespace, name: task.metadata.name, uid: task.metadata.uid },
        agent: task.spec.agent,
        requester: task.spec.requester?.username ?? '',
        objective: task.spec.intent.objective,
        sensitivity: task.spec.intent.sensitivity,
        tools: task.spec.intent.tools ?? [],
        requestedPermissions: expandPermissions(task),
        from: from ?? 'New',
        to: phase,
        reason: status.reason,
        message: status.message,
        decision: status.decision,
        approval: status.approval,
        grant: status.grant,
        revokedAt: status.revokedAt,
        ...(latencyMs !== undefined ? { revocationLatencyMs: latencyMs } : {}),
        auditId: auditEventName(task, phase),
      },
      'audit',
    );
  }

  /** Forget a task that is gone (bounded memory under churn). */
  forget(taskUid: string): void {
    for (const key of this.recorded) if (key.startsWith(`${taskUid}/`)) this.recorded.delete(key);
  }
}
