// Task pods: `/mutate/pods` hands a pod its task's identity and nothing else; `/validate/pods`
// (the identity guard) keeps every other pod away from that identity.
import { posix } from 'node:path';
import { isString, isRecord, ANNOTATION_POD_SLOT, ANNOTATION_POD_TASK_UID, DEFAULT_TOKEN_EXPIRATION_SECONDS, LABEL_TASK, LIVE_PHASES, TOKEN_FILE, TOKEN_FILE_ENV, TOKEN_FORBIDDEN_EXPIRATION_SECONDS, TOKEN_MIN_EXPIRATION_SECONDS, TOKEN_MOUNT_PATH, TOKEN_VOLUME, type AgentTask, type Parsed } from '../api/index.js';
import { isTaskServiceAccountName } from '../api/naming.js';
import { allow, allowPatch, deny, type AdmissionRequest, type MutationVerdict, type ValidationVerdict } from './admission.js';
import type { PodSlots, ServiceAccountLookup, TaskLookup } from './deps.js';
import { add, editArray, setMapEntry, type ItemEdit, type Patch } from './jsonpatch.js';

// Only the fields taskgrant reads or rewrites; everything else rides along untouched in the index signatures.
export interface EnvVar {
  name: string;
  [field: string]: unknown;
}
export interface VolumeMount {
  name: string;
  mountPath: string;
  [field: string]: unknown;
}
export interface Container {
  name: string;
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  [field: string]: unknown;
}
export interface Volume {
  name: string;
  [field: string]: unknown;
}
export interface PodSpec {
  serviceAccountName?: string;
  /** Deprecated alias of serviceAccountName that the API server still round-trips. */
  serviceAccount?: string;
  automountServiceAccountToken?: boolean;
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  [field: string]: unknown;
}
export interface PodMetadata {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}
export interface Pod {
  metadata?: PodMetadata;
  spec: PodSpec;
  [field: string]: unknown;
}

/** What a task pod is given: the task's ServiceAccount and a projected token for it. */
export interface TokenGrant {
  serviceAccount: string;
  taskUid: string;
  expirationSeconds: number;
  /** Empty: one token for the API server's own audience. */
  audiences: string[];
}

/** The API server refuses projected token lifetimes above 2^32 seconds. */
const MAX_TOKEN_EXPIRATION_SECONDS = 2 ** 32;
/** Prefix of the volume the ServiceAccount admission plugin adds (it runs before any webhook). */
export const API_ACCESS_VOLUME_PREFIX = 'kube-api-access-';
const DEFAULT_SERVICE_ACCOUNT = 'default';
/** Published in every namespace by kube-controller-manager's root-ca-cert-publisher. */
const CLUSTER_CA_CONFIGMAP = 'kube-root-ca.crt';
const tokenDir = posix.normalize(TOKEN_MOUNT_PATH).replace(/\/+$/, '');

const isStringMap = (v: unknown): v is Record<string, string> => isRecord(v) && Object.values(v).every(isString);
const isNamedList = (v: unknown, also: (item: Record<string, unknown>) => boolean = () => true): boolean =>
  Array.isArray(v) && v.every((item) => isRecord(item) && isString(item.name) && also(item));

function isContainer(c: Record<string, unknown>): boolean {
  return (c.env === undefined || isNamedList(c.env)) && (c.volumeMounts === undefined || isNamedList(c.volumeMounts, (m) => isString(m.mountPath)));
}

/** Checks the shape of the fields this module reads, so a malformed object is refused rather than mis-patched. */
export function parsePod(raw: unknown): Parsed<Pod> {
  if (!isRecord(raw)) return { ok: false, error: 'the request carries no Pod' };
  const metadata = raw.metadata;
  if (metadata !== undefined && !isRecord(metadata)) return { ok: false, error: 'pod metadata must be an object' };
  if (metadata && ((metadata.labels !== undefined && !isStringMap(metadata.labels)) || (metadata.annotations !== undefined && !isStringMap(metadata.annotations))))
    return { ok: false, error: 'pod labels and annotations must map strings to strings' };
  const spec = raw.spec;
  if (!isRecord(spec)) return { ok: false, error: 'pod spec is required' };
  if (!isNamedList(spec.containers, isContainer) || (spec.initContainers !== undefined && !isNamedList(spec.initContainers, isContainer)))
    return { ok: false, error: 'pod containers must be a list of named containers' };
  if (spec.volumes !== undefined && !isNamedList(spec.volumes)) return { ok: false, error: 'pod volumes must be a list of named volumes' };
  for (const field of ['serviceAccountName', 'serviceAccount'] as const)
    if (spec[field] !== undefined && !isString(spec[field])) return { ok: false, error: `pod spec.${field} must be a string` };
  return { ok: true, value: raw as Pod };
}

/**
 * One `serviceAccountToken` source per audience, because a source carries exactly one: the first
 * audience is `token` (what TASKGRANT_TOKEN_FILE names), the i-th further one `token-<i>`.
 * An empty audience means the API server's own, expressed by omitting the field. Beside them,
 * `ca.crt`: the cluster CA (the ConfigMap every namespace gets), so the agent can verify the API
 * server without the default token volume, which a task pod does not get.
 */
export function tokenSources(grant: TokenGrant): Record<string, unknown>[] {
  const audiences = grant.audiences.length > 0 ? [...new Set(grant.audiences)] : [''];
  return [
    ...audiences.map((audience, i) => ({
      serviceAccountToken: {
        path: i === 0 ? TOKEN_FILE : `${TOKEN_FILE}-${i}`,
        expirationSeconds: grant.expirationSeconds,
        ...(audience !== '' ? { audience } : {}),
      },
    })),
    { configMap: { name: CLUSTER_CA_CONFIGMAP, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
  ];
}

// The default token would let the pod act as the namespace's default ServiceAccount besides the
// task's. Matched by name for mounts too, whether or not the volume is still listed.
const isApiAccess = (name: string) => name.startsWith(API_ACCESS_VOLUME_PREFIX);

function isUnderTokenDir(mountPath: string): boolean {
  const p = posix.normalize(mountPath).replace(/\/+$/, '');
  return p === tokenDir || p.startsWith(`${tokenDir}/`);
}

/**
 * The patch that turns `pod` into a task pod. Applying it to its own output yields the same
 * pod again, so a reinvoked webhook (reinvocationPolicy: IfNeeded) converges.
 */
/** `slot`: the id of the maxPods claim the pod holds, stamped so the count can match the two. */
export function mutatePod(pod: Pod, grant: TokenGrant, slot?: string): Patch {
  const spec = pod.spec;
  const stamps: Record<string, string> = { [ANNOTATION_POD_TASK_UID]: grant.taskUid, ...(slot !== undefined ? { [ANNOTATION_POD_SLOT]: slot } : {}) };
  const annotations = pod.metadata?.annotations;
  const volumes = spec.volumes ?? [];
  const tokenVolume = { name: TOKEN_VOLUME, projected: { sources: tokenSources(grant) } };
  const tokenMount = { name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true };
  const tokenEnv = { name: TOKEN_FILE_ENV, value: `${TOKEN_MOUNT_PATH}${TOKEN_FILE}` };

  const patch: Patch = [
    ...(pod.metadata === undefined
      ? [add(['metadata'], { annotations: stamps })]
      : annotations === undefined
        ? [add(['metadata', 'annotations'], stamps)]
        : Object.entries(stamps).map(([key, value]) => setMapEntry(['metadata', 'annotations'], annotations, key, value))),
    add(['spec', 'serviceAccountName'], grant.serviceAccount),
    ...(spec.serviceAccount !== undefined ? [add(['spec', 'serviceAccount'], grant.serviceAccount)] : []),
    add(['spec', 'automountServiceAccountToken'], false),
  ];

  // The volume name and token directory are reserved: a pod-supplied volume of that name is
  // replaced, and mounts at or under the directory are dropped so nothing can shadow the token.
  const firstTokenVolume = volumes.findIndex((v) => v.name === TOKEN_VOLUME);
  patch.push(
    ...editArray<Volume>(['spec', 'volumes'], spec.volumes, {
      edit: (v, i): ItemEdit =>
        isApiAccess(v.name) ? { type: 'remove' }
          : v.name !== TOKEN_VOLUME ? { type: 'keep' }
            : i === firstTokenVolume ? { type: 'replace', value: tokenVolume } : { type: 'remove' },
      append: firstTokenVolume < 0 ? [tokenVolume] : [],
    }),
  );

  for (const list of ['initContainers', 'containers'] as const) {
    (spec[list] ?? []).forEach((container, c) => {
      patch.push(
        ...editArray<VolumeMount>(['spec', list, c, 'volumeMounts'], container.volumeMounts, {
          edit: (m): ItemEdit => (isApiAccess(m.name) || m.name === TOKEN_VOLUME || isUnderTokenDir(m.mountPath) ? { type: 'remove' } : { type: 'keep' }),
          append: [tokenMount],
        }),
      );
      const firstEnv = (container.env ?? []).findIndex((e) => e.name === TOKEN_FILE_ENV);
      patch.push(
        ...editArray<EnvVar>(['spec', list, c, 'env'], container.env, {
          edit: (e, i): ItemEdit => (e.name !== TOKEN_FILE_ENV ? { type: 'keep' } : i === firstEnv ? { type: 'replace', value: tokenEnv } : { type: 'remove' }),
          // First, so the pod's own env entries can reference $(TASKGRANT_TOKEN_FILE):
          // Kubernetes expands only variables defined earlier in the list.
          prepend: firstEnv < 0 ? [tokenEnv] : [],
        }),
      );
    });
  }
  return patch;
}

export interface PodDeps {
  tasks: TaskLookup;
  slots: PodSlots;
  serviceAccounts: ServiceAccountLookup;
  now: () => Date;
}

type TaskCheck = { type: 'ok'; task: AgentTask; grant: TokenGrant } | { type: 'refused'; message: string };

function checkTaskForPod(task: AgentTask | undefined, where: string, now: Date): TaskCheck {
  const refused = (message: string): TaskCheck => ({ type: 'refused', message });
  if (!task) return refused(`task ${where} not found`);
  const phase = task.status?.phase ?? 'Pending';
  if (!LIVE_PHASES.includes(phase)) return refused(`task ${where} is ${phase}, not ${LIVE_PHASES.join(' or ')}`);
  const g = task.status?.grant;
  if (!g?.serviceAccount || !g.expiresAt) return refused(`task ${where} has no grant yet`);
  const expiresAt = Date.parse(g.expiresAt);
  if (Number.isNaN(expiresAt)) return refused(`task ${where} has an unreadable grant expiry ${g.expiresAt}`);
  if (expiresAt <= now.getTime()) return refused(`task ${where} expired at ${g.expiresAt}`);
  if (!task.metadata.uid) return refused(`task ${where} has no uid`);
  const expirationSeconds = task.spec.token?.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS;
  // The CRD already refuses these; checked again because 3607 s would quietly become a year-long token.
  if (!Number.isInteger(expirationSeconds) || expirationSeconds < TOKEN_MIN_EXPIRATION_SECONDS || expirationSeconds > MAX_TOKEN_EXPIRATION_SECONDS || expirationSeconds === TOKEN_FORBIDDEN_EXPIRATION_SECONDS)
    return refused(
      `task ${where} asks for token expirationSeconds ${expirationSeconds}; it must be an integer from ${TOKEN_MIN_EXPIRATION_SECONDS} to 2^32 and not ${TOKEN_FORBIDDEN_EXPIRATION_SECONDS}`,
    );
  return {
    type: 'ok',
    task,
    grant: { serviceAccount: g.serviceAccount, taskUid: task.metadata.uid, expirationSeconds, audiences: task.spec.token?.audiences ?? [] },
  };
}

/**
 * Volumes that project a ServiceAccount token, besides taskgrant's own (which /mutate/pods
 * rewrites) and the defaulted API-access volume (which it removes). Through one of these the
 * kubelet would mint the task identity's tokens with any audience and lifetime the pod chose.
 */
export function podSuppliedTokenVolumes(spec: PodSpec): string[] {
  return (spec.volumes ?? [])
    .filter((v) => v.name !== TOKEN_VOLUME && !isApiAccess(v.name))
    .filter((v) => {
      const sources = isRecord(v.projected) && Array.isArray(v.projected.sources) ? v.projected.sources : [];
      return sources.some((source) => isRecord(source) && source.serviceAccountToken !== undefined);
    })
    .map((v) => v.name);
}

function refuseSuppliedTokens(spec: PodSpec, who: string): string | undefined {
  const supplied = podSuppliedTokenVolumes(spec);
  if (supplied.length === 0) return undefined;
  return `${who} projects its own ServiceAccount token (volume ${supplied.join(', ')}): a task pod gets only the token taskgrant mounts, with the task's audience and lifetime`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `/mutate/pods` (CREATE): admit a labelled pod only onto a live grant, and give it the grant's identity. */
export async function mutateTaskPod(request: AdmissionRequest, deps: PodDeps): Promise<MutationVerdict> {
  // pods/binding and pods/eviction are CREATEs of other kinds on subresources: not pod creations.
  if (request.operation !== 'CREATE' || request.subResource) return allowPatch([]);
  const parsed = parsePod(request.object);
  if (!parsed.ok) return deny(parsed.error);
  const pod = parsed.value;
  const taskName = pod.metadata?.labels?.[LABEL_TASK];
  if (taskName === undefined) return allowPatch([]);
  if (taskName === '') return deny(`label ${LABEL_TASK} is empty: it must name an AgentTask in the pod's namespace`);
  const namespace = request.namespace || pod.metadata?.namespace;
  if (!namespace) return deny('a task pod must be namespaced');
  const where = `${namespace}/${taskName}`;
  const now = deps.now();

  const check = checkTaskForPod(deps.tasks.get(namespace, taskName), where, now);
  switch (check.type) {
    case 'refused':
      return deny(check.message);
    case 'ok':
      break;
    default: {
      const never: never = check;
      return deny(`unexpected task check ${JSON.stringify(never)}`);
    }
  }
  const { task, grant } = check;
  const supplied = refuseSuppliedTokens(pod.spec, `pod of task ${where}`);
  if (supplied) return deny(supplied);
  for (const field of ['serviceAccountName', 'serviceAccount'] as const) {
    const named = pod.spec[field];
    // "default" is what the ServiceAccount admission plugin fills in for an unset field.
    if (named !== undefined && named !== '' && named !== DEFAULT_SERVICE_ACCOUNT && named !== grant.serviceAccount)
      return deny(`pod sets spec.${field} to ${named}; a pod of task ${where} runs as the task's ServiceAccount ${grant.serviceAccount}, so leave it unset`);
  }
  // At mutating admission a generateName pod has no name yet: it is counted, never matched as a retry.
  const podName = pod.metadata?.name || request.name || undefined;
  // The API server would refuse it only after admission, by when it would hold a maxPods slot.
  if (!podName && !pod.metadata?.generateName) return deny('pod needs metadata.name or metadata.generateName');
  const maxPods = task.spec.maxPods ?? 1;
  // A dry run creates nothing, so it must not hold a slot (nor is it told one is free).
  if (!request.dryRun) {
    const slot = await deps.slots.claim({ namespace, taskName, taskUid: grant.taskUid, agent: task.spec.agent, maxPods, podName, admission: request.uid, now: now.getTime() });
    switch (slot.type) {
      case 'claimed':
        break;
      case 'full':
        return deny(`task ${where} already has ${plural(slot.held, 'pod')} (maxPods ${maxPods})`);
      case 'refused':
        return deny(`no pod slot of task ${where} could be held: ${slot.message}`);
      default: {
        const never: never = slot;
        return deny(`unexpected slot verdict ${JSON.stringify(never)}`);
      }
    }
  }
  return allowPatch(mutatePod(pod, grant, request.dryRun ? undefined : (podName ?? request.uid)));
}

function serviceAccountOf(spec: PodSpec): string {
  return spec.serviceAccountName || spec.serviceAccount || DEFAULT_SERVICE_ACCOUNT;
}

function marksOf(object: unknown): { label: string | undefined; annotation: string | undefined } {
  const metadata = isRecord(object) && isRecord(object.metadata) ? object.metadata : {};
  const get = (map: unknown, key: string) => (isRecord(map) && isString(map[key]) ? map[key] : undefined);
  return { label: get(metadata.labels, LABEL_TASK), annotation: get(metadata.annotations, ANNOTATION_POD_TASK_UID) };
}

function guardCreate(request: AdmissionRequest, deps: PodDeps): ValidationVerdict {
  if (request.subResource) return allow();
  const parsed = parsePod(request.object);
  if (!parsed.ok) return deny(parsed.error);
  const pod = parsed.value;
  const namespace = request.namespace || pod.metadata?.namespace;
  if (!namespace) return deny('a pod must be namespaced');
  const serviceAccount = serviceAccountOf(pod.spec);
  const { label, annotation } = marksOf(pod);

  if (deps.serviceAccounts.isManaged(namespace, serviceAccount) || isTaskServiceAccountName(serviceAccount)) {
    if (label === undefined)
      return deny(`ServiceAccount ${serviceAccount} is a taskgrant task identity; only pods labelled ${LABEL_TASK} with its task may use it`);
    const owner = deps.serviceAccounts.taskOf(namespace, serviceAccount);
    if (owner !== undefined && owner !== label) return deny(`ServiceAccount ${serviceAccount} belongs to task ${namespace}/${owner}, not ${namespace}/${label}`);
    // The ServiceAccount cache may lag the task's status; the task naming it as its grant is equally authoritative.
    if (owner === undefined && deps.tasks.get(namespace, label)?.status?.grant?.serviceAccount !== serviceAccount)
      return deny(`ServiceAccount ${serviceAccount} cannot be confirmed as the grant of task ${namespace}/${label}`);
    const supplied = refuseSuppliedTokens(pod.spec, `pod running as ${serviceAccount}`);
    if (supplied) return deny(supplied);
  }
  if (label !== undefined) {
    // Every labelled pod must have been through /mutate/pods; if that webhook is missing or
    // mis-scoped, a forged task-uid annotation would otherwise feed the task's lifecycle.
    const task = deps.tasks.get(namespace, label);
    if (!task) return deny(`task ${namespace}/${label} not found`);
    const grantAccount = task.status?.grant?.serviceAccount;
    if (!task.metadata.uid || annotation !== task.metadata.uid || !grantAccount || serviceAccount !== grantAccount)
      return deny(`pod labelled for task ${namespace}/${label} was not admitted by the taskgrant pod mutating webhook (annotation ${ANNOTATION_POD_TASK_UID} or ServiceAccount do not match the task's grant)`);
  }
  return allow();
}

function guardUpdate(request: AdmissionRequest): ValidationVerdict {
  const before = marksOf(request.oldObject);
  const after = marksOf(request.object);
  const changes: [string, string | undefined, string | undefined][] = [
    [`label ${LABEL_TASK}`, before.label, after.label],
    [`annotation ${ANNOTATION_POD_TASK_UID}`, before.annotation, after.annotation],
  ];
  for (const [what, was, is] of changes) {
    if (was === is) continue;
    // Adding is refused as well: the controller reads these marks to follow a task's pods, so
    // they are set once, at creation, by the mutating webhook.
    const verb = was === undefined ? 'added to' : is === undefined ? 'removed from' : 'changed on';
    return deny(`${what} cannot be ${verb} an existing pod`);
  }
  return allow();
}

/**
 * `/validate/pods` (CREATE, UPDATE): the identity guard. On UPDATE only the marks are compared:
 * serviceAccountName is immutable on a pod, so one that passed at CREATE keeps passing while its
 * marks stand, and re-checking ownership would wedge finalizer removal once the task is gone.
 */
export function guardPod(request: AdmissionRequest, deps: PodDeps): ValidationVerdict {
  switch (request.operation) {
    case 'CREATE':
      return guardCreate(request, deps);
    case 'UPDATE':
      return guardUpdate(request);
    case 'DELETE':
    case 'CONNECT':
      return allow();
    default: {
      const never: never = request.operation;
      return deny(`unexpected operation ${String(never)}`);
    }
  }
}
