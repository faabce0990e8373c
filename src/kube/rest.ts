// Raw JSON requests and watch streams with the kubeconfig's credentials: the operator's one way
// to the API server. Not client-node's typed client: its serializer only knows its model property
// names, so raw manifests lose fields such as `enum`, `default` and `x-kubernetes-validations` on
// the way out, and its import alone costs the operator about 40 MB (see client.ts).
import { Agent, request, type RequestOptions } from 'node:https';
import type { KubeConfig } from './client.js';
import { statusMessage, WatchRefused, type Transport, type TransportResponse, type WatchHandle, type WatchQuery } from './transport.js';

export { statusMessage, type WatchHandle } from './transport.js';

/** Any object with the fields a REST path is built from. */
export interface KubernetesObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
}

const REQUEST_DEADLINE_MS = 30_000;

/**
 * The production Transport: https to the kubeconfig's API server. client-node's cached
 * https.Agent is created without keepAlive, so every request through it pays a fresh TLS
 * handshake (measured: ~15 grants/s and RSS growing by hundreds of MB at 2,000 tasks); one
 * keep-alive agent per transport, and one transport per kubeconfig, reuse connections instead.
 */
export class HttpsTransport implements Transport {
  private agent?: Agent;

  constructor(private readonly kc: KubeConfig) {}

  private keepAliveAgent(tls: RequestOptions): Agent {
    this.agent ??= new Agent({
      keepAlive: true,
      maxSockets: 64,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
      ...(tls.servername ? { servername: tls.servername } : {}),
    });
    return this.agent;
  }

  /**
   * Applies the credentials (a bearer token may have been refreshed, so per request) and our
   * keep-alive pool to `options`; returns the server URL.
   */
  private async authorize(options: RequestOptions): Promise<string> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    await this.kc.applyToHTTPSOptions(options);
    options.agent = this.keepAliveAgent(options);
    return cluster.server;
  }

  async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<TransportResponse> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string | number> = { Accept: 'application/json' };
    if (payload !== undefined) {
      headers['Content-Type'] = contentType;
      // Explicit length: Node sends a DELETE body chunked-less without it, and on a reused
      // keep-alive connection the API server then reads that body as the next request.
      headers['Content-Length'] = Buffer.byteLength(payload);
    }
    const options: RequestOptions = { method, headers, timeout: 30_000 };
    const server = await this.authorize(options);
    return new Promise((resolve, reject) => {
      // A hard deadline, not just socket idleness: a call that never settles would hold a worker
      // (and, while granting, the agent's lock) for ever.
      const deadline = setTimeout(() => req.destroy(new Error(`${method} ${path} did not complete within ${REQUEST_DEADLINE_MS} ms`)), REQUEST_DEADLINE_MS);
      const settle = (fn: () => void) => {
        clearTimeout(deadline);
        fn();
      };
      const req = request(`${server}${path}`, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => settle(() => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })));
        res.on('error', (err) => settle(() => reject(err)));
        res.on('aborted', () => settle(() => reject(new Error(`${method} ${path}: response aborted`))));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', (err) => settle(() => reject(err)));
      req.end(payload);
    });
  }

  /** No deadline here: a watch is long-lived, and the informer restarts one that goes silent. */
  async watch(path: string, query: WatchQuery, onEvent: (type: string, object: unknown) => void, onEnd: (err?: Error) => void): Promise<WatchHandle> {
    const params = new URLSearchParams(Object.entries({ ...query, watch: true }).map(([k, v]) => [k, String(v)]));
    const options: RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
    const server = await this.authorize(options);
    let ended = false;
    const end = (err?: Error) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    const req = request(`${server}${path}?${params.toString()}`, options, (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (d: string) => (body += d));
        res.on('end', () => end(new WatchRefused(res.statusCode ?? 0, path, statusMessage(body))));
        return;
      }
      let pending = '';
      res.on('data', (chunk: string) => {
        pending += chunk;
        let newline: number;
        while ((newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (line.trim() === '' || ended) continue;
          let event: { type?: unknown; object?: unknown };
          try {
            event = JSON.parse(line) as typeof event;
          } catch {
            req.destroy();
            end(new Error(`watch ${path}: an event that is not JSON`));
            return;
          }
          onEvent(String(event.type), event.object);
        }
      });
      res.on('end', () => end());
      res.on('error', (err) => end(err));
      res.on('aborted', () => end(new Error(`watch ${path}: stream aborted`)));
    });
    req.on('error', (err) => end(err));
    req.end();
    return {
      abort: () => {
        req.destroy();
        end(new Error(`watch ${path}: aborted`));
      },
    };
  }
}

// One transport, so one connection pool, per kubeconfig however many clients are built on it.
const transports = new WeakMap<KubeConfig, HttpsTransport>();

/** A Transport, or a kubeconfig to reach over https. */
export type Connection = Transport | KubeConfig;

export function transportOf(connection: Connection): Transport {
  if (!('applyToHTTPSOptions' in connection)) return connection;
  let transport = transports.get(connection);
  if (!transport) transports.set(connection, (transport = new HttpsTransport(connection)));
  return transport;
}

/** One request with the kubeconfig's credentials (see Transport.request). */
export function rest(kc: KubeConfig, method: string, path: string, body?: unknown, contentType?: string): Promise<TransportResponse> {
  return transportOf(kc).request(method, path, body, contentType);
}

/** A watch stream with the kubeconfig's credentials (see Transport.watch). */
export function watch(
  kc: KubeConfig,
  path: string,
  query: WatchQuery,
  onEvent: (type: string, object: unknown) => void,
  onEnd: (err?: Error) => void,
): Promise<WatchHandle> {
  return transportOf(kc).watch(path, query, onEvent, onEnd);
}

interface ResourceInfo {
  plural: string;
  namespaced: boolean;
}

/** Finds the REST path of an object through API discovery (cached per group/version). */
export class ResourcePaths {
  private readonly cache = new Map<string, Map<string, ResourceInfo>>();

  private readonly transport: Transport;

  constructor(connection: Connection) {
    this.transport = transportOf(connection);
  }

  async pathOf(object: KubernetesObject): Promise<string> {
    const { apiVersion, kind, metadata } = object;
    if (!apiVersion || !kind || !metadata?.name) throw new Error('an object needs apiVersion, kind and metadata.name');
    const resources = await this.discover(apiVersion);
    const info = resources.get(kind);
    if (!info) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const ns = info.namespaced ? `/namespaces/${metadata.namespace ?? 'default'}` : '';
    return `${base}${ns}/${info.plural}/${encodeURIComponent(metadata.name)}`;
  }

  private async discover(apiVersion: string): Promise<Map<string, ResourceInfo>> {
    const cached = this.cache.get(apiVersion);
    if (cached) return cached;
    const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const res = await this.transport.request('GET', path);
    if (res.status !== 200) throw new Error(`discovery of ${apiVersion} failed: ${res.status} ${statusMessage(res.body)}`);
    const list = JSON.parse(res.body) as { resources: Array<{ name: string; kind: string; namespaced: boolean }> };
    const map = new Map<string, ResourceInfo>();
    for (const r of list.resources) if (!r.name.includes('/')) map.set(r.kind, { plural: r.name, namespaced: r.namespaced });
    this.cache.set(apiVersion, map);
    return map;
  }
}
