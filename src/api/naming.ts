// How the operator names the ServiceAccount it creates for a task. Shared by the controller
// (which creates it) and the webhook's identity guard (which must recognise it without seeing
// the ServiceAccount's labels), so the two can never drift apart.

/** Every task ServiceAccount starts with this; the identity guard treats any such name as taskgrant's. */
export const SERVICE_ACCOUNT_PREFIX = 'tg-';

/** `tg-<task>-<first 8 characters of the task uid>`; the uid part keeps a recreated task from inheriting the old name. */
export function taskServiceAccountName(taskName: string, taskUid: string): string {
  return `${SERVICE_ACCOUNT_PREFIX}${taskName}-${taskUid.slice(0, 8).toLowerCase()}`;
}

/**
 * Whether a ServiceAccount name is reserved for taskgrant. Deliberately the whole prefix, not the
 * exact `tg-<task>-<uid8>` shape: a look-alike name must not slip past the identity guard.
 */
export function isTaskServiceAccountName(name: string): boolean {
  return name.startsWith(SERVICE_ACCOUNT_PREFIX);
}

/** `system:serviceaccount:<namespace>:<name>` split, or undefined for any other username. */
export function serviceAccountOf(username: string): { namespace: string; name: string } | undefined {
  const parts = username.split(':');
  if (parts.length !== 4 || parts[0] !== 'system' || parts[1] !== 'serviceaccount' || !parts[2] || !parts[3]) return undefined;
  return { namespace: parts[2], name: parts[3] };
}

/** The task ServiceAccount a username authenticates as, if it is one (any `tg-*` name counts). */
export function taskIdentityOf(username: string | undefined): { namespace: string; name: string } | undefined {
  const account = serviceAccountOf(username ?? '');
  return account && isTaskServiceAccountName(account.name) ? account : undefined;
}
