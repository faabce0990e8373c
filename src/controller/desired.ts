// What a granted task should own in the cluster, derived only from the task: one
// ServiceAccount in the task's namespace, and one Role + RoleBinding per target namespace
// holding exactly the requested (and allowed) rules. Pure, so reconcile can diff against it.
import {
  API_VERSION,
  AGENT_TASK_KIND,
  LABEL_MANAGED_BY,
  LABEL_TASK,
  LABEL_TASK_UID,
  MANAGED_BY,
  taskServiceAccountName,
  ruleNamespace,
  type AgentTask,
} from '../api/index.js';
import type { PolicyRuleObject, RoleBindingObject, RoleObject, ServiceAccountObject } from '../kube/objects.js';

export interface DesiredGrant {
  serviceAccount: ServiceAccountObject;
  roles: RoleObject[];
  roleBindings: RoleBindingObject[];
}

export function grantLabels(task: AgentTask): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_TASK]: task.metadata.name, [LABEL_TASK_UID]: task.metadata.uid ?? '' };
}

/** Owner references only work inside one namespace; Roles elsewhere are cleaned up by label. */
function ownedBy(task: AgentTask, namespace: string) {
  if (namespace !== task.metadata.namespace) return {};
  return {
    ownerReferences: [
      { apiVersion: API_VERSION, kind: AGENT_TASK_KIND, name: task.metadata.name, uid: task.metadata.uid ?? '', controller: true, blockOwnerDeletion: true },
    ],
  };
}

export function rulesByNamespace(task: AgentTask): Map<string, PolicyRuleObject[]> {
  const byNs = new Map<string, PolicyRuleObject[]>();
  for (const rule of task.spec.intent.permissions) {
    const ns = ruleNamespace(rule, task.metadata.namespace);
    const rules = byNs.get(ns) ?? [];
    rules.push({
      apiGroups: [...rule.apiGroups],
      resources: [...rule.resources],
      verbs: [...rule.verbs],
      ...(rule.resourceNames && rule.resourceNames.length > 0 ? { resourceNames: [...rule.resourceNames] } : {}),
    });
    byNs.set(ns, rules);
  }
  return new Map([...byNs.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

export function desiredGrant(task: AgentTask): DesiredGrant {
  const name = taskServiceAccountName(task.metadata.name, task.metadata.uid ?? '');
  const labels = grantLabels(task);
  const taskNs = task.metadata.namespace;
  const serviceAccount: ServiceAccountObject = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name, namespace: taskNs, labels, ...ownedBy(task, taskNs) },
    // Only the webhook's projected, audience-bound token should ever reach a pod.
    automountServiceAccountToken: false,
  };
  const roles: RoleObject[] = [];
  const roleBindings: RoleBindingObject[] = [];
  for (const [namespace, rules] of rulesByNamespace(task)) {
    roles.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace, labels, ...ownedBy(task, namespace) }, rules });
    roleBindings.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace, labels, ...ownedBy(task, namespace) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: taskNs }],
    });
  }
  return { serviceAccount, roles, roleBindings };
}

function normalizedRules(rules: PolicyRuleObject[]): string {
  return JSON.stringify(
    rules.map((r) => ({ apiGroups: r.apiGroups, resources: r.resources, verbs: r.verbs, resourceNames: r.resourceNames && r.resourceNames.length > 0 ? r.resourceNames : [] })),
  );
}

/** True when a live Role holds exactly the rules we want (anything else is drift to repair). */
export function roleMatches(actual: RoleObject, wanted: RoleObject): boolean {
  return normalizedRules(actual.rules ?? []) === normalizedRules(wanted.rules);
}

export function bindingMatches(actual: RoleBindingObject, wanted: RoleBindingObject): boolean {
  return JSON.stringify(actual.roleRef) === JSON.stringify(wanted.roleRef) && JSON.stringify(actual.subjects ?? []) === JSON.stringify(wanted.subjects);
}
