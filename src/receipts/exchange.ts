// POST /v1/token: RFC 8693 token exchange. A task pod presents its projected ServiceAccount token
// and receives a receipt: an ES256 JWT naming its task's intent, for a backend outside Kubernetes.
//
// The subject token is only ever trusted through a TokenReview, and then only when everything
// agrees: the reviewed ServiceAccount is a live task's grant, the token is bound to a pod, and
// that pod is one of the task's pods. Any doubt is a refusal.
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { ANNOTATION_POD_TASK_UID, LABEL_TASK, serviceAccountOf, type AgentTask } from '../api/index.js';
import { POD_NAME_EXTRA } from '../api/index.js';
import { subjectOf, taskClaims, taskLiveness, type ReceiptClaims } from './claims.js';
import { MAX_RECEIPT_LIFETIME_SECONDS, RECEIPT_ALG } from './keys.js';
import type { ReceiptsDeps, TokenReviewOutcome } from './ports.js';

export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';
const MAX_AUDIENCE_LENGTH = 253;
export const DEFAULT_REVIEW_TIMEOUT_MS = 5_000;

/** RFC 6749 §5.2 error codes this endpoint uses. */
export type OAuthErrorCode = 'invalid_request' | 'invalid_grant' | 'unsupported_grant_type' | 'invalid_target';

export interface ExchangeRequest {
  subjectToken: string;
  audience: string;
}

export type ParsedExchange = { ok: true; value: ExchangeRequest } | { ok: false; error: OAuthErrorCode; description: string };

export interface TokenResponse {
  access_token: string;
  issued_token_type: typeof JWT_TOKEN_TYPE;
  token_type: 'Bearer';
  expires_in: number;
}

export type ExchangeOutcome =
  | { type: 'issued'; response: TokenResponse; claims: ReceiptClaims; kid: string }
  | { type: 'refused'; error: OAuthErrorCode; description: string; about: Record<string, unknown> }
  | { type: 'unavailable'; description: string; about: Record<string, unknown> };

type Param = { type: 'absent' } | { type: 'one'; value: string } | { type: 'repeated' };

function param(body: Record<string, unknown>, name: string): Param {
  if (!Object.hasOwn(body, name)) return { type: 'absent' };
  const value = body[name];
  if (typeof value === 'string') return value === '' ? { type: 'absent' } : { type: 'one', value };
  return { type: 'repeated' };
}

const refuse = (error: OAuthErrorCode, description: string): ParsedExchange => ({ ok: false, error, description });

/** Checks the form parameters (body as the urlencoded parser left it; undefined for other content types). */
export function parseExchangeRequest(body: unknown): ParsedExchange {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length === 0)
    return refuse('invalid_request', 'the request must be a form (Content-Type: application/x-www-form-urlencoded) with grant_type, subject_token, subject_token_type and audience');
  const form = body as Record<string, unknown>;
  // RFC 6749 §3.2: parameters must not repeat. `audience` may in RFC 8693, but one receipt serves one backend.
  for (const name of ['grant_type', 'subject_token', 'subject_token_type', 'requested_token_type'])
    if (param(form, name).type === 'repeated') return refuse('invalid_request', `${name} must be given once`);

  const grantType = param(form, 'grant_type');
  if (grantType.type !== 'one') return refuse('invalid_request', 'grant_type is required');
  if (grantType.value !== TOKEN_EXCHANGE_GRANT_TYPE) return refuse('unsupported_grant_type', `only grant_type ${TOKEN_EXCHANGE_GRANT_TYPE} is supported`);

  const subjectToken = param(form, 'subject_token');
  if (subjectToken.type !== 'one') return refuse('invalid_request', 'subject_token is required: the task pod\'s projected ServiceAccount token');
  const subjectType = param(form, 'subject_token_type');
  if (subjectType.type !== 'one' || subjectType.value !== JWT_TOKEN_TYPE) return refuse('invalid_request', `subject_token_type must be ${JWT_TOKEN_TYPE}`);
  if (param(form, 'actor_token').type !== 'absent' || param(form, 'actor_token_type').type !== 'absent')
    return refuse('invalid_request', 'delegation (actor_token) is not supported: the receipt always names the task itself');
  const requested = param(form, 'requested_token_type');
  if (requested.type === 'one' && requested.value !== JWT_TOKEN_TYPE) return refuse('invalid_request', `requested_token_type must be ${JWT_TOKEN_TYPE} (or omitted)`);
  if (param(form, 'resource').type !== 'absent') return refuse('invalid_target', 'name the backend with audience; resource is not supported');

  const audience = param(form, 'audience');
  switch (audience.type) {
    case 'absent':
      return refuse('invalid_request', 'audience is required: the backend the receipt is for');
    case 'repeated':
      return refuse('invalid_target', 'exactly one audience per receipt');
    case 'one':
      // Printable ASCII without spaces: a URI or a plain name, never something that could smuggle a separator.
      if (audience.value.length > MAX_AUDIENCE_LENGTH || !/^[\x21-\x7e]+$/.test(audience.value))
        return refuse('invalid_target', `audience must be 1..${MAX_AUDIENCE_LENGTH} printable characters without spaces`);
      return { ok: true, value: { subjectToken: subjectToken.value, audience: audience.value } };
    default: {
      const never: never = audience;
      return refuse('invalid_request', `unexpected audience ${JSON.stringify(never)}`);
    }
  }
}


async function reviewWithin(deps: ReceiptsDeps, token: string): Promise<TokenReviewOutcome | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), deps.reviewTimeoutMs ?? DEFAULT_REVIEW_TIMEOUT_MS);
  });
  // A reviewer that throws despite its contract is a failed review, never an exception that escapes.
  const review = deps.tokenReviewer.reviewToken(token).catch((err: unknown): TokenReviewOutcome => ({ type: 'unauthenticated', error: `token review failed: ${err instanceof Error ? err.message : String(err)}` }));
  try {
    return await Promise.race([review, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Decides the exchange and, when every check passes, signs the receipt. */
export async function exchangeToken(request: ExchangeRequest, deps: ReceiptsDeps): Promise<ExchangeOutcome> {
  const about: Record<string, unknown> = { audience: request.audience };
  const refused = (description: string, extra: Record<string, unknown> = {}): ExchangeOutcome => ({ type: 'refused', error: 'invalid_grant', description, about: { ...about, ...extra } });

  const review = await reviewWithin(deps, request.subjectToken);
  if (review === 'timeout') return { type: 'unavailable', description: 'the token review did not answer in time; try again', about };
  if (review.type !== 'authenticated') return refused('subject_token is not an authenticated Kubernetes token', { reviewError: review.error });
  const identity = review.identity;
  about.username = identity.username;

  const account = serviceAccountOf(identity.username);
  if (!account) return refused(`${identity.username} is not a ServiceAccount; only a task pod's token can be exchanged`);
  about.namespace = account.namespace;
  const task = deps.taskByServiceAccount.find(account.namespace, account.name);
  // The task naming this account as its grant is checked here too, not left to the lookup.
  if (!task || task.metadata.namespace !== account.namespace || task.status?.grant?.serviceAccount !== account.name)
    return refused(`ServiceAccount ${account.namespace}/${account.name} is not the grant of a taskgrant task`);
  about.task = task.metadata.name;
  about.taskUid = task.metadata.uid;

  const podNames = identity.extra[POD_NAME_EXTRA] ?? [];
  const podName = podNames.length === 1 ? podNames[0] : undefined;
  if (!podName) return refused('subject_token is not bound to a pod: exchange the token projected into the task pod, not one minted for the ServiceAccount alone');
  about.pod = podName;
  const podCheck = checkTaskPod(deps, task, account.name, podName, identity.extra[POD_UID_EXTRA]?.[0]);
  if (podCheck !== undefined) return refused(podCheck);

  const now = (deps.now ?? (() => new Date()))().getTime();
  const liveness = taskLiveness(task, task.metadata.uid, now);
  if (!liveness.live) return refused(liveness.reason);

  const key = deps.keys.signingKey(now);
  if (!key) return { type: 'unavailable', description: 'no receipt signing key is loaded yet; try again', about };
  const iat = Math.floor(now / 1000);
  const exp = Math.min(iat + MAX_RECEIPT_LIFETIME_SECONDS, Math.floor(liveness.expiresAtMs / 1000));
  if (exp <= iat) return refused(`task ${task.metadata.namespace}/${task.metadata.name} expires within a second`);

  const claims: ReceiptClaims = { iss: deps.issuer, sub: subjectOf(task), aud: request.audience, iat, exp, jti: randomUUID(), ...taskClaims(task, podName) };
  const accessToken = await new SignJWT({ ...claims }).setProtectedHeader({ alg: RECEIPT_ALG, kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
  return {
    type: 'issued',
    kid: key.kid,
    claims,
    response: { access_token: accessToken, issued_token_type: JWT_TOKEN_TYPE, token_type: 'Bearer', expires_in: exp - iat },
  };
}

/** Why `podName` is not a pod of `task` running as its ServiceAccount, or undefined when it is. */
function checkTaskPod(deps: ReceiptsDeps, task: AgentTask, serviceAccount: string, podName: string, tokenPodUid: string | undefined): string | undefined {
  const where = `pod ${task.metadata.namespace}/${podName}`;
  const pod = deps.pods.get(task.metadata.namespace, podName);
  if (!pod) return `${where} is not a task pod`;
  if (pod.labels[LABEL_TASK] !== task.metadata.name || pod.annotations[ANNOTATION_POD_TASK_UID] !== task.metadata.uid)
    return `${where} is not a pod of task ${task.metadata.namespace}/${task.metadata.name}`;
  if (pod.serviceAccountName !== serviceAccount) return `${where} does not run as ServiceAccount ${serviceAccount}`;
  // The API server checks the bound pod still exists; this catches a same-named replacement in our cache.
  if (tokenPodUid !== undefined && pod.uid !== undefined && tokenPodUid !== pod.uid) return `${where} is not the pod the token was bound to`;
  if (pod.terminating || pod.phase === 'Succeeded' || pod.phase === 'Failed') return `${where} has finished`;
  return undefined;
}
