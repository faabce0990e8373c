// POST /v1/verify: a backend asks whether a receipt lets its bearer use a tool or touch a
// resource. Unlike checking the JWT locally, this also sees revocation: once the task is revoked,
// expired or gone the answer is "no", even while the receipt's own `exp` lies ahead.
import { createLocalJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { tupleCovered, type PermissionTuple } from '../api/index.js';
import { parseTaskClaims, taskLiveness, type TaskClaims } from './claims.js';
import { RECEIPT_ALG } from './keys.js';
import type { ReceiptsDeps } from './ports.js';

export type VerifyQuestion = { type: 'tool'; tool: string } | { type: 'resource'; tuple: PermissionTuple };

export interface VerifyRequest {
  token: string;
  question: VerifyQuestion;
  /**
   * The asking backend: the receipt must have been issued for it. Required, so that a receipt
   * minted for one backend is never accepted by another that forgot to say who it is.
   */
  audience: string;
}

export type ParsedVerify = { ok: true; value: VerifyRequest } | { ok: false; error: string };

export type VerifyOutcome =
  | { type: 'allowed'; reason: string; claims: TaskClaims & { jti: string } }
  | { type: 'denied'; reason: string; claims?: TaskClaims & { jti: string } }
  | { type: 'unavailable'; reason: string };

const MAX_FIELD_LENGTH = 253;
const isField = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_FIELD_LENGTH;

export function parseVerifyRequest(body: unknown): ParsedVerify {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, error: 'the body must be a JSON object (Content-Type: application/json)' };
  const b = body as Record<string, unknown>;
  if (typeof b.token !== 'string' || b.token.length === 0) return { ok: false, error: 'token is required: the receipt to check' };
  if (!isField(b.audience) || b.audience === '') return { ok: false, error: 'audience is required: the backend asking, which the receipt must have been issued for' };
  const audience = { audience: b.audience };
  const resourceFields = ['verb', 'apiGroup', 'resource', 'namespace', 'name'] as const;
  const asksResource = resourceFields.some((f) => b[f] !== undefined);
  if (b.tool !== undefined) {
    if (asksResource) return { ok: false, error: 'ask about either a tool or a resource (verb, apiGroup, resource, namespace, name), not both' };
    if (!isField(b.tool) || b.tool === '') return { ok: false, error: 'tool must be a non-empty string' };
    return { ok: true, value: { token: b.token, question: { type: 'tool', tool: b.tool }, ...audience } };
  }
  if (!asksResource) return { ok: false, error: 'ask about a tool ("tool") or a resource ("verb", "apiGroup", "resource", "namespace", "name")' };
  for (const f of ['verb', 'resource', 'namespace'] as const)
    if (!isField(b[f]) || b[f] === '') return { ok: false, error: `${f} must be a non-empty string` };
  for (const f of ['apiGroup', 'name'] as const)
    if (b[f] !== undefined && !isField(b[f])) return { ok: false, error: `${f} must be a string ("" for the core group / no name)` };
  const tuple: PermissionTuple = {
    verb: b.verb as string,
    apiGroup: (b.apiGroup as string | undefined) ?? '',
    resource: b.resource as string,
    namespace: b.namespace as string,
    name: (b.name as string | undefined) ?? '',
  };
  return { ok: true, value: { token: b.token, question: { type: 'resource', tuple }, ...audience } };
}

/** Why jose refused a receipt, in words a backend's log can use; never echoes the token. */
function whyInvalid(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'the receipt has expired';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the receipt signature does not verify';
  if (err instanceof errors.JWKSNoMatchingKey) return 'the receipt was not signed by a published taskgrant key';
  if (err instanceof errors.JWTClaimValidationFailed) return `the receipt's ${err.claim} claim is not acceptable (${err.reason})`;
  if (err instanceof errors.JOSEAlgNotAllowed) return `the receipt is not signed with ${RECEIPT_ALG}`;
  return 'the token is not a taskgrant receipt';
}

const describe = (t: PermissionTuple) => `${t.verb} ${t.apiGroup === '' ? '' : `${t.apiGroup}/`}${t.resource}${t.name ? `/${t.name}` : ''} in ${t.namespace}`;

export async function verifyReceipt(request: VerifyRequest, deps: ReceiptsDeps): Promise<VerifyOutcome> {
  const now = (deps.now ?? (() => new Date()))();
  const published = deps.keys.publishedKeys(now.getTime());
  if (published.length === 0) return { type: 'unavailable', reason: 'no receipt signing key is loaded yet; try again' };

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(request.token, createLocalJWKSet({ keys: published.map((k) => ({ ...k.publicJwk })) }), {
      algorithms: [RECEIPT_ALG],
      issuer: deps.issuer,
      audience: request.audience,
      currentDate: now,
      requiredClaims: ['iat', 'exp', 'jti', 'sub', 'aud'],
    }));
  } catch (err) {
    return { type: 'denied', reason: whyInvalid(err) };
  }
  const parsed = parseTaskClaims(payload);
  if (!parsed || typeof payload.jti !== 'string') return { type: 'denied', reason: 'the receipt lacks its task claims' };
  const claims = { ...parsed, jti: payload.jti };

  const task = deps.tasks.get(claims.task_namespace, claims.task_name);
  const liveness = taskLiveness(task, claims.task_uid, now.getTime());
  if (!liveness.live) return { type: 'denied', reason: liveness.reason, claims };

  const question = request.question;
  switch (question.type) {
    case 'tool':
      return claims.tools.includes(question.tool)
        ? { type: 'allowed', reason: `tool ${question.tool} is declared by the task`, claims }
        : { type: 'denied', reason: `tool ${question.tool} is not among the task's declared tools`, claims };
    case 'resource':
      return tupleCovered(question.tuple, claims.permissions)
        ? { type: 'allowed', reason: `${describe(question.tuple)} is within the task's grant`, claims }
        : { type: 'denied', reason: `${describe(question.tuple)} is outside the task's grant`, claims };
    default: {
      const never: never = question;
      return { type: 'denied', reason: `unexpected question ${JSON.stringify(never)}` };
    }
  }
}
