// The request-time authorizer's public surface for operator.ts.
export { EXTRA_POD_NAME, EXTRA_POD_UID, RequestAuthorizer, type AuthorizerDeps, type RuntimePolicy } from './authorizer.js';
export { AUTHORIZE_PATH, authzListener, type AuthzListenerDeps } from './listener.js';
export { parseSubjectAccessReview, reviewAnswer, type AccessRequest, type AuthzVerdict } from './review.js';
export { UsageFlusher, type UsageFlusherDeps } from './flusher.js';
export { UsageBook, usageAfter, type UsageWriter } from './usage.js';
