// The audit trail: one structured JSON line and one Kubernetes Event per phase transition,
// naming intent, decision, grant and revocation. Never a token: none passes through here.
import { createHmac } from 'node:crypto';
import { expandPermissions, isTerminal, type AgentTask, type AgentTaskStatus } from '../api/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { Clock, ClusterWriter } from './ports.js';

export interface Transition {
  task: AgentTask;
  from: string | undefined;
  status: AgentTaskStatus;
  /** Trigger to revocation, for revocations. */
  latencyMs?: number;
}

/**
 * The Event of a transition has a name fixed by (task uid, phase) and keyed with the operator's
 * audit key: recording it again after a crash is refused by the API server (409), so each
 * transition has one Event; and no one without the key can name it first — an Event created
 * ahead of the operator would otherwise stand in for, and silence, the transition's record.
 */
export function auditEventName(task: AgentTask, phase: string, key: Uint8Array): string {
  const mac = createHmac('sha256', key).update(`${task.metadata.uid ?? ''}/${phase}`).digest('hex').slice(0, 24);
  return `${task.metadata.name}.${mac}`;
}

const RECHECK_WINDOW_MS = 45 * 60_000;

export class AuditTrail {
  /** Transitions known to be recorded (uid -> phases), so a reconcile asks the API server once. */
  private readonly recorded = new Map<string, Set<string>>();

  constructor(
    private readonly logger: Logger,
    private readonly writer: Pick<ClusterWriter, 'recordEvent' | 'auditEventOwner'>,
    private readonly key: Uint8Array,
    private readonly clock: Clock,
  ) {}

  /**
   * Records the task's current phase if it was not: after a crash between a status write and
   * its audit, the restart completes the audit. Its Event is looked up first, so a transition
   * recorded before the restart is not written twice.
   */
  async ensureRecorded(task: AgentTask): Promise<void> {
    const phase = task.status?.phase;
    if (!phase || this.isRecorded(task, phase)) return;
    // Events expire (kube-apiserver --event-ttl, 1 h by default): an older transition cannot be
    // checked, and was audited by the process that made it.
    const times = (task.status?.conditions ?? []).map((c) => Date.parse(c.lastTransitionTime)).filter(Number.isFinite);
    if (times.length === 0 || this.clock.now() - Math.max(...times) > RECHECK_WINDOW_MS) {
      this.markRecorded(task, phase);
      return;
    }
    const owner = await this.writer.auditEventOwner(task, auditEventName(task, phase, this.key));
    if (owner === 'ours') {
      this.markRecorded(task, phase);
      return;
    }
    await this.record({ task, from: undefined, status: task.status ?? {} });
  }

  /**
   * The audit line first, then the Event: a crash in between repeats the line on restart rather
   * than losing it, and the line is written whatever happens to the Event.
   */
  async record({ task, from, status, latencyMs }: Transition): Promise<void> {
    const phase = status.phase ?? 'Pending';
    if (this.isRecorded(task, phase)) return;
    const auditId = auditEventName(task, phase, this.key);
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
        // Granted against used, for an ended grant the request-time authorizer counted: the
        // least-privilege record of what the agent needed.
        ...(isTerminal(phase) && task.status?.usage ? { usage: { granted: expandPermissions(task).length, ...task.status.usage } } : {}),
        ...(latencyMs !== undefined ? { revocationLatencyMs: latencyMs } : {}),
        auditId,
      },
      'audit',
    );
    const warning = phase === 'Denied' || phase === 'Failed' || phase === 'Revoked';
    let created: boolean;
    try {
      created = await this.writer.recordEvent(task, warning ? 'Warning' : 'Normal', status.reason ?? phase, status.message ?? phase, auditId);
    } catch (err) {
      // The transition itself stands (its status is written). Failing the reconcile makes it
      // retry, and a reconcile first records the task's current phase (ensureRecorded) before it
      // can move the task on, so no transition goes without its Event.
      throw new Error(`recording the ${phase} transition of ${task.metadata.namespace}/${task.metadata.name}`, { cause: err });
    }
    if (!created && (await this.writer.auditEventOwner(task, auditId)) !== 'ours') {
      this.logger.warn({ auditId, task: { namespace: task.metadata.namespace, name: task.metadata.name, uid: task.metadata.uid } }, 'an Event under the audit name is not taskgrant\'s; the audit line is the record');
    }
    this.markRecorded(task, phase);
  }

  private isRecorded(task: AgentTask, phase: string): boolean {
    return this.recorded.get(task.metadata.uid ?? '')?.has(phase) === true;
  }

  private markRecorded(task: AgentTask, phase: string): void {
    const uid = task.metadata.uid ?? '';
    const phases = this.recorded.get(uid) ?? new Set<string>();
    phases.add(phase);
    this.recorded.set(uid, phases);
  }

  /** Forget a task that is gone (bounded memory under churn). */
  forget(taskUid: string): void {
    this.recorded.delete(taskUid);
  }
}
