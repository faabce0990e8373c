// Checking a live grant against what the operator can derive again. A live status is the
// operator's record, never its input: whoever may write a task's status could otherwise turn a
// denied task into a grant. And a new policy revision is applied to live grants: access the
// policy no longer allows ends.
import { targetNamespaces, ttlSeconds, type AgentTask } from '../api/index.js';
import type { Decision } from '../policy/index.js';
import { evaluate, type PolicyDecider } from './decide.js';
import type { GrantLedger, LedgerEntry } from './ports.js';
import type { Trigger } from './triggers.js';

export interface GrantFacts {
  task: AgentTask;
  parent: AgentTask | undefined;
  depth: number;
  /** A TaskApproval approving this very uid exists now (the status's copy is not proof). */
  approved: boolean;
  sensitivityFloor?: string | undefined;
}

export interface VerifierDeps {
  ledger: GrantLedger;
  policy: PolicyDecider;
  reissueWindowMs: number;
  operatorNamespace: string | undefined;
}

/** `current`: nothing to do; `allowed`: re-decided under a new revision and still allowed (nothing to write); `revoke`: no longer allowed. */
export type PolicyVerdict = { type: 'current' } | { type: 'allowed'; decision: Decision } | { type: 'revoke'; trigger: Trigger };

export class GrantVerifier {
  /**
   * Live tasks re-decided and still allowed under `revision`, so a policy reload re-decides each
   * once, without writing to every live task when nothing about it changed.
   */
  private allowedUnder: { revision: string | undefined; uids: Set<string> } = { revision: undefined, uids: new Set() };

  constructor(private readonly deps: VerifierDeps) {}

  /** Drops what is remembered of a task that ended. */
  forget(uid: string): void {
    this.allowedUnder.uids.delete(uid);
  }

  /**
   * Why the grant cannot be derived again, or undefined when it can: this task's ledger entry
   * (written before every grant), an expiry no later than that entry plus the task's ttl, no
   * target in the operator's namespace, and a decision that allows it now — with an approval only
   * if a TaskApproval approves this very uid.
   */
  async unverified(facts: GrantFacts): Promise<string | undefined> {
    const { task } = facts;
    const own = this.deps.operatorNamespace;
    if (own && targetNamespaces(task).includes(own)) return `it reaches ${own}, taskgrant's own namespace`;
    const grant = task.status?.grant;
    if (!grant) return 'its status names no grant';
    const entries = await this.deps.ledger.entries(task.metadata.namespace, task.spec.agent);
    const entry = entries.find((e) => e.uid === task.metadata.uid);
    if (!entry) return 'no grant to this task is recorded in the ledger';
    const expiresAt = Date.parse(grant.expiresAt);
    if (!Number.isFinite(expiresAt) || expiresAt > entry.at + ttlSeconds(task) * 1000) return `its expiry ${grant.expiresAt} is later than its ttl allows`;
    // Under another policy revision than the one it names, policyVerdict re-decides it.
    const { policy } = this.deps;
    if (!policy.ready || task.status?.decision?.policyRevision !== policy.revision) return undefined;
    const decision = this.decide(facts, this.grantsBefore(entries, task, entry.at));
    if (decision.type === 'deny') return `policy does not allow it${facts.approved ? '' : ' without an approval of this uid'}: ${decision.reason}`;
    return undefined;
  }

  /** Re-decides a task granted under another policy revision, with the counts it was granted under. */
  async policyVerdict(facts: GrantFacts, now: number): Promise<PolicyVerdict> {
    const { task } = facts;
    const current = this.deps.policy.revision;
    if (!this.deps.policy.ready || !current || task.status?.decision?.policyRevision === current) return { type: 'current' };
    if (this.allowedUnder.revision !== current) this.allowedUnder = { revision: current, uids: new Set() };
    if (this.allowedUnder.uids.has(task.metadata.uid ?? '')) return { type: 'current' };
    const issuedAt = Date.parse(task.status?.grant?.issuedAt ?? '') || now;
    const entries = await this.deps.ledger.entries(task.metadata.namespace, task.spec.agent);
    const decision = this.decide(facts, this.grantsBefore(entries, task, issuedAt));
    if (decision.type === 'allow') {
      this.allowedUnder.uids.add(task.metadata.uid ?? '');
      return { type: 'allowed', decision };
    }
    return { type: 'revoke', trigger: { reason: 'PolicyChanged', phase: 'Revoked', message: `Policy revision ${current} no longer allows this task: ${decision.reason}.` } };
  }

  /** The agent's other grants inside the window before `at`: what the task was decided against. */
  private grantsBefore(entries: LedgerEntry[], task: AgentTask, at: number): LedgerEntry[] {
    return entries.filter((e) => e.uid !== task.metadata.uid && e.at >= at - this.deps.reissueWindowMs && e.at < at);
  }

  private decide({ task, approved, depth, sensitivityFloor }: GrantFacts, recent: LedgerEntry[]): Decision {
    return evaluate(this.deps.policy, { task, approved, recent, depth, reissueWindowMs: this.deps.reissueWindowMs, ...(sensitivityFloor !== undefined ? { sensitivityFloor } : {}) });
  }
}
