// What the controller needs from the cluster, as small interfaces: src/kube implements them
// over informer caches and the API; unit tests pass in-memory fakes.
import type { AgentTask, AgentTaskStatus, Requester, TaskApproval } from '../api/index.js';
import type { LedgerEntry } from '../kube/ledger.js';
import type { ManagedKind, PodObject, RoleBindingObject, RoleObject, ServiceAccountObject } from '../kube/objects.js';

export type { LedgerEntry, ManagedKind };

/** Read side: informer caches, never an API call. */
export interface ClusterView {
  task(namespace: string, name: string): AgentTask | undefined;
  allTasks(): AgentTask[];
  approvalsOf(namespace: string, taskName: string): TaskApproval[];
  podsOfTask(namespace: string, taskName: string): PodObject[];
  serviceAccountsOfTask(taskUid: string): ServiceAccountObject[];
  rolesOfTask(taskUid: string): RoleObject[];
  roleBindingsOfTask(taskUid: string): RoleBindingObject[];
  /** Every object the operator manages whose task-uid label names no live task (crash leftovers). */
  managedTaskUids(): Set<string>;
  /** The namespace's `taskgrant.io/sensitivity` label: its data owner's floor. */
  namespaceSensitivity(namespace: string): string | undefined;
}

/** Asks the API server (a SubjectAccessReview) whether someone may approve AgentTasks in a namespace; false on any error. */
export interface ApproverCheck {
  mayApprove(approver: Requester, namespace: string): Promise<boolean>;
}

/** Write side. Each call goes to the API server; results are written through to the caches. */
export interface ClusterWriter {
  /**
   * Resolves with the object as it now stands: the one created, or — when the name was taken —
   * the one that was already there, which the caller must check before relying on it (anyone
   * allowed to create Roles could have made it first, with other rules).
   */
  create<T extends ServiceAccountObject | RoleObject | RoleBindingObject>(kind: ManagedKind, object: T): Promise<T>;
  replace(kind: ManagedKind, object: ServiceAccountObject | RoleObject | RoleBindingObject): Promise<void>;
  /** Resolves false when it was already gone. */
  delete(kind: ManagedKind, namespace: string, name: string): Promise<boolean>;
  patchTaskStatus(task: AgentTask, status: AgentTaskStatus): Promise<AgentTask>;
  /** Deletes this very task (a uid precondition: never one recreated under its name); false when gone. */
  deleteTask(task: AgentTask): Promise<boolean>;
  /** Deletes a TaskApproval; false when it was already gone. */
  deleteApproval(namespace: string, name: string): Promise<boolean>;
  /** Replaces the finalizer list; `live` sets (true) or removes (false) the taskgrant.io/live label in the same write. */
  setTaskFinalizers(task: AgentTask, finalizers: string[], live?: boolean): Promise<AgentTask>;
  /** Sets or removes the task's taskgrant.io/live label (admission mode policy selects by it). */
  setTaskLiveLabel(task: AgentTask, live: boolean): Promise<AgentTask>;
  /** Creates the Event named `name`; resolves false when it already exists. */
  recordEvent(task: AgentTask, type: 'Normal' | 'Warning', reason: string, message: string, name: string): Promise<boolean>;
  /** Whether the Event `name` exists, and whether taskgrant wrote it about this very task. */
  auditEventOwner(task: AgentTask, name: string): Promise<'missing' | 'ours' | 'foreign'>;
}

/** Durable record of grants per agent (re-issuance limits must survive restarts and deletions). */
export interface GrantLedger {
  entries(namespace: string, agent: string): Promise<LedgerEntry[]>;
  /** Records the grant; idempotent per uid; fails on a lost write race so the caller re-reads. */
  append(namespace: string, agent: string, entry: LedgerEntry, windowMs: number): Promise<void>;
  /** Deletes the ledgers in which nothing counts any more; resolves how many. */
  prune(now: number, windowMs: number): Promise<number>;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
