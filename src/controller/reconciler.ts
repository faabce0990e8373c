// One level-triggered reconcile per AgentTask: from the task, its pods, its parent, its
// approvals and the clock, decide what should exist, then create or delete to match and write
// the status. The same function runs at start-up, on every event and on timers. This file only
// dispatches; deciding (decide.ts), granting (grant.ts), checking live grants (verify.ts),
// revoking (revoke.ts) and writing transitions (transitions.ts) each live in a part of their own.
import {
  FINALIZER,
  MAX_DELEGATION_DEPTH,
  delegationDepthOf,
  isLive,
  isTerminal,
  parseAgentTask,
  sensitivityFloorOf,
  targetNamespaces,
  ttlSeconds,
  type AgentTask,
  type Requester,
  type TaskApproval,
} from '../api/index.js';
import { isNamespaceTerminating } from '../kube/errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { AuditTrail } from './audit.js';
import { approvalStatus, latestApproval, plan, precheck, type PolicyDecider } from './decide.js';
import { CEILING_MESSAGE, ensureObjects, grantExpiry, grantedUpdate } from './grant.js';
import { settleAll } from './settle.js';
import { KeyedMutex } from './mutex.js';
import type { ApproverCheck, Clock, ClusterView, ClusterWriter, GrantLedger, LedgerEntry } from './ports.js';
import { Revoker } from './revoke.js';
import { decisionStatus } from './status.js';
import { Transitions } from './transitions.js';
import { boundPods, firedTrigger } from './triggers.js';
import { GrantVerifier } from './verify.js';

export type { PolicyDecider } from './decide.js';

export interface ReconcilerSettings {
  /** Re-issuance window: grants to one agent within it are counted (default 1h). */
  reissueWindowMs: number;
  /** How long a task waits for policies / a parent before it is looked at again. */
  retryPendingMs: number;
  /** How long an ended task is kept (its final status and audit visible) before it is deleted; 0: for ever. */
  retentionMs?: number;
  /** Admission mode policy: live tasks carry taskgrant.io/live, which the pod policies select by. */
  liveLabel?: boolean;
  /**
   * taskgrant's own namespace: its webhook key, receipt signing keys, ledger and Lease live
   * there, and the operator holds rights on them, so no task may be granted anything in it.
   */
  operatorNamespace?: string;
}

export interface ReconcilerDeps {
  view: ClusterView;
  writer: ClusterWriter;
  ledger: GrantLedger;
  policy: PolicyDecider;
  /** Asks the API server, at grant time, whether an approver may still approve. */
  approvers: ApproverCheck;
  audit: AuditTrail;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  settings: ReconcilerSettings;
  /** Ask to be reconciled again after `ms` (timers for expiry, waits); `urgent` for an expiry (a revocation). */
  requeueAfter: (key: string, ms: number, urgent?: boolean) => void;
  /** When the event that may have triggered a revocation was observed (for latency metrics). */
  observedAt: (key: string) => number | undefined;
}

export class Reconciler {
  private readonly agentLocks = new KeyedMutex();
  private readonly transitions: Transitions;
  private readonly revoker: Revoker;
  private readonly verifier: GrantVerifier;

  constructor(private readonly deps: ReconcilerDeps) {
    this.transitions = new Transitions({ ...deps, liveLabel: deps.settings.liveLabel ?? false });
    this.revoker = new Revoker({ ...deps, transitions: this.transitions });
    this.verifier = new GrantVerifier({
      ledger: deps.ledger,
      policy: deps.policy,
      reissueWindowMs: deps.settings.reissueWindowMs,
      operatorNamespace: deps.settings.operatorNamespace,
    });
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const started = process.hrtime.bigint();
    let outcome = 'ok';
    try {
      const task = this.deps.view.task(namespace, name);
      if (!task) return; // gone: its objects were revoked before the finalizer let it go
      await this.reconcileTask(task);
    } catch (err) {
      outcome = 'error';
      this.deps.metrics.reconcileErrors.inc();
      throw new Error(`reconciling task ${key}`, { cause: err });
    } finally {
      this.deps.metrics.reconcileSeconds.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  private async reconcileTask(raw: AgentTask): Promise<void> {
    const phase = raw.status?.phase;
    // An end is audited once nothing of the grant is left: a revocation whose delete failed after
    // its terminal status was written is finished here first.
    if (isTerminal(phase)) await this.revoker.ensureNothingLeft(raw);
    await this.deps.audit.ensureRecorded(raw);
    const parsed = parseAgentTask(raw);
    if (raw.metadata.deletionTimestamp) return this.finalize(parsed.ok ? parsed.value : raw);
    if (isTerminal(phase)) {
      await this.transitions.dropFinalizer(raw);
      return this.retain(raw);
    }
    if (!parsed.ok) {
      await this.revoker.ensureNothingLeft(raw);
      return this.transitions.write(raw, { phase: 'Failed', reason: 'InvalidSpec', message: `The task spec is invalid: ${parsed.error}.` });
    }
    return isLive(phase) ? this.reconcileLive(parsed.value) : this.reconcileRequest(parsed.value);
  }

  // ---- a task asking for access (Pending / AwaitingApproval) --------------------------------

  private async reconcileRequest(task: AgentTask): Promise<void> {
    const key = taskKey(task);
    const { settings, policy, view } = this.deps;
    const parent = this.parentOf(task);
    const depth = this.delegationDepth(task);
    const approval = latestApproval(task, view.approvalsOf(task.metadata.namespace, task.metadata.name));
    const pre = precheck({ task, parent, depth, approval, operatorNamespace: settings.operatorNamespace });
    if (pre.type === 'deny') {
      return this.transitions.finish(task, { phase: 'Denied', reason: pre.reason, message: pre.message, ...(approval ? { approval: approvalStatus(approval, this.deps.clock.now()) } : {}) });
    }
    if (pre.type === 'wait') return this.waitPending(task, pre.reason, pre.message);
    if (!policy.ready) return this.waitPending(task, 'PolicyUnavailable', 'Waiting for a valid policy set to be loaded; nothing is granted until then.');

    const voided = approval?.spec.decision === 'Approve' ? await this.approvalVoid(task, approval) : undefined;
    const approved = approval?.spec.decision === 'Approve' && voided === undefined;
    const sensitivityFloor = this.sensitivityFloor(task);
    // Held until the ledger entry is written, so the agent's next task is decided on a count that
    // includes this grant.
    const result = await this.agentLocks.run(`${task.metadata.namespace}/${task.spec.agent}`, async () => {
      const now = this.deps.clock.now();
      const entries = await this.deps.ledger.entries(task.metadata.namespace, task.spec.agent);
      const own = entries.find((e) => e.uid === task.metadata.uid);
      const recent = entries.filter((e) => e.uid !== task.metadata.uid && e.at > now - settings.reissueWindowMs);
      const next = plan(policy, { task, approved, recent, depth, sensitivityFloor, reissueWindowMs: settings.reissueWindowMs });
      const issuedAt = own?.at ?? now;
      if (next.type !== 'grant') return { next, issuedAt, objects: undefined };
      // The finalizer (with the live label), the ledger entry, the ServiceAccount and the Roles in
      // one round trip; the RoleBindings once the finalizer is in place. Nothing is usable before
      // the status says Granted (pods are admitted only then), and if any write fails the
      // reconcile fails and its retry starts by removing what was written; objects of a task
      // deleted meanwhile are the orphan sweep's.
      const held = this.transitions.ensureFinalizer(task);
      const entry: LedgerEntry = { uid: task.metadata.uid ?? '', task: task.metadata.name, at: now, ttlSeconds: ttlSeconds(task) };
      const [objects, finalized] = await settleAll([
        ensureObjects(view, this.deps.writer, task, held),
        held,
        own ? Promise.resolve() : this.deps.ledger.append(task.metadata.namespace, task.spec.agent, entry, settings.reissueWindowMs),
      ]);
      task = finalized;
      return { next, issuedAt, objects };
    });

    const { next } = result;
    // Objects of a task the policy does not allow are what an earlier attempt left when it failed
    // between writing them and writing Granted (its ledger entry may have failed): removed first.
    if (next.type !== 'grant') await this.revoker.ensureNothingLeft(task);
    const now = this.deps.clock.now();
    const approvalRecord = approval ? { approval: approvalStatus(approval, now) } : {};
    switch (next.type) {
      case 'retry':
        return this.waitPending(task, 'PolicyError', next.message);
      case 'await-approval':
        return this.transitions.write(task, {
          phase: 'AwaitingApproval',
          reason: 'ApprovalRequired',
          message: voided ? `${next.message} ${voided}` : next.message,
          decision: decisionStatus(next.decision, now),
        });
      case 'deny':
        return this.transitions.finish(task, { phase: 'Denied', reason: 'PolicyDenied', message: next.message, decision: decisionStatus(next.decision, now), ...approvalRecord });
      case 'grant': {
        if (result.objects === 'ceiling') {
          await this.revoker.deleteObjects(task);
          this.deps.metrics.grantFailures.inc({ reason: 'CeilingExceeded' });
          return this.transitions.write(task, { phase: 'Failed', reason: 'CeilingExceeded', message: CEILING_MESSAGE, decision: decisionStatus(next.decision, now) });
        }
        const expiresAt = grantExpiry(task, result.issuedAt, parent);
        await this.transitions.write(this.transitions.latest(task), { ...grantedUpdate(task, result.issuedAt, expiresAt, parent), decision: decisionStatus(next.decision, now), ...approvalRecord });
        this.deps.metrics.grants.inc();
        const created = Date.parse(task.metadata.creationTimestamp ?? '');
        if (Number.isFinite(created)) this.deps.metrics.timeToGrantSeconds.observe(Math.max(0, now - created) / 1000);
        return this.deps.requeueAfter(key, expiresAt - now, true);
      }
    }
  }

  private async waitPending(task: AgentTask, reason: string, message: string): Promise<void> {
    await this.transitions.write(task, { phase: 'Pending', reason, message });
    this.deps.requeueAfter(taskKey(task), this.deps.settings.retryPendingMs);
  }

  /**
   * Why an approval must not count (undefined when it counts). The webhook checked the approver
   * when the approval was made, but a TaskApproval is only a record: the approver may have lost
   * the right since, or the record may have been written where the webhook did not look. So the
   * approver's right is asked of the API server again, now, for every namespace the task reaches;
   * and no one who requested the task — or any task it was delegated from — approves it.
   */
  private async approvalVoid(task: AgentTask, approval: TaskApproval): Promise<string | undefined> {
    const approver: Requester = approval.spec.approver ?? {};
    const who = approver.username ?? '';
    if (!who) return 'The approval names no approver, so it does not count.';
    for (let t: AgentTask | undefined = task, hops = 0; t && hops <= MAX_DELEGATION_DEPTH; t = this.parentOf(t), hops++) {
      if (t.spec.requester?.username === who) return `The approval by ${who} does not count: ${who} requested ${t === task ? 'this task' : `task ${t.metadata.name}, which this task was delegated from`}.`;
    }
    for (const namespace of new Set([task.metadata.namespace, ...targetNamespaces(task)])) {
      if (!(await this.deps.approvers.mayApprove(approver, namespace))) {
        return `The approval by ${who} does not count: ${who} may not approve AgentTasks in namespace ${namespace} (verb approve on agenttasks.taskgrant.io) now.`;
      }
    }
    return undefined;
  }

  private sensitivityFloor(task: AgentTask): string | undefined {
    return sensitivityFloorOf(task, (ns) => this.deps.view.namespaceSensitivity(ns));
  }

  /**
   * The parent by name, but only the one the grant was decided against: a parent deleted and
   * recreated under the same name is another task, whose grant this child never narrowed.
   */
  private parentOf(task: AgentTask): AgentTask | undefined {
    if (!task.spec.parentTask) return undefined;
    const parent = this.deps.view.task(task.metadata.namespace, task.spec.parentTask);
    const decidedAgainst = task.status?.grant?.parentUID;
    return decidedAgainst !== undefined && parent?.metadata.uid !== decidedAgainst ? undefined : parent;
  }

  private delegationDepth(task: AgentTask): number {
    return delegationDepthOf(task, { get: (namespace, name) => this.deps.view.task(namespace, name) });
  }

  // ---- a live grant (Granted / Active) -----------------------------------------------------

  private async reconcileLive(task: AgentTask): Promise<void> {
    const key = taskKey(task);
    const now = this.deps.clock.now();
    const pods = this.deps.view.podsOfTask(task.metadata.namespace, task.metadata.name);
    const parent = this.parentOf(task);
    const trigger = firedTrigger({ task, pods, parent, now });
    if (trigger) {
      this.verifier.forget(task.metadata.uid ?? '');
      return this.revoker.revoke(task, trigger);
    }
    const approved = latestApproval(task, this.deps.view.approvalsOf(task.metadata.namespace, task.metadata.name))?.spec.decision === 'Approve';
    const facts = { task, parent, depth: this.delegationDepth(task), approved, sensitivityFloor: this.sensitivityFloor(task) };
    const unverified = await this.verifier.unverified(facts);
    if (unverified) {
      return this.revoker.revoke(task, {
        reason: 'GrantUnverified',
        phase: 'Revoked',
        message: `The status says ${task.status?.phase ?? 'Granted'}, but taskgrant cannot derive that grant (${unverified}); it grants nothing on a record it did not make.`,
      });
    }
    // Re-decided under a new policy revision: revoked if no longer allowed, and if still allowed
    // nothing is written (a reload must not become a write to every live task); the status keeps
    // the revision it was granted under.
    const policy = await this.verifier.policyVerdict(facts, now);
    if (policy.type === 'revoke') return this.revoker.revoke(task, policy.trigger);

    let objects: 'ready' | 'ceiling';
    try {
      objects = await ensureObjects(this.deps.view, this.deps.writer, task);
    } catch (err) {
      // The namespace controller removes the grant's objects of a namespace being deleted; they
      // cannot (and must not) be recreated there, so the grant ends with it.
      const ns = isNamespaceTerminating(err);
      if (ns === undefined) throw err;
      return this.revoker.revoke(task, { reason: 'NamespaceDeleted', phase: 'Revoked', message: `Namespace ${ns} is being deleted; the grant is revoked.` });
    }
    if (objects === 'ceiling') return this.revoker.revoke(task, { reason: 'CeilingExceeded', phase: 'Revoked', message: CEILING_MESSAGE }, 'Failed');
    // A grant made in webhook mode, or whose label someone removed, gets it (back) here.
    task = await this.transitions.markLive(task);
    await this.recordPods(task, pods);
    const expiresAt = Date.parse(task.status?.grant?.expiresAt ?? '');
    if (Number.isFinite(expiresAt)) this.deps.requeueAfter(key, expiresAt - now, true);
  }

  /** Pods newly carrying the grant are named in the status (Active). */
  private async recordPods(task: AgentTask, pods: ReturnType<ClusterView['podsOfTask']>): Promise<void> {
    const bound = boundPods(task, pods).filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name).sort();
    const grant = task.status?.grant;
    const recorded = [...(grant?.pods ?? [])].sort();
    const newPods = bound.filter((p) => !recorded.includes(p));
    if (!grant || newPods.length === 0) return;
    await this.transitions.write(task, {
      phase: 'Active',
      reason: 'PodAdmitted',
      message: `Pod ${newPods.join(', ')} carries the grant until ${grant.expiresAt}.`,
      grant: { ...grant, pods: [...new Set([...recorded, ...bound])].sort() },
    });
  }

  // ---- ended and deleted tasks --------------------------------------------------------------

  /**
   * An ended task is kept for the retention period, then deleted with its approvals, like a
   * Job's ttlSecondsAfterFinished: the cache, the API server and `kubectl get` stay the size of
   * what is current. Its audit record was written when it ended, and the agent's ledger (not the
   * task) is what re-issuance limits count, so nothing they guarantee is lost.
   */
  private async retain(task: AgentTask): Promise<void> {
    const retentionMs = this.deps.settings.retentionMs ?? 0;
    if (retentionMs <= 0) return;
    const ended = Math.max(Date.parse(task.status?.revokedAt ?? ''), ...(task.status?.conditions ?? []).map((c) => Date.parse(c.lastTransitionTime)).filter(Number.isFinite));
    if (!Number.isFinite(ended)) return;
    const remaining = ended + retentionMs - this.deps.clock.now();
    if (remaining > 0) return this.deps.requeueAfter(taskKey(task), remaining);
    const { namespace, name } = task.metadata;
    for (const approval of this.deps.view.approvalsOf(namespace, name)) await this.deps.writer.deleteApproval(namespace, approval.metadata.name);
    await this.deps.writer.deleteTask(task);
    this.deps.logger.info({ namespace, name, uid: task.metadata.uid, phase: task.status?.phase }, 'ended task deleted after its retention period');
  }


  private async finalize(task: AgentTask): Promise<void> {
    if (!task.metadata.finalizers?.includes(FINALIZER)) return;
    if (isLive(task.status?.phase)) {
      // revoke drops the finalizer
      return this.revoker.revoke(task, { reason: 'TaskDeleted', phase: 'Revoked', message: 'The AgentTask was deleted; its grant is revoked.' });
    }
    // A terminal task's leftovers were deleted before its end was audited (reconcileTask).
    if (!isTerminal(task.status?.phase)) await this.revoker.deleteObjects(task);
    await this.transitions.dropFinalizer(task);
  }
}

export function taskKey(task: AgentTask): string {
  return `${task.metadata.namespace}/${task.metadata.name}`;
}
