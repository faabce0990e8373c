// The receipt endpoints as an express Router, mounted by createApp before its own JSON parser so
// each route parses its body with its own type and size limit. Every answer is final and
// fail-closed: a parse error, a missing key or a slow TokenReview never yields a receipt or an
// "allowed". Tokens never reach a log line or a metric label.
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { TOKEN_EXCHANGE_GRANT_TYPE, exchangeToken, parseExchangeRequest, type ExchangeOutcome, type OAuthErrorCode } from './exchange.js';
import { RECEIPT_ALG } from './keys.js';
import type { ReceiptsDeps } from './ports.js';
import { parseVerifyRequest, verifyReceipt, type VerifyOutcome } from './verify.js';

export const RECEIPT_PATHS = {
  token: '/v1/token',
  verify: '/v1/verify',
  jwks: '/.well-known/jwks.json',
  discovery: '/.well-known/openid-configuration',
} as const;
type Endpoint = keyof typeof RECEIPT_PATHS;

/** A pod token is ~1-2 KiB; the rest of the form is a few short fields. */
export const TOKEN_BODY_LIMIT_BYTES = 16 * 1024;
/** A receipt carries at most MAX_TUPLES (1024) permission tuples: a few hundred KiB at worst. */
export const VERIFY_BODY_LIMIT_BYTES = 512 * 1024;
/** Verifiers refetch on an unknown kid anyway; kept well under the key lead time. */
const JWKS_MAX_AGE_SECONDS = 60;

/** `https://<service>.<namespace>.svc`: the in-cluster URL of the webhook Service, the default issuer. */
export function defaultIssuer(service: string, namespace: string): string {
  return `https://${service}.${namespace}.svc`;
}

const FORM = 'application/x-www-form-urlencoded';

export function createReceiptsRouter(deps: ReceiptsDeps): Router {
  const { metrics, logger } = deps;
  const issuer = deps.issuer.replace(/\/+$/, '');
  const now = deps.now ?? (() => new Date());
  const count = (endpoint: Endpoint, result: string) => metrics.receiptRequests.inc({ endpoint, result });
  const noStore = (res: Response) => res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
  const oauthError = (res: Response, status: number, error: OAuthErrorCode | 'temporarily_unavailable', description: string) => {
    count('token', error);
    noStore(res).status(status).json({ error, error_description: description });
  };

  const router = Router();

  router.post(RECEIPT_PATHS.token, express.urlencoded({ extended: false, limit: TOKEN_BODY_LIMIT_BYTES, parameterLimit: 16, type: FORM }), async (req: Request, res: Response) => {
    if (!req.is(FORM)) return oauthError(res, 400, 'invalid_request', `Content-Type must be ${FORM}`);
    const parsed = parseExchangeRequest(req.body);
    if (!parsed.ok) {
      logger.info({ error: parsed.error, reason: parsed.description }, 'token exchange refused');
      return oauthError(res, 400, parsed.error, parsed.description);
    }
    let outcome: ExchangeOutcome;
    try {
      outcome = await exchangeToken(parsed.value, deps);
    } catch (err) {
      logger.error({ err }, 'token exchange failed; refusing');
      return oauthError(res, 503, 'temporarily_unavailable', 'taskgrant could not issue a receipt; try again');
    }
    switch (outcome.type) {
      case 'issued': {
        const c = outcome.claims;
        metrics.receiptsIssued.inc();
        count('token', 'issued');
        logger.info(
          { jti: c.jti, kid: outcome.kid, taskUid: c.task_uid, namespace: c.task_namespace, task: c.task_name, pod: c.pod, audience: c.aud, expiresAt: new Date(c.exp * 1000).toISOString() },
          'task receipt issued',
        );
        noStore(res).status(200).json(outcome.response);
        return;
      }
      case 'refused':
        logger.info({ ...outcome.about, error: outcome.error, reason: outcome.description }, 'token exchange refused');
        return oauthError(res, 400, outcome.error, outcome.description);
      case 'unavailable':
        logger.warn({ ...outcome.about, reason: outcome.description }, 'token exchange unavailable');
        return oauthError(res, 503, 'temporarily_unavailable', outcome.description);
      default: {
        const never: never = outcome;
        throw new Error(`unknown exchange outcome ${JSON.stringify(never)}`);
      }
    }
  });

  router.post(RECEIPT_PATHS.verify, express.json({ limit: VERIFY_BODY_LIMIT_BYTES, strict: true, type: 'application/json' }), async (req: Request, res: Response) => {
    noStore(res);
    const parsed = parseVerifyRequest(req.is('application/json') ? req.body : undefined);
    if (!parsed.ok) {
      count('verify', 'invalid_request');
      res.status(400).json({ allowed: false, reason: parsed.error });
      return;
    }
    let outcome: VerifyOutcome;
    try {
      outcome = await verifyReceipt(parsed.value, deps);
    } catch (err) {
      logger.error({ err }, 'receipt verification failed; answering not allowed');
      count('verify', 'unavailable');
      res.status(503).json({ allowed: false, reason: 'taskgrant could not check the receipt; try again' });
      return;
    }
    const about = { jti: 'claims' in outcome ? outcome.claims?.jti : undefined, taskUid: 'claims' in outcome ? outcome.claims?.task_uid : undefined, question: parsed.value.question.type };
    switch (outcome.type) {
      case 'allowed':
        count('verify', 'allowed');
        logger.debug({ ...about, reason: outcome.reason }, 'receipt check allowed');
        res.status(200).json({ allowed: true, reason: outcome.reason });
        return;
      case 'denied':
        count('verify', 'denied');
        logger.info({ ...about, reason: outcome.reason }, 'receipt check denied');
        res.status(200).json({ allowed: false, reason: outcome.reason });
        return;
      case 'unavailable':
        count('verify', 'unavailable');
        logger.warn({ reason: outcome.reason }, 'receipt check unavailable');
        res.status(503).json({ allowed: false, reason: outcome.reason });
        return;
      default: {
        const never: never = outcome;
        throw new Error(`unknown verify outcome ${JSON.stringify(never)}`);
      }
    }
  });

  router.get(RECEIPT_PATHS.jwks, (_req: Request, res: Response) => {
    const keys = deps.keys.publishedKeys(now().getTime());
    if (keys.length === 0) {
      count('jwks', 'unavailable');
      res.status(503).set('Cache-Control', 'no-store').json({ message: 'no receipt signing key is loaded yet' });
      return;
    }
    count('jwks', 'served');
    res.status(200).set('Cache-Control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`).json({ keys: keys.map((k) => k.publicJwk) });
  });

  router.get(RECEIPT_PATHS.discovery, (_req: Request, res: Response) => {
    count('discovery', 'served');
    res.status(200).set('Cache-Control', 'public, max-age=300').json({
      issuer,
      jwks_uri: `${issuer}${RECEIPT_PATHS.jwks}`,
      token_endpoint: `${issuer}${RECEIPT_PATHS.token}`,
      grant_types_supported: [TOKEN_EXCHANGE_GRANT_TYPE],
      token_endpoint_auth_methods_supported: ['none'],
      id_token_signing_alg_values_supported: [RECEIPT_ALG],
      // Required by OpenID Connect Discovery §3; the same values kube-apiserver publishes for its tokens.
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      claims_supported: ['iss', 'sub', 'aud', 'iat', 'exp', 'jti', 'task_uid', 'task_name', 'task_namespace', 'agent', 'requester', 'permissions', 'tools', 'objective_sha256', 'pod'],
    });
  });

  // RFC 6749 §3.2: the token endpoint takes POST only.
  for (const path of [RECEIPT_PATHS.token, RECEIPT_PATHS.verify])
    router.all(path, (_req: Request, res: Response) => {
      res.status(405).set('Allow', 'POST').json({ message: `${path} accepts POST only` });
    });

  // Body-parser failures of the routes above (too large, not JSON, too many parameters).
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    const endpoint: Endpoint | undefined = req.path === RECEIPT_PATHS.token ? 'token' : req.path === RECEIPT_PATHS.verify ? 'verify' : undefined;
    if (!endpoint || res.headersSent) return next(err);
    const type = typeof err === 'object' && err !== null && 'type' in err ? String(err.type) : '';
    const [status, message] =
      type === 'entity.too.large' ? [413, `the body exceeds ${endpoint === 'token' ? TOKEN_BODY_LIMIT_BYTES : VERIFY_BODY_LIMIT_BYTES} bytes`]
        : type === 'entity.parse.failed' ? [400, 'the body is not valid JSON']
          : type === 'parameters.too.many' ? [413, 'the form has too many parameters']
            : [400, 'the body could not be read'];
    if (!type.startsWith('entity.') && !type.startsWith('parameters.')) logger.error({ endpoint, err }, 'receipt request failed outside a handler');
    if (endpoint === 'token') return oauthError(res, status, 'invalid_request', message);
    count('verify', 'invalid_request');
    noStore(res).status(status).json({ allowed: false, reason: message });
  });

  return router;
}
