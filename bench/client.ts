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
}

export class BenchClient {
  readonly server: string;
  private readonly agent: Agent;
  readonly caPem: string;

  constructor(readonly kubeconfigPath: string) {
    const file = parse(readFileSync(kubeconfigPath, 'utf8')) as KubeconfigFile;
    const cluster = file.clusters[0]!.cluster;
    const user = file.users[0]!.user;
    const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
    this.server = cluster.server;
    this.caPem = b64(cluster['certificate-authority-data']);
    this.agent = new Agent({ keepAlive: true, maxSockets: 256, ca: this.caPem, cert: b64(user['client-certificate-data']), key: b64(user['client-key-data']) });
  }

  call(method: string, path: string, body?: unknown, contentType = 'application/json', token?: string): Promise<Response> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = contentType;
      const options = token ? { method, headers: { ...headers, Authorization: `Bearer ${token}` }, ca: this.caPem } : { method, headers, agent: this.agent };
      const req = request(`${this.server}${path}`, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  async must(method: string, path: string, body?: unknown, contentType?: string): Promise<Record<string, unknown>> {
    const res = await this.call(method, path, body, contentType);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.body.slice(0, 300)}`);
    return JSON.parse(res.body) as Record<string, unknown>;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Resolves waiters as soon as a watch reports a task in one of the wanted phases. */
export class PhaseWatcher {
  private readonly phases = new Map<string, string>();
  private readonly waiters = new Map<string, Array<{ wanted: string[]; resolve: (at: number) => void }>>();
  private abort?: AbortController;

  constructor(
    private readonly kubeconfigPath: string,
    private readonly namespace: string,
  ) {}

  async start(): Promise<void> {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    this.abort = await new k8s.Watch(kc).watch(
      `/apis/taskgrant.io/v1alpha1/namespaces/${this.namespace}/agenttasks`,
      { allowWatchBookmarks: false },
      (type: string, obj: { metadata: { name: string }; status?: { phase?: string } }) => {
        const name = obj.metadata.name;
        if (type === 'DELETED') {
          this.phases.set(name, 'Deleted');
        } else {
          this.phases.set(name, obj.status?.phase ?? 'Pending');
        }
        const at = performance.now();
        const list = this.waiters.get(name);
        if (!list) return;
        const phase = this.phases.get(name)!;
        const remaining = list.filter((w) => {
          if (!w.wanted.includes(phase)) return true;
          w.resolve(at);
          return false;
        });
        if (remaining.length === 0) this.waiters.delete(name);
        else this.waiters.set(name, remaining);
      },
      () => undefined,
    );
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
    this.abort?.abort();
  }
}
