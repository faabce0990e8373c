// Revoking: every object of a task's grant deleted — bindings first, so access ends before
// anything else — the terminal status beside the rest, its audit record and metrics, and the finalizer.
import { taskServiceAccountName, targetNamespaces, type AgentTask, type Phase } from '../api/index.js';
import type { Metrics } from '../telemetry/metrics.js';
import { settleAll } from './settle.js';
import type { Clock, ClusterView, ClusterWriter, ManagedKind } from './ports.js';
import type { Transitions } from './transitions.js';
import type { RevocationReason, Trigger } from './triggers.js';

export interface RevokerDeps {
  view: ClusterView;
  writer: ClusterWriter;
  transitions: Transitions;
  clock: Clock;
  metrics: Metrics;
  /** When the event that may have triggered a revocation was observed (for latency metrics). */
  observedAt: (key: string) => number | undefined;
}

export class Revoker {
  constructor(private readonly deps: RevokerDeps) {}

  async revoke(task: AgentTask, trigger: Trigger, phase: Phase = trigger.phase): Promise<void> {
    const { transitions, metrics, clock } = this.deps;
    const triggeredAt = this.triggerTime(task, trigger.reason);
    // The terminal status goes out with the RoleBindings' delete, not after it: otherwise a
    // revocation is writes in a row, each queued behind a burst's, before anyone sees the task
    // end (the pod guard and the authorizer refuse on that status too). The status is the durable
    // record of the decision: should a delete fail, the reconcile fails and its retry, the task
    // now terminal, deletes what is left. The audit line waits for the bindings to be gone.
    const accessEnded = this.deleteKind(task, 'RoleBinding').then(() => Math.max(0, clock.now() - triggeredAt));
    const status = { phase, reason: trigger.reason, message: trigger.message, revokedAt: new Date(clock.now()).toISOString() };
    await settleAll([
      (async () => {
        await accessEnded;
        await this.deleteKind(task, 'Role');
        await this.deleteKind(task, 'ServiceAccount');
      })(),
      transitions.write(task, status, accessEnded),
    ]);
    metrics.revocations.inc({ reason: trigger.reason });
    metrics.triggerToRevocationSeconds.observe({ reason: trigger.reason }, (await accessEnded) / 1000);
    await transitions.dropFinalizer(transitions.latest(task));
  }

  /** RoleBindings first (access ends), then Roles, then the ServiceAccount (every token dies). */
  async deleteObjects(task: AgentTask): Promise<void> {
    await this.deleteKind(task, 'RoleBinding');
    await this.deleteKind(task, 'Role');
    await this.deleteKind(task, 'ServiceAccount');
  }

  /**
   * Every object of one kind of the task's grant: where it would be by name, and wherever the
   * caches found one of this task's uid (a crash may have left either without the other).
   */
  private async deleteKind(task: AgentTask, kind: ManagedKind): Promise<void> {
    const uid = task.metadata.uid ?? '';
    const { view, writer } = this.deps;
    const name = taskServiceAccountName(task.metadata.name, uid);
    const namespaces = kind === 'ServiceAccount' ? [task.metadata.namespace] : new Set([...targetNamespaces(task), ...(task.status?.grant?.namespaces ?? [])]);
    const cached = kind === 'RoleBinding' ? view.roleBindingsOfTask(uid) : kind === 'Role' ? view.rolesOfTask(uid) : view.serviceAccountsOfTask(uid);
    const targets = new Map<string, [string, string]>();
    for (const ns of namespaces) targets.set(`${ns}/${name}`, [ns, name]);
    for (const o of cached) targets.set(`${o.metadata.namespace}/${o.metadata.name}`, [o.metadata.namespace ?? '', o.metadata.name]);
    await Promise.all([...targets.values()].map(([ns, n]) => writer.delete(kind, ns, n)));
  }

  /** Deletes what the caches still hold of the task; nothing is asked of the API server otherwise. */
  async ensureNothingLeft(task: AgentTask): Promise<void> {
    const uid = task.metadata.uid ?? '';
    const { view } = this.deps;
    if (view.roleBindingsOfTask(uid).length + view.rolesOfTask(uid).length + view.serviceAccountsOfTask(uid).length > 0) await this.deleteObjects(task);
  }

  private triggerTime(task: AgentTask, reason: RevocationReason): number {
    const now = this.deps.clock.now();
    const key = `${task.metadata.namespace}/${task.metadata.name}`;
    switch (reason) {
      case 'TTLExpired':
        return Date.parse(task.status?.grant?.expiresAt ?? '') || now;
      case 'TaskDeleted':
        return Math.min(Date.parse(task.metadata.deletionTimestamp ?? '') || now, this.deps.observedAt(key) ?? now);
      default:
        return this.deps.observedAt(key) ?? now;
    }
  }
}
