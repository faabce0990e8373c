// Helpers for the security suites: cluster users as ServiceAccount tokens with chosen RBAC, raw
// HTTPS calls to the API server (bodies and headers no typed client would send), and raw calls
// to the operator's webhook and health ports.
import * as k8s from '@kubernetes/client-node';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { webhookClientFiles } from './controlplane.js';
import { tokenConfig } from './kube.js';

export interface TestUser {
  kc: k8s.KubeConfig;
  username: string;
  token: string;
  custom: k8s.CustomObjectsApi;
}

/** A user of the cluster: a ServiceAccount in `namespace` holding `rules` there, and a real token for it. */
export async function userWith(admin: k8s.KubeConfig, namespace: string, name: string, rules: k8s.V1PolicyRule[]): Promise<TestUser> {
  const core = admin.makeApiClient(k8s.CoreV1Api);
  const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace }] },
  });
  const token = (await core.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: 600 } } })).status?.token ?? '';
  if (!token) throw new Error(`no token for ${namespace}/${name}`);
  const kc = tokenConfig(admin, token);
  return { kc, username: `system:serviceaccount:${namespace}:${name}`, token, custom: kc.makeApiClient(k8s.CustomObjectsApi) };
}

export const GROUP = 'taskgrant.io';
export const canCreate = (resource: string): k8s.V1PolicyRule => ({ apiGroups: [GROUP], resources: [resource], verbs: ['create', 'get', 'list'] });
export const canApprove: k8s.V1PolicyRule = { apiGroups: [GROUP], resources: ['agenttasks'], verbs: ['approve'] };

export interface RawResponse {
  status: number;
  body: string;
  json(): unknown;
}

function respond(status: number, body: string): RawResponse {
  return { status, body, json: () => JSON.parse(body) as unknown };
}

export interface RawRequest {
  method: string;
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

function send(url: URL, tls: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean } | undefined, req: RawRequest): Promise<RawResponse> {
  const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
  const headers: Record<string, string> = { ...(body ? { 'Content-Length': String(body.length) } : {}), ...(req.headers ?? {}) };
  return new Promise((resolve, reject) => {
    const make = tls ? httpsRequest : httpRequest;
    const r = make(url, { method: req.method, headers, timeout: req.timeoutMs ?? 15_000, ...(tls ?? {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve(respond(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error(`${req.method} ${url.pathname} timed out`)));
    r.on('error', reject);
    if (body) r.write(body);
    r.end();
  });
}

/**
 * Raw HTTPS to the API server. With `token`, authenticates as that bearer token only (what a task
 * pod holds); without, as the admin of the kubeconfig (client certificate).
 */
export function apiServerRequest(admin: k8s.KubeConfig, req: RawRequest, token?: string): Promise<RawResponse> {
  const cluster = admin.getCurrentCluster();
  const user = admin.getCurrentUser();
  if (!cluster) throw new Error('admin kubeconfig has no cluster');
  const decode = (b64: string | undefined) => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : undefined);
  const ca = decode(cluster.caData);
  const tls = token
    ? { ...(ca ? { ca } : {}) }
    : { ...(ca ? { ca } : {}), ...(user?.certData ? { cert: decode(user.certData) } : {}), ...(user?.keyData ? { key: decode(user.keyData) } : {}) };
  const headers = { Accept: 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(req.headers ?? {}) };
  return send(new URL(req.path, cluster.server), tls, { ...req, headers });
}

/** Raw HTTPS to the operator's webhook port, trusting its self-managed CA. */
/**
 * A raw call to the operator's webhook port. `as`: 'api-server' presents the local API server's
 * webhook client certificate (what only the API server holds), 'anyone' presents none.
 */
export function webhookRequest(port: number, caPem: string, req: RawRequest, as: 'api-server' | 'anyone' = 'api-server'): Promise<RawResponse> {
  return webhookRequestTo('127.0.0.1', port, caPem, req, as, true);
}

/** As webhookRequest, to any host; `verifyServer` false when the serving CA is not at hand. */
export function webhookRequestTo(host: string, port: number, caPem: string, req: RawRequest, as: 'api-server' | 'anyone', verifyServer: boolean): Promise<RawResponse> {
  const tls = verifyServer ? { ca: caPem } : { rejectUnauthorized: false };
  return send(new URL(req.path, `https://${host}:${port}`), { ...tls, ...(as === 'api-server' ? apiServerClientCert() : {}) }, req);
}

function apiServerClientCert(): { cert: string; key: string } {
  const kubeconfig = process.env.TASKGRANT_TEST_KUBECONFIG;
  if (!kubeconfig) throw new Error('TASKGRANT_TEST_KUBECONFIG is not set');
  const files = webhookClientFiles(dirname(kubeconfig));
  return { cert: readFileSync(files.webhookClientCert, 'utf8'), key: readFileSync(files.webhookClientKey, 'utf8') };
}

/** Plain HTTP to the operator's health/metrics port. */
export function healthRequest(port: number, path: string): Promise<RawResponse> {
  return send(new URL(path, `http://127.0.0.1:${port}`), undefined, { method: 'GET', path });
}

/** The CA the operator's webhook certificate chains to (Secret taskgrant-webhook-tls, key ca.crt). */
export async function webhookCaPem(admin: k8s.KubeConfig, operatorNamespace: string): Promise<string> {
  const secret = await admin.makeApiClient(k8s.CoreV1Api).readNamespacedSecret({ name: 'taskgrant-webhook-tls', namespace: operatorNamespace });
  const ca = secret.data?.['ca.crt'];
  if (!ca) throw new Error(`Secret ${operatorNamespace}/taskgrant-webhook-tls has no ca.crt`);
  return Buffer.from(ca, 'base64').toString('utf8');
}

/** The value of one sample in Prometheus text exposition, or 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels);
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = new Map([...(match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (wanted.every(([k, v]) => have.get(k) === v)) total += Number(match[4]);
  }
  return total;
}

/** A JWT anywhere in a text: three base64url segments, the first starting like a JSON header. */
export const JWT_PATTERN = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;
