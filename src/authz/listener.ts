// The authorization webhook over HTTPS: POST a SubjectAccessReview, get one back. A plain
// request listener, not express: it has one route, sits on the path of every request a task
// identity makes, and must add as little as possible to it.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { RequestAuthorizer } from './authorizer.js';
import { parseSubjectAccessReview, reviewAnswer, type AuthzVerdict } from './review.js';

export const AUTHORIZE_PATH = '/authorize';
/** A SubjectAccessReview is a few hundred bytes; anything near this is not one. */
const BODY_LIMIT_BYTES = 64 * 1024;

export interface AuthzListenerDeps {
  authorizer: RequestAuthorizer;
  logger: Logger;
  metrics: Metrics;
  /** Answer only callers whose client certificate the server verified (the API server's). */
  requireClientCert: boolean;
}

export function authzListener(deps: AuthzListenerDeps): RequestListener {
  const { authorizer, logger, metrics } = deps;
  const send = (res: ServerResponse, status: number, body: unknown) => {
    const json = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
  };
  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== AUTHORIZE_PATH) return send(res, 404, { message: `POST ${AUTHORIZE_PATH} only` });
    // Before the body is read: a caller that is not the API server learns nothing and burns no budget.
    if (deps.requireClientCert && (req.socket as TLSSocket).authorized !== true) {
      logger.warn({ remote: req.socket.remoteAddress }, 'authorization review without the API server client certificate refused');
      return send(res, 403, { message: 'only the API server may ask: it presents the client certificate its authorization webhook kubeconfig names' });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT_BYTES) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      const stop = metrics.authzSeconds.startTimer();
      let verdict: AuthzVerdict;
      try {
        const parsed = parseSubjectAccessReview(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
        if (!parsed.ok) {
          metrics.authzDecisions.inc({ result: 'error' });
          return send(res, 400, { message: parsed.error });
        }
        verdict = authorizer.review(parsed.value);
      } catch (err) {
        // Our own failure refuses the request (the API server's failurePolicy would too).
        logger.error({ err }, 'authorization review failed; refusing');
        verdict = { type: 'deny', reason: 'taskgrant could not decide this request' };
      }
      stop();
      metrics.authzDecisions.inc({ result: verdict.type === 'deny' ? 'deny' : 'no_opinion' });
      if (verdict.type === 'deny') logger.debug({ reason: verdict.reason }, 'request of a task identity refused');
      send(res, 200, reviewAnswer(verdict));
    });
  };
}
