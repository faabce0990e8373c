// Granting: the objects a task's grant needs, compared with what exists and made to match —
// created when missing, replaced when someone else made or changed them — and the Granted status.
import {
  LABEL_TASK_UID,
  expandPermissions,
  targetNamespaces,
  taskServiceAccountName,
  ttlSeconds,
  type AgentTask,
} from '../api/index.js';
import { isEscalationRefused } from '../kube/errors.js';
import type { RoleBindingObject, RoleObject, ServiceAccountObject } from '../kube/objects.js';
import { bindingMatches, desiredGrant, roleMatches } from './desired.js';
import type { ClusterView, ClusterWriter } from './ports.js';
import { settleAll } from './settle.js';
import type { StatusUpdate } from './status.js';

type Managed = ServiceAccountObject | RoleObject | RoleBindingObject;

export const CEILING_MESSAGE = 'The allowed permissions exceed what taskgrant itself may grant (its grantable ceiling), so nothing was granted.';

/**
 * Creates what is missing and repairs drift (a Role someone widened is put back).
 * Resolves `ceiling` when the API server refused a Role or RoleBinding because it exceeds what
 * the operator itself holds (its grantable ceiling), `ready` when everything is in place.
 * The RoleBindings (what makes the grant usable) wait for `bindAfter` too: the caller's finalizer,
 * written alongside the ServiceAccount and Roles, so nothing usable exists that a deletion of the
 * task would not clean up. Should it fail, no binding is made.
 */
export async function ensureObjects(view: ClusterView, writer: ClusterWriter, task: AgentTask, bindAfter: Promise<unknown> = Promise.resolve()): Promise<'ready' | 'ceiling'> {
  const desired = desiredGrant(task);
  const uid = task.metadata.uid ?? '';
  const roles = view.rolesOfTask(uid);
  const bindings = view.roleBindingsOfTask(uid);
  const sameObject = (a: Managed, b: Managed) => a.metadata.namespace === b.metadata.namespace && a.metadata.name === b.metadata.name;
  const hasAccount = view.serviceAccountsOfTask(uid).some((sa) => sameObject(sa, desired.serviceAccount));
  // An object found under our name but not carrying this task's marks was made by someone else
  // (the names are predictable once the task exists): never adopted as it is. The owner reference
  // too where the grant sets one (only in the task's own namespace: an owner cannot live in another).
  const owners = (o: Managed): unknown[] => (Array.isArray(o.metadata.ownerReferences) ? o.metadata.ownerReferences : []);
  const ours = (actual: Managed, wanted: Managed) =>
    actual.metadata.labels?.[LABEL_TASK_UID] === uid &&
    owners(wanted).every((w) => owners(actual).some((a) => (a as { uid?: unknown }).uid === (w as { uid?: unknown }).uid));
  const withVersionOf = <T extends Managed>(wanted: T, actual: Managed): T => ({ ...wanted, metadata: { ...wanted.metadata, resourceVersion: actual.metadata.resourceVersion } });

  const ensureAccount = async () => {
    const actual = await writer.create('ServiceAccount', desired.serviceAccount);
    if (!ours(actual, desired.serviceAccount)) await writer.replace('ServiceAccount', withVersionOf(desired.serviceAccount, actual));
  };
  const ensureRole = async (role: RoleObject) => {
    const actual = roles.find((r) => sameObject(r, role)) ?? (await writer.create('Role', role));
    if (!roleMatches(actual, role) || !ours(actual, role)) await writer.replace('Role', withVersionOf(role, actual));
  };
  const ensureBinding = async (binding: RoleBindingObject) => {
    const actual = bindings.find((b) => sameObject(b, binding)) ?? (await writer.create('RoleBinding', binding));
    if (!bindingMatches(actual, binding) || !ours(actual, binding)) {
      // roleRef is immutable: a tampered binding is deleted and created anew.
      await writer.delete('RoleBinding', binding.metadata.namespace ?? '', binding.metadata.name);
      await writer.create('RoleBinding', binding);
    }
  };
  try {
    // The ServiceAccount beside the Roles (a RoleBinding may name an account that does not exist
    // yet; nothing is usable before the status says Granted). The RoleBindings only after their
    // Roles: the operator may not `bind`, so the API server checks each binding against the rules
    // of the Role it names, and refuses one whose Role is not there yet.
    await settleAll([
      hasAccount ? Promise.resolve() : ensureAccount(),
      (async () => {
        await settleAll([settleAll(desired.roles.map(ensureRole)), bindAfter]);
        await settleAll(desired.roleBindings.map(ensureBinding));
      })(),
    ]);
  } catch (err) {
    if (isEscalationRefused(err)) return 'ceiling';
    throw err;
  }
  // Objects of this task that the desired set no longer includes (should not happen: spec is immutable).
  const wanted = new Set(desired.roles.map((r) => `${r.metadata.namespace}/${r.metadata.name}`));
  for (const b of bindings) if (!wanted.has(`${b.metadata.namespace}/${b.metadata.name}`)) await writer.delete('RoleBinding', b.metadata.namespace ?? '', b.metadata.name);
  for (const r of roles) if (!wanted.has(`${r.metadata.namespace}/${r.metadata.name}`)) await writer.delete('Role', r.metadata.namespace ?? '', r.metadata.name);
  return 'ready';
}

/** The expiry of a grant issued at `issuedAt`: its ttl, never beyond its parent's grant. */
export function grantExpiry(task: AgentTask, issuedAt: number, parent: AgentTask | undefined): number {
  const own = issuedAt + ttlSeconds(task) * 1000;
  const parentExpiry = Date.parse(parent?.status?.grant?.expiresAt ?? '');
  return Number.isFinite(parentExpiry) ? Math.min(own, parentExpiry) : own;
}

/** The Granted status of a grant whose objects are in place (decision and approval added by the caller). */
export function grantedUpdate(task: AgentTask, issuedAt: number, expiresAt: number, parent: AgentTask | undefined): Pick<StatusUpdate, 'phase' | 'reason' | 'message' | 'grant'> {
  const name = taskServiceAccountName(task.metadata.name, task.metadata.uid ?? '');
  const namespaces = targetNamespaces(task);
  return {
    phase: 'Granted',
    reason: 'PolicyAllowed',
    message: `Granted ${expandPermissions(task).length} permission(s) in ${namespaces.join(', ')} to ServiceAccount ${name} until ${new Date(expiresAt).toISOString()}.`,
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
  };
}
