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

export class AuditTrail {
  constructor(
    private readonly logger: Logger,
    private readonly writer: Pick<ClusterWriter, 'recordEvent'>,
  ) {}

  async record({ task, from, status, latencyMs }: Transition): Promise<void> {
    const phase = status.phase ?? 'Pending';
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
      },
      'audit',
    );
    const warning = phase === 'Denied' || phase === 'Failed' || phase === 'Revoked';
    try {
      await this.writer.recordEvent(task, warning ? 'Warning' : 'Normal', status.reason ?? phase, status.message ?? phase);
    } catch (err) {
      // The audit line above is the record of truth; a lost Event must not undo a transition.
      this.logger.warn({ err, namespace: task.metadata.namespace, name: task.metadata.name }, 'recording event failed');
    }
  }
}
