// What a refusal from the API server means, read from its Status (code, reason, details) —
// never from its message text, which is for humans and changes between releases.
import { KubeError } from './api.js';

/** The first KubeError in an error's cause chain. */
function kubeErrorIn(err: unknown): KubeError | undefined {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) if (e instanceof KubeError) return e;
  return undefined;
}

/**
 * The namespace a write was refused in because it is being deleted (the API server's lifecycle
 * admission marks it with a `NamespaceTerminating` cause), or undefined.
 */
export function isNamespaceTerminating(err: unknown): string | undefined {
  const e = kubeErrorIn(err);
  if (!e || e.status !== 403 || !e.details.causes?.includes('NamespaceTerminating')) return undefined;
  return /\/namespaces\/([^/]+)\//.exec(e.path)?.[1] ?? '';
}

/**
 * A Role or RoleBinding write refused as Forbidden. taskgrant's own RBAC lets it write both in
 * every namespace it serves, so what remains is the API server's escalation check: the rules
 * (or the rules of the Role a binding names) exceed what the operator itself holds — its
 * grantable ceiling. A terminating namespace is the one other Forbidden, told apart by its cause.
 */
export function isEscalationRefused(err: unknown): boolean {
  const e = kubeErrorIn(err);
  if (!e || e.status !== 403 || e.reason !== 'Forbidden' || isNamespaceTerminating(e) !== undefined) return false;
  return e.details.kind === 'roles' || e.details.kind === 'rolebindings';
}
