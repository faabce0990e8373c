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
