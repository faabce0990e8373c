// The SubjectAccessReview (authorization.k8s.io/v1) the API server sends its authorization
// webhooks, read into the few facts taskgrant decides on, and the answer it sends back. The
// answer type has no way to say "allowed": taskgrant's authorizer can only subtract from RBAC.
import { isRecord, isString, type Parsed } from '../api/index.js';

export const SUBJECT_ACCESS_REVIEW_API_VERSION = 'authorization.k8s.io/v1';

/** One API request as the API server describes it. */
export interface AccessRequest {
  user: string;
  /** `extra` of the authenticated user: a pod-bound token carries its pod's name and uid here. */
  extra: Record<string, string[]>;
  resource?: { verb: string; group: string; resource: string; subresource: string; name: string; namespace: string };
  nonResource?: { verb: string; path: string };
}

/** What taskgrant answers: refuse, or leave the request to the authorizers after it (RBAC). */
export type AuthzVerdict = { type: 'deny'; reason: string } | { type: 'no-opinion' };

const text = (value: unknown): string => (isString(value) ? value : '');

export function parseSubjectAccessReview(body: unknown): Parsed<AccessRequest> {
  if (!isRecord(body)) return { ok: false, error: 'the body is not a JSON object' };
  if (body.kind !== 'SubjectAccessReview' || body.apiVersion !== SUBJECT_ACCESS_REVIEW_API_VERSION) {
    return { ok: false, error: `expected a ${SUBJECT_ACCESS_REVIEW_API_VERSION} SubjectAccessReview` };
  }
  const spec = body.spec;
  if (!isRecord(spec) || !isString(spec.user)) return { ok: false, error: 'spec.user is missing' };
  const extra: Record<string, string[]> = {};
  if (isRecord(spec.extra)) {
    for (const [key, values] of Object.entries(spec.extra)) if (Array.isArray(values)) extra[key] = values.filter(isString);
  }
  const request: AccessRequest = { user: spec.user, extra };
  if (isRecord(spec.resourceAttributes)) {
    const r = spec.resourceAttributes;
    request.resource = { verb: text(r.verb), group: text(r.group), resource: text(r.resource), subresource: text(r.subresource), name: text(r.name), namespace: text(r.namespace) };
  } else if (isRecord(spec.nonResourceAttributes)) {
    request.nonResource = { verb: text(spec.nonResourceAttributes.verb), path: text(spec.nonResourceAttributes.path) };
  } else {
    return { ok: false, error: 'spec names neither resourceAttributes nor nonResourceAttributes' };
  }
  return { ok: true, value: request };
}

/**
 * The review sent back. `allowed` is always false: a deny ends the request at the API server, no
 * opinion hands it to RBAC, which must still allow it.
 */
export function reviewAnswer(verdict: AuthzVerdict): { apiVersion: string; kind: string; status: { allowed: false; denied?: true; reason?: string } } {
  const status = verdict.type === 'deny' ? { allowed: false as const, denied: true as const, reason: `taskgrant: ${verdict.reason}` } : { allowed: false as const };
  return { apiVersion: SUBJECT_ACCESS_REVIEW_API_VERSION, kind: 'SubjectAccessReview', status };
}
