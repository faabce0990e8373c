// A task's permission rules flattened into the tuples Cedar decides one by one:
// verb x apiGroup x resource x (resourceName or "") x namespace.
import type { AgentTask, PermissionRule } from './types.js';

export interface PermissionTuple {
  verb: string;
  apiGroup: string;
  resource: string;
  /** "" when the rule names no resource. */
  name: string;
  namespace: string;
}

export function ruleNamespace(rule: PermissionRule, taskNamespace: string): string {
  return rule.namespace && rule.namespace.length > 0 ? rule.namespace : taskNamespace;
}

export function expandRule(rule: PermissionRule, taskNamespace: string): PermissionTuple[] {
  const namespace = ruleNamespace(rule, taskNamespace);
  const names = rule.resourceNames && rule.resourceNames.length > 0 ? rule.resourceNames : [''];
  const tuples: PermissionTuple[] = [];
  for (const verb of rule.verbs)
    for (const apiGroup of rule.apiGroups)
      for (const resource of rule.resources)
        for (const name of names) tuples.push({ verb, apiGroup, resource, name, namespace });
  return tuples;
}

/** Every tuple the task asks for, de-duplicated, in a stable order. */
export function expandPermissions(task: Pick<AgentTask, 'spec' | 'metadata'>): PermissionTuple[] {
  const seen = new Map<string, PermissionTuple>();
  for (const rule of task.spec.intent.permissions) {
    for (const t of expandRule(rule, task.metadata.namespace)) seen.set(tupleKey(t), t);
  }
  return [...seen.values()];
}

export function tupleKey(t: PermissionTuple): string {
  return JSON.stringify([t.verb, t.apiGroup, t.resource, t.name, t.namespace]);
}

/** The namespaces a task's grant touches, sorted; each gets its own Role + RoleBinding. */
export function targetNamespaces(task: Pick<AgentTask, 'spec' | 'metadata'>): string[] {
  return [...new Set(task.spec.intent.permissions.map((r) => ruleNamespace(r, task.metadata.namespace)))].sort();
}

/** Whether `tuple` is covered by `granted` (same verb, group, resource, namespace; unnamed covers every name). */
export function tupleCovered(tuple: PermissionTuple, granted: readonly PermissionTuple[]): boolean {
  return coveringTuple(tuple, granted) !== undefined;
}

/** The first of `granted` that covers `tuple`, as RBAC would match a Role rule. */
export function coveringTuple(tuple: PermissionTuple, granted: readonly PermissionTuple[]): PermissionTuple | undefined {
  return granted.find(
    (g) =>
      g.verb === tuple.verb &&
      g.apiGroup === tuple.apiGroup &&
      g.resource === tuple.resource &&
      g.namespace === tuple.namespace &&
      (g.name === '' || g.name === tuple.name),
  );
}
