// AgentTask and TaskApproval as the API server stores them (crds/ holds the schemas).
import type { Sensitivity } from './sensitivity.js';

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface PermissionRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
  /** Defaults to the task's namespace. */
  namespace?: string;
}

export interface Intent {
  objective: string;
  tools?: string[];
  sensitivity?: Sensitivity;
  permissions: PermissionRule[];
  /** Request budget: with the request-time authorizer, every request beyond this many is refused. */
  maxRequests?: number;
}

export interface Requester {
  username?: string;
  uid?: string;
  groups?: string[];
  /** Set when the caller authenticated with a pod-bound ServiceAccount token. */
  podName?: string;
}

export interface TokenSpec {
  audiences?: string[];
  expirationSeconds?: number;
}

export interface AgentTaskSpec {
  agent: string;
  intent: Intent;
  ttl?: string;
  parentTask?: string;
  maxPods?: number;
  token?: TokenSpec;
  requester?: Requester;
}

export const PHASES = ['Pending', 'AwaitingApproval', 'Denied', 'Granted', 'Active', 'Completed', 'Expired', 'Revoked', 'Failed'] as const;
export type Phase = (typeof PHASES)[number];
export const TERMINAL_PHASES: readonly Phase[] = ['Denied', 'Completed', 'Expired', 'Revoked', 'Failed'];
export const LIVE_PHASES: readonly Phase[] = ['Granted', 'Active'];

export function isTerminal(phase: Phase | undefined): boolean {
  return phase !== undefined && TERMINAL_PHASES.includes(phase);
}

export function isLive(phase: Phase | undefined): boolean {
  return phase !== undefined && LIVE_PHASES.includes(phase);
}

export interface DecisionStatus {
  allowed: boolean;
  determiningPolicies: string[];
  errors: string[];
  policyRevision: string;
  evaluatedAt: string;
}

export interface GrantStatus {
  serviceAccount: string;
  role: string;
  roleBinding: string;
  /** Every namespace holding a Role + RoleBinding of this grant. */
  namespaces?: string[];
  issuedAt: string;
  expiresAt: string;
  pods?: string[];
  /** A delegated grant: the uid of the parent it was decided against (a recreated parent is another task). */
  parentUID?: string;
}

export type ConditionType = 'Ready' | 'PolicyAllowed' | 'Revoked';

export interface Condition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface ApproverStatus {
  username?: string;
  reason?: string;
  approvedAt?: string;
  /** The TaskApproval that decided. */
  approval?: string;
}

/** What the task identity did, as the request-time authorizer counted it. */
export interface TaskUsage {
  requests: number;
  denied: number;
  /** Granted tuples no request used, as describeTuple names them. */
  unusedPermissions?: string[];
  updatedAt?: string;
}

export interface AgentTaskStatus {
  phase?: Phase;
  reason?: string;
  message?: string;
  decision?: DecisionStatus;
  grant?: GrantStatus;
  approval?: ApproverStatus;
  revokedAt?: string;
  usage?: TaskUsage;
  conditions?: Condition[];
  observedGeneration?: number;
}

export interface AgentTask {
  apiVersion: string;
  kind: 'AgentTask';
  metadata: ObjectMeta;
  spec: AgentTaskSpec;
  status?: AgentTaskStatus;
}

export type ApprovalDecision = 'Approve' | 'Deny';

export interface TaskApprovalSpec {
  task: string;
  taskUID: string;
  decision: ApprovalDecision;
  reason?: string;
  approver?: Requester;
}

export interface TaskApproval {
  apiVersion: string;
  kind: 'TaskApproval';
  metadata: ObjectMeta;
  spec: TaskApprovalSpec;
}

/** Reads a task from a cache (webhook and receipts both answer from the operator's informer). */
export interface TaskLookup {
  /** The AgentTask as the informer cache holds it, or undefined when the cache has not seen it. */
  get(namespace: string, name: string): AgentTask | undefined;
}
