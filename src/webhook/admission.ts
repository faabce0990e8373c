// AdmissionReview v1 (admission.k8s.io/v1): only the fields taskgrant reads or writes.
// The API server is the only caller; everything else that arrives is refused with a parse error.
import { isRecord, isString, type Parsed, type UserInfo } from '../api/index.js';
import type { Patch } from './jsonpatch.js';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;
export type Operation = (typeof OPERATIONS)[number];

export type { UserInfo };

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  /** Empty at CREATE when the object only has generateName (mutating admission runs before the name is generated). */
  name?: string;
  namespace?: string;
  operation: Operation;
  userInfo: UserInfo;
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
}

export interface AdmissionStatus {
  code: number;
  message: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: AdmissionStatus;
  patchType?: 'JSONPatch';
  /** base64 of the JSON-encoded RFC 6902 patch. */
  patch?: string;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

export { POD_NAME_EXTRA } from '../api/index.js';

const isOptionalString = (v: unknown): v is string | undefined => v === undefined || isString(v);
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

function fail<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

function parseUserInfo(raw: unknown): Parsed<UserInfo> {
  // The API server always sends userInfo; a review without one cannot be attributed, so it is not a review.
  if (!isRecord(raw)) return fail('request.userInfo must be an object');
  if (!isOptionalString(raw.username) || !isOptionalString(raw.uid)) return fail('request.userInfo.username and uid must be strings');
  if (raw.groups !== undefined && !isStringList(raw.groups)) return fail('request.userInfo.groups must be a list of strings');
  if (raw.extra !== undefined && !(isRecord(raw.extra) && Object.values(raw.extra).every(isStringList)))
    return fail('request.userInfo.extra must map strings to lists of strings');
  return {
    ok: true,
    value: {
      ...(raw.username !== undefined ? { username: raw.username } : {}),
      ...(raw.uid !== undefined ? { uid: raw.uid } : {}),
      ...(raw.groups !== undefined ? { groups: raw.groups } : {}),
      ...(raw.extra !== undefined ? { extra: raw.extra as Record<string, string[]> } : {}),
    },
  };
}

function parseGroupVersion<K extends 'kind' | 'resource'>(raw: unknown, key: K, at: string): Parsed<{ group: string; version: string } & Record<K, string>> {
  if (!isRecord(raw) || !isString(raw.group) || !isString(raw.version) || !isString(raw[key])) return fail(`${at} must have string group, version and ${key}`);
  return { ok: true, value: { group: raw.group, version: raw.version, [key]: raw[key] } as { group: string; version: string } & Record<K, string> };
}

/** Checks that a request body is an admission.k8s.io/v1 AdmissionReview carrying a request. */
export function parseAdmissionReview(body: unknown): Parsed<AdmissionRequest> {
  if (!isRecord(body)) return fail('expected a JSON AdmissionReview object');
  // v1beta1 has a different response contract (patchType optional, uid semantics); the webhook
  // configurations list only v1, so anything else is a misconfiguration worth refusing loudly.
  if (body.apiVersion !== ADMISSION_API_VERSION || body.kind !== 'AdmissionReview')
    return fail(`expected apiVersion ${ADMISSION_API_VERSION}, kind AdmissionReview`);
  const req = body.request;
  if (!isRecord(req)) return fail('AdmissionReview.request is required');
  if (!isString(req.uid) || req.uid.length === 0 || req.uid.length > 256) return fail('request.uid must be a non-empty string');
  if (!OPERATIONS.includes(req.operation as Operation)) return fail(`request.operation must be one of ${OPERATIONS.join(', ')}`);
  const kind = parseGroupVersion(req.kind, 'kind', 'request.kind');
  if (!kind.ok) return kind;
  const resource = parseGroupVersion(req.resource, 'resource', 'request.resource');
  if (!resource.ok) return resource;
  if (!isOptionalString(req.subResource) || !isOptionalString(req.name) || !isOptionalString(req.namespace))
    return fail('request.subResource, name and namespace must be strings');
  if (req.dryRun !== undefined && typeof req.dryRun !== 'boolean') return fail('request.dryRun must be a boolean');
  const userInfo = parseUserInfo(req.userInfo);
  if (!userInfo.ok) return userInfo;
  return {
    ok: true,
    value: {
      uid: req.uid,
      kind: kind.value,
      resource: resource.value,
      operation: req.operation as Operation,
      userInfo: userInfo.value,
      ...(req.subResource ? { subResource: req.subResource } : {}),
      ...(req.name !== undefined ? { name: req.name } : {}),
      ...(req.namespace !== undefined ? { namespace: req.namespace } : {}),
      ...(req.object !== undefined && req.object !== null ? { object: req.object } : {}),
      ...(req.oldObject !== undefined && req.oldObject !== null ? { oldObject: req.oldObject } : {}),
      ...(req.dryRun !== undefined ? { dryRun: req.dryRun } : {}),
    },
  };
}

function review(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

/** Allowed; a non-empty patch travels base64-encoded as the API server requires. */
export function allowed(uid: string, patch: Patch = []): AdmissionReviewResponse {
  if (patch.length === 0) return review({ uid, allowed: true });
  return review({ uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch), 'utf8').toString('base64') });
}

/** Refused; the API server shows `message` to the caller after "admission webhook ... denied the request:". */
export function denied(uid: string, message: string, code = 403): AdmissionReviewResponse {
  return review({ uid, allowed: false, status: { code, message } });
}

/** A refusal and the sentence the caller reads. */
export interface Denial {
  type: 'deny';
  message: string;
}

export type ValidationVerdict = { type: 'allow' } | Denial;
export type MutationVerdict = { type: 'allow'; patch: Patch } | Denial;

export const allow = (): ValidationVerdict => ({ type: 'allow' });
export const allowPatch = (patch: Patch): MutationVerdict => ({ type: 'allow', patch });
export const deny = (message: string): Denial => ({ type: 'deny', message });
