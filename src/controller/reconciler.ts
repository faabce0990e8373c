// One level-triggered reconcile per AgentTask: from the task, its pods, its parent, its
// approvals and the clock, decide what should exist, then create or delete to match and write
// the status. The same function runs at start-up, on every event and on timers.
import {
  DEFAULT_TOKEN_EXPIRATION_SECONDS,
  FINALIZER,
  LABEL_TASK_UID,
  expandPermissions,
  formatDuration,
  taskServiceAccountName,
  isLive,
  isTerminal,
  parseAgentTask,
  targetNamespaces,
  tupleCovered,
  ttlSeconds,
  type AgentTask,
  type Phase,
  type TaskApproval,
} from '../api/index.js';
import { describeTuple, type Decision, type DecisionInput } from '../policy/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { RoleBindingObject, RoleObject, ServiceAccountObject } from '../kube/objects.js';
import type { AuditTrail } from './audit.js';
import { bindingMatches, desiredGrant, roleMatches } from './desired.js';
import { KeyedMutex } from './mutex.js';
import type { Clock, ClusterView, ClusterWriter, GrantLedger, LedgerEntry, ManagedKind } from './ports.js';
import { nextStatus, decisionStatus, type StatusUpdate } from './status.js';
import { boundPods, firedTrigger, type RevocationReason, type Trigger } from './triggers.js';

/** The part of the policy engine the controller uses. */
export interface PolicyDecider {
  readonly ready: boolean;
  readonly revision: string | undefined;
  evaluate(input: DecisionInput): Decision;
}

export interface ReconcilerSettings {
  /** Re-issuance window: grants to one agent within it are counted (default 1h). */
  reissueWindowMs: number;
  /** How long a task waits for policies / a parent before it is looked at again. */
  retryPendingMs: number;
  /** Deepest delegation chain followed before giving up (cycle guard). */
  maxDelegationDepth: number;
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
  audit: AuditTrail;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  settings: ReconcilerSettings;
  /** Ask to be reconciled again after `ms` (timers for expiry, waits). */
  requeueAfter: (key: string, ms: number) => void;
  /** When the event that may have triggered a revocation was observed (for latency metrics). */
  observedAt: (key: string) => number | undefined;
}

export class TaskNotReconcilable extends Error {}

const MAX_DELEGATION_DEPTH_SEARCH = 16;

export class Reconciler {
  private readonly agentLocks = new KeyedMutex();

  constructor(private readonly deps: ReconcilerDeps) {}

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
    await this.deps.audit.ensureRecorded(raw);
    const parsed = parseAgentTask(raw);
    const phase = raw.status?.phase;
    if (raw.metadata.deletionTimestamp) return this.finalize(parsed.ok ? parsed.value : raw);
    if (isTerminal(phase)) return this.settleTerminal(raw);
    if (!parsed.ok) {
      await this.ensureNothingLeft(raw);
      return this.transition(raw, { phase: 'Failed', reason: 'InvalidSpec', message: `The task spec is invalid: ${parsed.error}.` });
    }
    const task = parsed.value;
    if (isLive(phase)) return this.reconcileLive(task);
    return this.reconcileRequest(task);
  }

  // ---- a task asking for access (Pending / AwaitingApproval) --------------------------------

  private async reconcileRequest(task: AgentTask): Promise<void> {
    const key = taskKey(task);
    const own = this.deps.settings.operatorNamespace;
    if (own && targetNamespaces(task).includes(own)) {
      return this.finish(task, { phase: 'Denied', reason: 'OperatorNamespace', message: `No task may be granted access in ${own}, taskgrant's own namespace (it holds the operator's keys and records).` });
    }
    const parent = this.parentOf(task);
    if (task.spec.parentTask) {
      const verdict = this.delegationVerdict(task, parent);
      if (verdict.type === 'wait') {
        await this.transition(task, { phase: 'Pending', reason: 'WaitingForParent', message: verdict.message });
        this.deps.requeueAfter(key, this.deps.settings.retryPendingMs);
        return;
      }
      if (verdict.type === 'deny') return this.finish(task, { phase: 'Denied', reason: verdict.reason, message: verdict.message });
    }

    const approval = latestApproval(task, this.deps.view.approvalsOf(task.metadata.namespace, task.metadata.name));
    if (approval?.spec.decision === 'Deny') {
      return this.finish(task, {
        phase: 'Denied',
        reason: 'ApprovalDenied',
        message: `Denied by ${approval.spec.approver?.username ?? 'an approver'}: ${approval.spec.reason ?? 'no reason given'}.`,
        approval: approvalStatus(approval),
      });
    }
    if (!this.deps.policy.ready) {
      await this.transition(task, { phase: 'Pending', reason: 'PolicyUnavailable', message: 'Waiting for a valid policy set to be loaded; nothing is granted until then.' });
      this.deps.requeueAfter(key, this.deps.settings.retryPendingMs);
      return;
    }

    const approved = approval?.spec.decision === 'Approve';
    const agentKey = `${task.metadata.namespace}/${task.spec.agent}`;
    // Held until the ledger entry is written, so the agent's next task is decided on a count that
    // includes this grant.
    const result = await this.agentLocks.run(agentKey, async () => {
      const now = this.deps.clock.now();
      const entries = await this.deps.ledger.entries(task.metadata.namespace, task.spec.agent);
      const own = entries.find((e) => e.uid === task.metadata.uid);
      const others = entries.filter((e) => e.uid !== task.metadata.uid && e.at > now - this.deps.settings.reissueWindowMs);
      const decision = this.evaluate(task, approved, others, parent);
      const issuedAt = own?.at ?? now;
      if (decision.type !== 'allow') return { decision, issuedAt, others, ceiling: undefined };
      task = await this.ensureFinalizer(task);
      // The ledger entry and the grant's objects in one round trip, not two: nothing is usable
      // before the status says Granted (the webhook admits pods only then), and if either write
      // fails the reconcile fails and its retry starts by removing what was written.
      const entry: LedgerEntry = { uid: task.metadata.uid ?? '', task: task.metadata.name, at: now, ttlSeconds: ttlSeconds(task) };
      const [ceiling] = await settleAll([
        this.ensureObjects(task),
        own ? Promise.resolve() : this.deps.ledger.append(task.metadata.namespace, task.spec.agent, entry, this.deps.settings.reissueWindowMs),
      ]);
      return { decision, issuedAt, others, ceiling };
    });

    const { decision } = result;
    // Objects of a task the policy does not allow are what an earlier attempt left when it failed
    // between writing them and writing Granted (its ledger entry may have failed): removed first.
    if (decision.type !== 'allow') await this.ensureNothingLeft(task);
    switch (decision.type) {
      case 'error':
        await this.transition(task, { phase: 'Pending', reason: 'PolicyError', message: `Policy could not decide, so nothing is granted: ${decision.reason}.` });
        this.deps.requeueAfter(key, this.deps.settings.retryPendingMs);
        return;
      case 'deny': {
        const at = this.deps.clock.now();
        if (decision.approvalWouldAllow && !approved) {
          return this.transition(task, {
            phase: 'AwaitingApproval',
            reason: 'ApprovalRequired',
            message: `${capitalize(decision.reason)}; a TaskApproval for uid ${task.metadata.uid ?? ''} would allow it.`,
            decision: decisionStatus(decision, at),
          });
        }
        return this.finish(task, {
          phase: 'Denied',
          reason: 'PolicyDenied',
          message: `${capitalize(decision.reason)}${this.retryHint(result.others)}.`,
          decision: decisionStatus(decision, at),
          ...(approval ? { approval: approvalStatus(approval) } : {}),
        });
      }
      case 'allow':
        return this.grant(task, decision, result.issuedAt, result.ceiling, parent, approval);
      default:
        return assertNever(decision);
    }
  }

  // Timed by the engine itself (taskgrant_policy_evaluation_seconds), once per decision.
  private evaluate(task: AgentTask, approved: boolean, recent: LedgerEntry[], parent: AgentTask | undefined): Decision {
    try {
      return this.deps.policy.evaluate({
        task,
        approved,
        recentGrants: recent.length,
        recentGrantSeconds: recent.reduce((sum, e) => sum + e.ttlSeconds, 0),
        delegationDepth: parent ? this.delegationDepth(task) : 0,
      });
    } catch (err) {
      // The engine is meant never to throw; if it does, that is a deny, not a crash.
      return { type: 'error', revision: this.deps.policy.revision, reason: `policy evaluation failed: ${(err as Error).message}`, errors: [String(err)] };
    }
  }

  /** When the agent's oldest counted grant leaves the window: the earliest it may ask again. */
  private retryHint(recent: LedgerEntry[]): string {
    if (recent.length === 0) return '';
    const oldest = Math.min(...recent.map((e) => e.at));
    const at = new Date(oldest + this.deps.settings.reissueWindowMs).toISOString();
    return ` (the agent holds ${recent.length} grant(s) issued in the last ${formatDuration(this.deps.settings.reissueWindowMs / 1000)}; the oldest leaves the window at ${at})`;
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
    let depth = 0;
    let current: AgentTask | undefined = task;
    while (current?.spec.parentTask && depth < MAX_DELEGATION_DEPTH_SEARCH) {
      depth += 1;
      current = this.deps.view.task(current.metadata.namespace, current.spec.parentTask);
    }
    return depth;
  }

  private delegationVerdict(
    task: AgentTask,
    parent: AgentTask | undefined,
  ): { type: 'ok' } | { type: 'wait'; message: string } | { type: 'deny'; reason: string; message: string } {
    const parentName = task.spec.parentTask ?? '';
    if (!parent) return { type: 'deny', reason: 'ParentNotFound', message: `Parent task ${parentName} does not exist in ${task.metadata.namespace}.` };
    if (parent.metadata.uid === task.metadata.uid) return { type: 'deny', reason: 'DelegationInvalid', message: 'A task cannot be its own parent.' };
    const parentPhase = parent.status?.phase;
    if (isTerminal(parentPhase)) return { type: 'deny', reason: 'ParentNotActive', message: `Parent task ${parentName} is ${parentPhase}; only a Granted or Active parent can delegate.` };
    if (!isLive(parentPhase)) return { type: 'wait', message: `Waiting for parent task ${parentName} (${parentPhase ?? 'Pending'}) to be granted.` };
    if (this.delegationDepth(task) >= MAX_DELEGATION_DEPTH_SEARCH) return { type: 'deny', reason: 'DelegationInvalid', message: 'The delegation chain is too deep or loops.' };
    const parentTuples = expandPermissions(parent);
    const excess = expandPermissions(task).filter((t) => !tupleCovered(t, parentTuples));
    if (excess.length > 0) {
      const named = excess.slice(0, 3).map(describeTuple).join('; ');
      return { type: 'deny', reason: 'DelegationExceedsParent', message: `A delegated task can only narrow its parent's access; ${parentName} was not granted: ${named}${excess.length > 3 ? ` (and ${excess.length - 3} more)` : ''}.` };
    }
    const wider = widerThanParent(task, parent);
    if (wider.length > 0) return { type: 'deny', reason: 'DelegationExceedsParent', message: `A delegated task can only narrow its parent's access; ${wider.join('; ')}.` };
    return { type: 'ok' };
  }

  // ---- granting -----------------------------------------------------------------------------

  /** Writes Granted once the objects are in place (`ceiling`: why they could not be). */
  private async grant(
    task: AgentTask,
    decision: Extract<Decision, { type: 'allow' }>,
    issuedAt: number,
    ceiling: string | undefined,
    parent: AgentTask | undefined,
    approval: TaskApproval | undefined,
  ): Promise<void> {
    if (ceiling) {
      await this.deleteObjects(task);
      this.deps.metrics.grantFailures.inc({ reason: 'CeilingExceeded' });
      return this.transition(task, { phase: 'Failed', reason: 'CeilingExceeded', message: ceiling, decision: decisionStatus(decision, this.deps.clock.now()) });
    }
    let expiresAt = issuedAt + ttlSeconds(task) * 1000;
    const parentExpiry = Date.parse(parent?.status?.grant?.expiresAt ?? '');
    if (Number.isFinite(parentExpiry)) expiresAt = Math.min(expiresAt, parentExpiry);
    const name = taskServiceAccountName(task.metadata.name, task.metadata.uid ?? '');
    const namespaces = targetNamespaces(task);
    const now = this.deps.clock.now();
    await this.transition(task, {
      phase: 'Granted',
      reason: 'PolicyAllowed',
      message: `Granted ${expandPermissions(task).length} permission(s) in ${namespaces.join(', ')} to ServiceAccount ${name} until ${new Date(expiresAt).toISOString()}.`,
      decision: decisionStatus(decision, now),
      grant: {
        serviceAccount: name,
        role: name,
        roleBinding: name,
        namespaces,
        issuedAt: new Date(issuedAt).toISOString(),
        expiresAt: new Date(expiresAt).toISOString(),
        pods: [],
        ...(parent?.metadata.uid ? { parentUID: parent.metadata.uid } : {}),
      },
      ...(approval ? { approval: approvalStatus(approval) } : {}),
    });
    this.deps.metrics.grants.inc();
    const created = Date.parse(task.metadata.creationTimestamp ?? '');
    if (Number.isFinite(created)) this.deps.metrics.timeToGrantSeconds.observe(Math.max(0, now - created) / 1000);
    this.deps.requeueAfter(taskKey(task), expiresAt - now);
  }

  /**
   * Creates what is missing and repairs drift (a Role someone widened is put back).
   * Returns a message when the API server refused a Role because it exceeds what the operator
   * itself holds (its grantable ceiling), undefined when everything is in place.
   */
  private async ensureObjects(task: AgentTask): Promise<string | undefined> {
    const desired = desiredGrant(task);
    const uid = task.metadata.uid ?? '';
    const { view, writer } = this.deps;
    const roles = view.rolesOfTask(uid);
    const bindings = view.roleBindingsOfTask(uid);
    const hasAccount = view.serviceAccountsOfTask(uid).some((sa) => sa.metadata.name === desired.serviceAccount.metadata.name && sa.metadata.namespace === desired.serviceAccount.metadata.namespace);
    // An object found under our name but not carrying this task's marks was made by someone
    // else (the names are predictable once the task exists): never adopted as it is.
    // The owner reference too where the grant sets one (only in the task's own namespace: an
    // owner cannot live in another namespace).
    type Managed = ServiceAccountObject | RoleObject | RoleBindingObject;
    const owners = (o: Managed): unknown[] => (Array.isArray(o.metadata.ownerReferences) ? o.metadata.ownerReferences : []);
    const ours = (actual: Managed, wanted: Managed) =>
      actual.metadata.labels?.[LABEL_TASK_UID] === uid &&
      owners(wanted).every((w) => owners(actual).some((a) => (a as { uid?: unknown }).uid === (w as { uid?: unknown }).uid));
    const ensureAccount = async () => {
      const actual = await writer.create('ServiceAccount', desired.serviceAccount);
      if (!ours(actual, desired.serviceAccount)) await writer.replace('ServiceAccount', { ...desired.serviceAccount, metadata: { ...desired.serviceAccount.metadata, resourceVersion: actual.metadata.resourceVersion } });
    };
    const ensureRole = async (role: RoleObject) => {
      const actual = roles.find((r) => r.metadata.namespace === role.metadata.namespace && r.metadata.name === role.metadata.name) ?? (await writer.create('Role', role));
      if (!roleMatches(actual, role) || !ours(actual, role)) await writer.replace('Role', { ...role, metadata: { ...role.metadata, resourceVersion: actual.metadata.resourceVersion } });
    };
    const ensureBinding = async (binding: RoleBindingObject) => {
      const existing = bindings.find((b) => b.metadata.namespace === binding.metadata.namespace && b.metadata.name === binding.metadata.name) ?? (await writer.create('RoleBinding', binding));
      if (!bindingMatches(existing, binding) || !ours(existing, binding)) {
        // roleRef is immutable: a tampered binding is deleted and created anew.
        await writer.delete('RoleBinding', binding.metadata.namespace ?? '', binding.metadata.name);
        await writer.create('RoleBinding', binding);
      }
    };
    try {
      // The ServiceAccount beside the Roles (a RoleBinding may name an account that does not
      // exist yet; nothing is usable before the status says Granted). The RoleBindings only after
      // their Roles: the operator may not `bind`, so the API server checks each binding against
      // the rules of the Role it names, and refuses one whose Role is not there yet.
      await settleAll([
        hasAccount ? Promise.resolve() : ensureAccount(),
        (async () => {
          await settleAll(desired.roles.map(ensureRole));
          await settleAll(desired.roleBindings.map(ensureBinding));
        })(),
      ]);
    } catch (err) {
      const ceiling = ceilingMessage(err);
      if (ceiling) return ceiling;
      throw err;
    }
    // Objects of this task that the desired set no longer includes (should not happen: spec is immutable).
    const wanted = new Set(desired.roles.map((r) => `${r.metadata.namespace}/${r.metadata.name}`));
    for (const b of bindings) if (!wanted.has(`${b.metadata.namespace}/${b.metadata.name}`)) await writer.delete('RoleBinding', b.metadata.namespace ?? '', b.metadata.name);
    for (const r of roles) if (!wanted.has(`${r.metadata.namespace}/${r.metadata.name}`)) await writer.delete('Role', r.metadata.namespace ?? '', r.metadata.name);
    return undefined;
  }

  // ---- a live grant (Granted / Active) -----------------------------------------------------

  private async reconcileLive(task: AgentTask): Promise<void> {
    const key = taskKey(task);
    const now = this.deps.clock.now();
    const pods = this.deps.view.podsOfTask(task.metadata.namespace, task.metadata.name);
    const parent = this.parentOf(task);
    const trigger = firedTrigger({ task, pods, parent, now });
    if (trigger) return this.revoke(task, trigger);
    const unverified = await this.unverifiedGrant(task, parent);
    if (unverified) {
      return this.revoke(task, {
        reason: 'GrantUnverified',
        phase: 'Revoked',
        message: `The status says ${task.status?.phase ?? 'Granted'}, but taskgrant cannot derive that grant (${unverified}); it grants nothing on a record it did not make.`,
      });
    }
    const policy = await this.policyVerdict(task, parent);
    if (policy.type === 'revoke') return this.revoke(task, policy.trigger);
    if (policy.type === 'allowed' && policy.decision.type !== 'error') {
      const status = task.status ?? {};
      await this.transition(task, { phase: status.phase ?? 'Granted', reason: status.reason ?? 'PolicyAllowed', message: status.message ?? '', decision: decisionStatus(policy.decision, now) });
      task = this.deps.view.task(task.metadata.namespace, task.metadata.name) ?? task;
    }

    let ceiling: string | undefined;
    try {
      ceiling = await this.ensureObjects(task);
    } catch (err) {
      // The namespace controller removes the grant's objects of a namespace being deleted; they
      // cannot (and must not) be recreated there, so the grant ends with it.
      const ns = terminatingNamespace(err);
      if (!ns) throw err;
      return this.revoke(task, { reason: 'NamespaceDeleted', phase: 'Revoked', message: `Namespace ${ns} is being deleted; the grant is revoked.` });
    }
    if (ceiling) return this.revoke(task, { reason: 'CeilingExceeded', phase: 'Revoked', message: ceiling }, 'Failed');

    const bound = boundPods(task, pods).filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name).sort();
    const grant = task.status?.grant;
    const recorded = [...(grant?.pods ?? [])].sort();
    const newPods = bound.filter((p) => !recorded.includes(p));
    if (grant && newPods.length > 0) {
      const pods = [...new Set([...recorded, ...bound])].sort();
      await this.transition(task, {
        phase: 'Active',
        reason: 'PodAdmitted',
        message: `Pod ${newPods.join(', ')} carries the grant until ${grant.expiresAt}.`,
        grant: { ...grant, pods },
      });
    }
    const expiresAt = Date.parse(grant?.expiresAt ?? '');
    if (Number.isFinite(expiresAt)) this.deps.requeueAfter(key, expiresAt - now);
  }

  /**
   * A live status is the operator's record, never its input: whoever may write a task's status
   * could otherwise turn a denied task into a grant. A grant stands only while it can be derived
   * again: this task's ledger entry (written before every grant), an expiry no later than that
   * entry plus the task's ttl, no target in the operator's namespace, and a decision that allows it
   * now, with an approval only if a TaskApproval approves this very uid.
   */
  private async unverifiedGrant(task: AgentTask, parent: AgentTask | undefined): Promise<string | undefined> {
    const own = this.deps.settings.operatorNamespace;
    if (own && targetNamespaces(task).includes(own)) return `it reaches ${own}, taskgrant's own namespace`;
    const grant = task.status?.grant;
    if (!grant) return 'its status names no grant';
    const entries = await this.deps.ledger.entries(task.metadata.namespace, task.spec.agent);
    const entry = entries.find((e) => e.uid === task.metadata.uid);
    if (!entry) return 'no grant to this task is recorded in the ledger';
    const expiresAt = Date.parse(grant.expiresAt);
    if (!Number.isFinite(expiresAt) || expiresAt > entry.at + ttlSeconds(task) * 1000) return `its expiry ${grant.expiresAt} is later than its ttl allows`;
    // Under another policy revision than the one it names, policyVerdict re-decides it.
    if (!this.deps.policy.ready || task.status?.decision?.policyRevision !== this.deps.policy.revision) return undefined;
    const before = entries.filter((e) => e.uid !== task.metadata.uid && e.at >= entry.at - this.deps.settings.reissueWindowMs && e.at < entry.at);
    const decision = this.evaluate(task, this.approvedNow(task), before, parent);
    if (decision.type === 'deny') return `policy does not allow it${this.approvedNow(task) ? '' : ' without an approval of this uid'}: ${decision.reason}`;
    return undefined;
  }

  /** Approved: a TaskApproval approving this uid exists now (the status's copy is not proof). */
  private approvedNow(task: AgentTask): boolean {
    return latestApproval(task, this.deps.view.approvalsOf(task.metadata.namespace, task.metadata.name))?.spec.decision === 'Approve';
  }

  /**
   * A new policy revision is applied to live grants: access the policy no longer allows ends.
   * The task is re-decided with the counts it was granted under (grants before its own).
   */
  private async policyVerdict(task: AgentTask, parent: AgentTask | undefined): Promise<{ type: 'current' } | { type: 'allowed'; decision: Decision } | { type: 'revoke'; trigger: Trigger }> {
    const current = this.deps.policy.revision;
    if (!this.deps.policy.ready || !current || task.status?.decision?.policyRevision === current) return { type: 'current' };
    const issuedAt = Date.parse(task.status?.grant?.issuedAt ?? '') || this.deps.clock.now();
    const since = issuedAt - this.deps.settings.reissueWindowMs;
    const entries = await this.deps.ledger.entries(task.metadata.namespace, task.spec.agent);
    const before = entries.filter((e) => e.uid !== task.metadata.uid && e.at >= since && e.at < issuedAt);
    const decision = this.evaluate(task, this.approvedNow(task), before, parent);
    if (decision.type === 'allow') return { type: 'allowed', decision };
    return { type: 'revoke', trigger: { reason: 'PolicyChanged', phase: 'Revoked', message: `Policy revision ${current} no longer allows this task: ${decision.reason}.` } };
  }

  // ---- revoking -----------------------------------------------------------------------------

  private async revoke(task: AgentTask, trigger: Trigger, phase: Phase = trigger.phase): Promise<void> {
    await this.deleteObjects(task);
    const now = this.deps.clock.now();
    const triggeredAt = this.triggerTime(task, trigger.reason);
    const latencyMs = Math.max(0, now - triggeredAt);
    await this.transition(task, { phase, reason: trigger.reason, message: trigger.message, revokedAt: new Date(now).toISOString() }, latencyMs);
    this.deps.metrics.revocations.inc({ reason: trigger.reason });
    this.deps.metrics.triggerToRevocationSeconds.observe({ reason: trigger.reason }, latencyMs / 1000);
    await this.dropFinalizer(this.deps.view.task(task.metadata.namespace, task.metadata.name) ?? task);
  }

  private triggerTime(task: AgentTask, reason: RevocationReason): number {
    const now = this.deps.clock.now();
    switch (reason) {
      case 'TTLExpired':
        return Date.parse(task.status?.grant?.expiresAt ?? '') || now;
      case 'TaskDeleted':
        return Math.min(Date.parse(task.metadata.deletionTimestamp ?? '') || now, this.deps.observedAt(taskKey(task)) ?? now);
      default:
        return this.deps.observedAt(taskKey(task)) ?? now;
    }
  }

  /** RoleBindings first (access ends), then Roles, then the ServiceAccount (every token dies). */
  private async deleteObjects(task: AgentTask): Promise<void> {
    const uid = task.metadata.uid ?? '';
    const { view, writer } = this.deps;
    const name = taskServiceAccountName(task.metadata.name, uid);
    const namespaces = new Set([...targetNamespaces(task), ...(task.status?.grant?.namespaces ?? [])]);
    const targets = (kind: ManagedKind, cached: Array<{ metadata: { namespace?: string; name: string } }>) => {
      const all = new Map<string, [string, string]>();
      for (const ns of kind === 'ServiceAccount' ? [task.metadata.namespace] : namespaces) all.set(`${ns}/${name}`, [ns, name]);
      for (const o of cached) all.set(`${o.metadata.namespace}/${o.metadata.name}`, [o.metadata.namespace ?? '', o.metadata.name]);
      return [...all.values()];
    };
    await Promise.all(targets('RoleBinding', view.roleBindingsOfTask(uid)).map(([ns, n]) => writer.delete('RoleBinding', ns, n)));
    await Promise.all(targets('Role', view.rolesOfTask(uid)).map(([ns, n]) => writer.delete('Role', ns, n)));
    await Promise.all(targets('ServiceAccount', view.serviceAccountsOfTask(uid)).map(([ns, n]) => writer.delete('ServiceAccount', ns, n)));
  }

  private async ensureNothingLeft(task: AgentTask): Promise<void> {
    const uid = task.metadata.uid ?? '';
    const { view } = this.deps;
    if (view.roleBindingsOfTask(uid).length + view.rolesOfTask(uid).length + view.serviceAccountsOfTask(uid).length > 0) await this.deleteObjects(task);
  }

  // ---- terminal and deleted tasks -----------------------------------------------------------

  private async settleTerminal(task: AgentTask): Promise<void> {
    await this.ensureNothingLeft(task);
    await this.dropFinalizer(task);
  }

  private async finalize(task: AgentTask): Promise<void> {
    if (!task.metadata.finalizers?.includes(FINALIZER)) return;
    if (isTerminal(task.status?.phase)) {
      await this.ensureNothingLeft(task);
    } else if (isLive(task.status?.phase)) {
      await this.revoke(task, { reason: 'TaskDeleted', phase: 'Revoked', message: 'The AgentTask was deleted; its grant is revoked.' });
      return; // revoke drops the finalizer
    } else {
      await this.deleteObjects(task);
    }
    await this.dropFinalizer(task);
  }

  // ---- status, finalizer ---------------------------------------------------------------------

  private async ensureFinalizer(task: AgentTask): Promise<AgentTask> {
    const finalizers = task.metadata.finalizers ?? [];
    if (finalizers.includes(FINALIZER)) return task;
    return this.deps.writer.setTaskFinalizers(task, [...finalizers, FINALIZER]);
  }

  private async dropFinalizer(task: AgentTask): Promise<void> {
    const finalizers = task.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return;
    await this.deps.writer.setTaskFinalizers(task, finalizers.filter((f) => f !== FINALIZER));
  }

  /** A terminal transition of a task that holds nothing: no finalizer is needed any more. */
  private async finish(task: AgentTask, update: StatusUpdate): Promise<void> {
    await this.transition(task, update);
    await this.dropFinalizer(this.deps.view.task(task.metadata.namespace, task.metadata.name) ?? task);
  }

  /** Writes the status when it changes anything a user sees; audits real phase transitions. */
  private async transition(task: AgentTask, update: StatusUpdate, latencyMs?: number): Promise<void> {
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
      await this.deps.audit.record({ task: updated, from: current?.phase, status, ...(latencyMs !== undefined ? { latencyMs } : {}) });
    }
  }
}

export function taskKey(task: AgentTask): string {
  return `${task.metadata.namespace}/${task.metadata.name}`;
}

function latestApproval(task: AgentTask, approvals: TaskApproval[]): TaskApproval | undefined {
  // Only approvals naming this very task instance count; the webhook already refuses the rest.
  return approvals
    .filter((a) => a.spec.taskUID === task.metadata.uid)
    .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''))
    .at(-1);
}

function approvalStatus(approval: TaskApproval) {
  return {
    username: approval.spec.approver?.username ?? '',
    reason: approval.spec.reason ?? '',
    approvedAt: approval.metadata.creationTimestamp ?? new Date().toISOString(),
    approval: approval.metadata.name,
  };
}

function ceilingMessage(err: unknown): string | undefined {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const message = (e as Error).message ?? '';
    if (/403/.test(message) && /attempting to grant RBAC permissions not currently held|is attempting to grant/i.test(message)) {
      return 'The allowed permissions exceed what taskgrant itself may grant (its grantable ceiling), so nothing was granted.';
    }
  }
  return undefined;
}

function terminatingNamespace(err: unknown): string | undefined {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const m = /unable to create new content in namespace (\S+) because it is being terminated/.exec((e as Error).message ?? '');
    if (m) return m[1];
  }
  return undefined;
}

/**
 * Like Promise.all, but waits for every promise before failing: a refusal must not leave a
 * sibling write landing after the clean-up that follows it.
 */
async function settleAll<T extends readonly unknown[]>(work: readonly [...{ [K in keyof T]: Promise<T[K]> }]): Promise<T> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

function capitalize(text: string): string {
  return text.length === 0 ? text : text[0]!.toUpperCase() + text.slice(1);
}

function assertNever(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`);
}

/**
 * Beyond its permissions, what else a child could hold more of than its parent: more pods
 * carrying the grant, a longer-lived token, or a token for an audience the parent has none for.
 */
export function widerThanParent(child: AgentTask, parent: AgentTask): string[] {
  const name = parent.metadata.name;
  const wider: string[] = [];
  const [childPods, parentPods] = [child.spec.maxPods ?? 1, parent.spec.maxPods ?? 1];
  if (childPods > parentPods) wider.push(`maxPods ${childPods} is more than ${name}'s ${parentPods}`);
  const lifetime = (t: AgentTask) => t.spec.token?.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS;
  if (lifetime(child) > lifetime(parent)) wider.push(`token expirationSeconds ${lifetime(child)} is more than ${name}'s ${lifetime(parent)}`);
  // No audience listed means the API server's own.
  const audiences = (t: AgentTask) => (t.spec.token?.audiences?.length ? t.spec.token.audiences : ['']);
  const foreign = audiences(child).filter((a) => !audiences(parent).includes(a));
  if (foreign.length > 0) wider.push(`token audience ${foreign.map((a) => (a === '' ? '(the API server)' : a)).join(', ')} is not among ${name}'s`);
  return wider;
}
