// The admission webhooks as an express app. No listen here: main.ts serves it over TLS with
// serveHttps (server.ts), and tests listen on a loopback port.
//
// Failure modes are deliberate: a body that is not an AdmissionReview gets HTTP 400, which the
// API server treats as a failed call and resolves with the webhook's failurePolicy (Fail); a
// handler that throws or overruns its deadline gets a well-formed refusal, so the caller reads
// why instead of a timeout.
import type { TLSSocket } from 'node:tls';
import express, { type NextFunction, type Request, type Response } from 'express';
import { AGENT_TASK_PLURAL, GROUP, LABEL_TASK, TASK_APPROVAL_PLURAL, type WebhookRouteSpec } from '../api/index.js';
import {
  allowed,
  denied,
  parseAdmissionReview,
  type AdmissionRequest,
  type AdmissionReviewResponse,
  type MutationVerdict,
  type Operation,
  type ValidationVerdict,
} from './admission.js';
import type { WebhookDeps } from './deps.js';
import { guardPod, mutateTaskPod, type PodDeps } from './pods.js';
import { mutateAgentTask, mutateTaskApproval, validateTaskApproval } from './stamp.js';

export const HANDLERS = ['mutate-pods', 'mutate-agenttasks', 'mutate-taskapprovals', 'validate-pods', 'validate-taskapprovals'] as const;
/** Also the `handler` metric label: a fixed set, never derived from the request. */
export type HandlerName = (typeof HANDLERS)[number];

/**
 * How each route is meant to be registered, for whoever writes the webhook configurations.
 * `/validate/pods` has no objectSelector on purpose: the pods it must refuse are exactly those
 * without the task label. The pod routes' namespaceSelector should exclude the operator's own
 * namespace, or a webhook outage would stop the operator's pod from being recreated; the AgentTask
 * and TaskApproval routes need no exclusion and must have none (an unstamped task or approval
 * would carry whatever requester or approver its author wrote).
 */
/** A route as the webhook configurations register it, narrowed to the handlers and operations this app has. */
export interface WebhookRoute extends WebhookRouteSpec {
  handler: HandlerName;
  operations: readonly Operation[];
}

export const WEBHOOK_ROUTES: readonly WebhookRoute[] = [
  // NoneOnDryRun: an admitted pod holds a maxPods slot (a claim in the task's ledger entry), dry runs do not.
  { handler: 'mutate-pods', path: '/mutate/pods', type: 'mutating', apiGroup: '', resource: 'pods', operations: ['CREATE'], sideEffects: 'NoneOnDryRun', objectSelectorLabelExists: LABEL_TASK },
  { handler: 'mutate-agenttasks', path: '/mutate/agenttasks', type: 'mutating', apiGroup: GROUP, resource: AGENT_TASK_PLURAL, operations: ['CREATE'], sideEffects: 'None' },
  { handler: 'mutate-taskapprovals', path: '/mutate/taskapprovals', type: 'mutating', apiGroup: GROUP, resource: TASK_APPROVAL_PLURAL, operations: ['CREATE'], sideEffects: 'None' },
  // Only labelled pods (for UPDATE: labelled before or after) reach the webhook, so an outage never
  // blocks unrelated pods; an unlabelled pod borrowing a task ServiceAccount is refused inside the
  // API server by the identity-guard ValidatingAdmissionPolicy, which holds even with us down.
  // UPDATE only: at CREATE the mutating webhook has just decided the pod (task live, unexpired,
  // maxPods, the task's ServiceAccount) and the identity guard re-checks label against
  // ServiceAccount inside the API server, so a second call would only add a round trip to every
  // task pod (make bench: admission.e2e_*). Updates are where labels could be changed afterwards.
  { handler: 'validate-pods', path: '/validate/pods', type: 'validating', apiGroup: '', resource: 'pods', operations: ['UPDATE'], sideEffects: 'None', objectSelectorLabelExists: LABEL_TASK },
  { handler: 'validate-taskapprovals', path: '/validate/taskapprovals', type: 'validating', apiGroup: GROUP, resource: TASK_APPROVAL_PLURAL, operations: ['CREATE'], sideEffects: 'None' },
];

export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
export const DEFAULT_HANDLER_TIMEOUT_MS = 5_000;

type Verdict = MutationVerdict | ValidationVerdict;
type Run = (request: AdmissionRequest) => Verdict | Promise<Verdict>;
type Outcome = { type: 'verdict'; verdict: Verdict } | { type: 'error'; error: unknown } | { type: 'timeout' };

async function decide(run: Run, request: AdmissionRequest, timeoutMs: number): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ type: 'timeout' }), timeoutMs);
  });
  // Promise.race subscribes to the work, so a rejection after the deadline is still handled.
  const work = (async (): Promise<Outcome> => ({ type: 'verdict', verdict: await run(request) }))().catch((error: unknown): Outcome => ({ type: 'error', error }));
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export function createApp(deps: WebhookDeps): express.Application {
  const { metrics, logger } = deps;
  const timeoutMs = deps.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS;
  const bodyLimit = deps.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const podDeps: PodDeps = {
    tasks: deps.tasks,
    slots: deps.slots,
    serviceAccounts: deps.serviceAccounts,
    now: deps.now ?? (() => new Date()),
  };
  const runs: Record<HandlerName, Run> = {
    'mutate-pods': (r) => mutateTaskPod(r, podDeps),
    'mutate-agenttasks': (r) => mutateAgentTask(r, deps),
    'mutate-taskapprovals': mutateTaskApproval,
    'validate-pods': (r) => guardPod(r, podDeps),
    'validate-taskapprovals': (r) => validateTaskApproval(r, deps),
  };
  const byPath = new Map(WEBHOOK_ROUTES.map((route) => [route.path, route.handler]));

  const badRequest = (res: Response, handler: HandlerName | undefined, message: string): void => {
    if (handler) metrics.admissionDecisions.inc({ handler, result: 'error' });
    logger.warn({ handler, reason: message }, 'admission request refused as malformed');
    res.status(400).json({ message });
  };

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // First, so their routes parse their own bodies (a form, a smaller limit) before the JSON parser below.
  if (deps.extraRoutes) app.use(deps.extraRoutes);
  if (deps.requireClientCert) {
    const admissionPaths = new Set(WEBHOOK_ROUTES.map((route) => route.path));
    // Before the body is read: a caller that is not the API server gets nothing parsed, counted or reviewed.
    app.use((req: Request, res: Response, next: NextFunction) => {
      if (!admissionPaths.has(req.path) || (req.socket as TLSSocket).authorized === true) return next();
      logger.warn({ path: req.path, remote: req.socket.remoteAddress }, 'admission request without the API server client certificate refused');
      res.status(403).json({ message: 'only the API server may call the admission routes: it presents the client certificate its AdmissionConfiguration names' });
    });
  }
  app.use(express.json({ limit: bodyLimit, type: 'application/json', strict: true }));

  for (const route of WEBHOOK_ROUTES) {
    const handler = route.handler;
    app.post(route.path, async (req: Request, res: Response) => {
      const parsed = parseAdmissionReview(req.body);
      if (!parsed.ok) return badRequest(res, handler, `${parsed.error} (Content-Type must be application/json)`);
      const request = parsed.value;
      const stopTimer = metrics.admissionSeconds.startTimer({ handler });
      const outcome = await decide(runs[handler], request, timeoutMs);
      stopTimer();
      // userInfo.extra is deliberately absent: it can carry credential ids.
      const about = { handler, uid: request.uid, operation: request.operation, namespace: request.namespace, name: request.name, username: request.userInfo.username };
      let review: AdmissionReviewResponse;
      switch (outcome.type) {
        case 'verdict': {
          const verdict = outcome.verdict;
          switch (verdict.type) {
            case 'allow':
              metrics.admissionDecisions.inc({ handler, result: 'allowed' });
              logger.debug(about, 'admission allowed');
              review = allowed(request.uid, 'patch' in verdict ? verdict.patch : []);
              break;
            case 'deny':
              metrics.admissionDecisions.inc({ handler, result: 'denied' });
              logger.info({ ...about, reason: verdict.message }, 'admission denied');
              review = denied(request.uid, verdict.message);
              break;
            default: {
              const never: never = verdict;
              throw new Error(`unknown verdict ${JSON.stringify(never)}`);
            }
          }
          break;
        }
        case 'error':
          metrics.admissionDecisions.inc({ handler, result: 'error' });
          logger.error({ ...about, err: outcome.error }, 'admission handler failed; refusing');
          // The cause stays in our log: it may name internal endpoints the caller has no business seeing.
          review = denied(request.uid, `taskgrant could not check this request (internal error in ${handler}); it is refused until the check succeeds`, 500);
          break;
        case 'timeout':
          metrics.admissionDecisions.inc({ handler, result: 'error' });
          logger.error({ ...about, timeoutMs }, 'admission handler timed out; refusing');
          review = denied(request.uid, `taskgrant could not check this request within ${timeoutMs} ms (${handler}); it is refused until the check succeeds`, 500);
          break;
        default: {
          const never: never = outcome;
          throw new Error(`unknown outcome ${JSON.stringify(never)}`);
        }
      }
      res.status(200).json(review);
    });
  }

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ message: `no admission webhook at this path; POST to one of ${WEBHOOK_ROUTES.map((r) => r.path).join(', ')}` });
  });

  // Body-parser failures (too large, not JSON, aborted) land here before any route runs.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const handler = byPath.get(req.path);
    if (res.headersSent) return;
    const type = typeof err === 'object' && err !== null && 'type' in err ? String(err.type) : '';
    const message =
      type === 'entity.too.large' ? `AdmissionReview body exceeds ${bodyLimit} bytes`
        : type === 'entity.parse.failed' ? 'AdmissionReview body is not valid JSON'
          : 'AdmissionReview body could not be read';
    if (type === '' || !type.startsWith('entity.')) logger.error({ handler, err }, 'admission request failed outside a handler');
    badRequest(res, handler, message);
  });
  return app;
}
