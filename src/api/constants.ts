// Names users and scripts rely on (the README and docs name them). Changing one is a breaking change.
export const GROUP = 'taskgrant.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const AGENT_TASK_KIND = 'AgentTask';
export const AGENT_TASK_PLURAL = 'agenttasks';
export const TASK_APPROVAL_KIND = 'TaskApproval';
export const TASK_APPROVAL_PLURAL = 'taskapprovals';

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'taskgrant';
export const LABEL_TASK = 'taskgrant.io/task';
export const LABEL_TASK_UID = 'taskgrant.io/task-uid';
export const LABEL_POLICY = 'taskgrant.io/policy';
/**
 * On an AgentTask while it holds a grant (admission mode policy): the MutatingAdmissionPolicy
 * selects its parameters, the live tasks of a pod's namespace, by it. A selector only: the policy
 * checks the phase the operator wrote, so a label added by anyone else admits nothing.
 */
export const LABEL_TASK_LIVE = 'taskgrant.io/live';
export const ANNOTATION_REVOKE = 'taskgrant.io/revoke';
export const ANNOTATION_POD_TASK_UID = 'taskgrant.io/task-uid';
/** The maxPods claim a task pod holds (its name, or its admission's uid for a generateName pod). */
export const ANNOTATION_POD_SLOT = 'taskgrant.io/slot';
export const FINALIZER = 'taskgrant.io/revoke-grant';
/** ConfigMap in the operator namespace naming the modes in force (`admission`, `authorization`), for `explain`. */
export const MODES_CONFIGMAP = 'taskgrant-modes';

export const TOKEN_MOUNT_PATH = '/var/run/secrets/taskgrant.io/';
export const TOKEN_FILE = 'token';
export const TOKEN_FILE_ENV = 'TASKGRANT_TOKEN_FILE';
export const TOKEN_VOLUME = 'taskgrant-token';

export const TTL_MIN_SECONDS = 10;
export const TTL_MAX_SECONDS = 24 * 3600;
export const DEFAULT_TTL = '15m';
export const TOKEN_MIN_EXPIRATION_SECONDS = 600;
/** The API server stretches a 3607 s token to a year (legacy kubelet compatibility). */
export const TOKEN_FORBIDDEN_EXPIRATION_SECONDS = 3607;
/** A task token's lifetime when `spec.token.expirationSeconds` is not set. */
export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 600;

/** The userInfo extra key the API server sets when the caller used a pod-bound ServiceAccount token. */
export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
