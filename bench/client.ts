// A lean API client for the benchmarks: admin client certificate, keep-alive connections, raw
// JSON. Kept outside src/ on purpose: it measures the system, it is not part of it.
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';

interface KubeconfigFile {
  clusters: Array<{ cluster: { server: string; 'certificate-authority-data': string } }>;
  users: Array<{ user: { 'client-certificate-data': string; 'client-key-data': string } }>;
}

export interface Response {
  status: number;
  body: string;
  bytes: Buffer;
}

export class BenchClient {
  readonly server: string;
  private readonly agent: Agent;
  /** Keep-alive connections without the admin certificate, for calls made with a bearer token. */
  private readonly tokenAgent: Agent;
  readonly caPem: string;

  constructor(readonly kubeconfigPath: string) {
    const file = parse(readFileSync(kubeconfigPath, 'utf8')) as KubeconfigFile;
    const cluster = file.clusters[0]!.cluster;
    const user = file.users[0]!.user;
    const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
    this.server = cluster.server;
    this.caPem = b64(cluster['certificate-authority-data']);
    this.agent = new Agent({ keepAlive: true, maxSockets: 256, ca: this.caPem, cert: b64(user['client-certificate-data']), key: b64(user['client-key-data']) });
    this.tokenAgent = new Agent({ keepAlive: true, maxSockets: 256, ca: this.caPem });
  }

  call(method: string, path: string, body?: unknown, contentType = 'application/json', token?: string): Promise<Response> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = contentType;
      const options = token ? { method, headers: { ...headers, Authorization: `Bearer ${token}` }, agent: this.tokenAgent } : { method, headers, agent: this.agent };
      const req = request(`${this.server}${path}`, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, body: bytes.toString('utf8'), bytes });
        });
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  async must(method: string, path: string, body?: unknown, contentType?: string, token?: string): Promise<Record<string, unknown>> {
    const res = await this.call(method, path, body, contentType, token);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.body.slice(0, 300)}`);
    return JSON.parse(res.body) as Record<string, unknown>;
  }

  close(): void {
    this.agent.destroy();
    this.tokenAgent.destroy();
  }
}

/** Resolves waiters as soon as a watch reports a task in one of the wanted phases. */
export class PhaseWatcher {
  private readonly phases = new Map<string, string>();
  private readonly waiters = new Map<string, Array<{ wanted: string[]; resolve: (at: number) => void }>>();
  private abort?: AbortController;
  private stopped = false;
  private readonly kc = new k8s.KubeConfig();

  /** AgentTasks by phase, or (`rolebindings`) RoleBindings: `Present` until `Deleted`. */
  constructor(
    kubeconfigPath: string,
    private readonly namespace: string,
    private readonly resource: 'agenttasks' | 'rolebindings' = 'agenttasks',
  ) {
    this.kc.loadFromFile(kubeconfigPath);
  }

  private stateOf(obj: { status?: { phase?: string } }): string {
    return this.resource === 'agenttasks' ? (obj.status?.phase ?? 'Pending') : 'Present';
  }

  async start(): Promise<void> {
    await this.connect();
  }

  private observe(name: string, phase: string): void {
    this.phases.set(name, phase);
    const waiting = this.waiters.get(name);
    if (!waiting) return;
    const at = performance.now();
    const remaining = waiting.filter((w) => {
      if (!w.wanted.includes(phase)) return true;
      w.resolve(at);
      return false;
    });
    if (remaining.length === 0) this.waiters.delete(name);
    else this.waiters.set(name, remaining);
  }

  /**
   * List, then watch from the list's resourceVersion. The API server ends watches (timeouts, slow
   * consumers under a burst), so an ended watch lists again — tasks gone meanwhile count as
   * Deleted — and resumes.
   */
  private async connect(): Promise<void> {
    const [group, version] = this.resource === 'agenttasks' ? ['taskgrant.io', 'v1alpha1'] : ['rbac.authorization.k8s.io', 'v1'];
    const listed = (await this.kc.makeApiClient(k8s.CustomObjectsApi).listNamespacedCustomObject({ group, version, namespace: this.namespace, plural: this.resource })) as {
      items: Array<{ metadata: { name: string }; status?: { phase?: string } }>;
      metadata: { resourceVersion: string };
    };
    const present = new Set(listed.items.map((t) => t.metadata.name));
    for (const t of listed.items) this.observe(t.metadata.name, this.stateOf(t));
    for (const name of [...this.phases.keys()]) if (!present.has(name)) this.observe(name, 'Deleted');
    this.abort = await new k8s.Watch(this.kc).watch(
      `/apis/${group}/${version}/namespaces/${this.namespace}/${this.resource}`,
      { allowWatchBookmarks: true, resourceVersion: listed.metadata.resourceVersion },
      (type: string, obj: { metadata: { name: string }; status?: { phase?: string } }) => {
        if (type === 'BOOKMARK' || type === 'ERROR') return;
        this.observe(obj.metadata.name, type === 'DELETED' ? 'Deleted' : this.stateOf(obj));
      },
      () => {
        if (!this.stopped) setTimeout(() => void this.connect().catch(() => undefined), 100);
      },
    );
  }

  /** The phase the watch last saw `name` in. */
  phaseOf(name: string): string | undefined {
    return this.phases.get(name);
  }

  /** performance.now() at which the watch saw `name` in a wanted phase. */
  waitFor(name: string, wanted: string[], timeoutMs = 60_000): Promise<number> {
    const current = this.phases.get(name);
    if (current && wanted.includes(current)) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not reach ${wanted.join('|')} (is ${this.phases.get(name) ?? 'unknown'})`)), timeoutMs);
      const list = this.waiters.get(name) ?? [];
      list.push({ wanted, resolve: (at) => (clearTimeout(timer), resolve(at)) });
      this.waiters.set(name, list);
    });
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}
