// What `explain` reports about a task, built from what it could read: pure, so every part of
// the report is unit-tested without a cluster.
import { ANNOTATION_REVOKE, DEFAULT_SENSITIVITY, DEFAULT_TTL, type AgentTask, type ApproverStatus, type PermissionRule, type Requester, type TaskApproval, type TaskUsage } from '../../api/index.js';
import type { EventObject, GrantObject } from '../../kube/tasks-client.js';
import { remainingTtl } from '../format.js';
import type { LoadedPolicies } from '../policies.js';
export const DEFAULT_OPERATOR_NAMESPACE = 'taskgrant-system';

export interface ExplainedPolicy {
  id: string;
  /** `file:policies/baseline.cedar` or `configmap:taskgrant-system/x#y.cedar`. */
  origin?: string;
  /** The policy with the comment above it; absent when no loaded source defines this id. */
  text?: string;
}

export interface ExplainedApproval {
  name: string;
  decision: string;
  approver?: string;
  reason?: string;
  createdAt?: string;
  taskUID: string;
  /** False for an approval of an earlier task of the same name: the operator ignores it. */
  matchesTask: boolean;
}

export interface TimelineEntry {
  time?: string;
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  source?: string;
}

export interface ExplainReport {
  task: {
    namespace: string;
    name: string;
    uid?: string;
    agent: string;
    phase?: string;
    reason?: string;
    message?: string;
    createdAt?: string;
    parentTask?: string;
    revokeRequested?: string;
    revokedAt?: string;
  };
  intent: { objective: string; tools: string[]; sensitivity: string; ttl: string; permissions: PermissionRule[] };
  requester?: Requester;
  decision?: { allowed: boolean; evaluatedAt: string; policyRevision: string; errors: string[]; determiningPolicies: ExplainedPolicy[] };
  approval?: ApproverStatus;
  grant?: { serviceAccount: string; role: string; roleBinding: string; namespaces: string[]; issuedAt: string; expiresAt: string; remaining: string; pods: string[] };
  /** What exists in the cluster now, found by the task-uid label (none once the task is over). */
  grantObjects?: GrantObject[];
  /** How the operator admits task pods and whether it decides at request time (absent: not published or not readable). */
  modes?: Record<string, string>;
  /** What the request-time authorizer counted (absent where it does not run). */
  usage?: TaskUsage;
  approvals?: ExplainedApproval[];
  timeline?: TimelineEntry[];
  policies: { dir: string; revision?: string; configMaps: string[] };
  warnings: string[];
}

interface Gathered {
  task: AgentTask;
  approvals?: TaskApproval[];
  events?: EventObject[];
  grantObjects?: GrantObject[];
  modes?: Record<string, string>;
  policies: LoadedPolicies;
  configMaps: string[];
  warnings: string[];
}

const time = (e: EventObject) => e.eventTime || e.lastTimestamp || e.firstTimestamp || (e.metadata.creationTimestamp as string | undefined) || '';

/**
 * Events oldest first. Event timestamps have one-second resolution, so events of the same second
 * are ordered by resourceVersion: the API server assigns it in write order (etcd's revision).
 */
export function sortEvents(events: readonly EventObject[]): EventObject[] {
  const rv = (e: EventObject) => {
    const n = Number(e.metadata.resourceVersion);
    return Number.isFinite(n) ? n : 0;
  };
  return [...events].sort((a, b) => Date.parse(time(a)) - Date.parse(time(b)) || rv(a) - rv(b));
}

export function buildReport(g: Gathered, now: number): ExplainReport {
  const { task } = g;
  const status = task.status;
  const decision = status?.decision;
  const policy = (id: string): ExplainedPolicy => {
    if (g.policies.type !== 'loaded') return { id };
    const loaded = g.policies.engine.policy(id);
    return loaded ? { id, origin: loaded.origin, text: loaded.text } : { id };
  };
  const grant = status?.grant;
  const revoke = task.metadata.annotations?.[ANNOTATION_REVOKE];
  return {
    task: {
      namespace: task.metadata.namespace,
      name: task.metadata.name,
      ...(task.metadata.uid ? { uid: task.metadata.uid } : {}),
      agent: task.spec.agent,
      ...(status?.phase ? { phase: status.phase } : {}),
      ...(status?.reason ? { reason: status.reason } : {}),
      ...(status?.message ? { message: status.message } : {}),
      ...(task.metadata.creationTimestamp ? { createdAt: task.metadata.creationTimestamp } : {}),
      ...(task.spec.parentTask ? { parentTask: task.spec.parentTask } : {}),
      ...(revoke !== undefined ? { revokeRequested: revoke } : {}),
      ...(status?.revokedAt ? { revokedAt: status.revokedAt } : {}),
    },
    intent: {
      objective: task.spec.intent.objective,
      tools: task.spec.intent.tools ?? [],
      sensitivity: task.spec.intent.sensitivity ?? DEFAULT_SENSITIVITY,
      ttl: task.spec.ttl ?? DEFAULT_TTL,
      permissions: task.spec.intent.permissions,
    },
    ...(task.spec.requester && Object.keys(task.spec.requester).length > 0 ? { requester: task.spec.requester } : {}),
    ...(decision
      ? {
          decision: {
            allowed: decision.allowed,
            evaluatedAt: decision.evaluatedAt,
            policyRevision: decision.policyRevision,
            errors: decision.errors ?? [],
            determiningPolicies: (decision.determiningPolicies ?? []).map(policy),
          },
        }
      : {}),
    ...(status?.approval ? { approval: status.approval } : {}),
    ...(grant
      ? {
          grant: {
            serviceAccount: grant.serviceAccount,
            role: grant.role,
            roleBinding: grant.roleBinding,
            namespaces: grant.namespaces ?? [task.metadata.namespace],
            issuedAt: grant.issuedAt,
            expiresAt: grant.expiresAt,
            remaining: remainingTtl(task, now),
            pods: grant.pods ?? [],
          },
        }
      : {}),
    ...(g.grantObjects ? { grantObjects: g.grantObjects } : {}),
    ...(status?.usage ? { usage: status.usage } : {}),
    ...(g.modes ? { modes: g.modes } : {}),
    ...(g.approvals
      ? {
          approvals: g.approvals
            .filter((a) => a.spec.task === task.metadata.name)
            .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name))
            .map((a) => ({
              name: a.metadata.name,
              decision: a.spec.decision,
              ...(a.spec.approver?.username ? { approver: a.spec.approver.username } : {}),
              ...(a.spec.reason ? { reason: a.spec.reason } : {}),
              ...(a.metadata.creationTimestamp ? { createdAt: a.metadata.creationTimestamp } : {}),
              taskUID: a.spec.taskUID,
              matchesTask: a.spec.taskUID === task.metadata.uid,
            })),
        }
      : {}),
    ...(g.events
      ? {
          timeline: sortEvents(g.events).map((e) => ({
            time: time(e),
            ...(e.type ? { type: e.type } : {}),
            ...(e.reason ? { reason: e.reason } : {}),
            ...(e.message ? { message: e.message } : {}),
            ...(e.count ? { count: e.count } : {}),
            ...(e.reportingComponent || e.source?.component ? { source: e.reportingComponent || e.source?.component } : {}),
          })),
        }
      : {}),
    policies: { dir: g.policies.dir, ...(g.policies.type === 'loaded' ? { revision: g.policies.revision } : {}), configMaps: g.configMaps },
    warnings: g.warnings,
  };
}
