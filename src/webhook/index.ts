// The webhook's public surface for main.ts.
export { SERVICE_ACCOUNT_PREFIX, isTaskServiceAccountName, taskServiceAccountName } from '../api/naming.js';
export { ADMISSION_API_VERSION, type UserInfo } from './admission.js';
export { HANDLERS, WEBHOOK_ROUTES, createApp, type HandlerName, type WebhookRoute } from './app.js';
export type { AccessReviewer, PodSlots, ServiceAccountLookup, SlotClaim, SlotVerdict, TaskLookup, WebhookDeps } from './deps.js';
export { serveHttps, type HttpsHandle, type ServeOptions, type TlsMaterial } from './server.js';
