// Loading credentials: an explicit kubeconfig path, else KUBECONFIG / ~/.kube/config, else the
// in-cluster ServiceAccount (client-node's loadFromDefault order).
//
// The operator reads kubeconfigs itself for what clusters and pods use — a client certificate, a
// bearer token or token file, the in-cluster ServiceAccount — and hands anything else (exec and
// auth-provider plugins, proxies, merged KUBECONFIG lists) to @kubernetes/client-node, loaded only
// then. Importing client-node loads its thousands of generated model classes: about 40 MB of the
// operator's resident memory (make bench: memory.*) for two methods.
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';

/** Where the API server is and how to authenticate to it. client-node's KubeConfig fits this too. */
export interface KubeConfig {
  getCurrentCluster(): { server: string } | null;
  /** Sets TLS material and the Authorization header (a token may have been refreshed). */
  applyToHTTPSOptions(options: RequestOptions): Promise<void>;
}

const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** kubelet rotates projected tokens; client-go re-reads the file about this often. */
const TOKEN_FILE_REREAD_MS = 60_000;

interface Tls {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
}

type Credential = { type: 'none' } | { type: 'token'; token: string } | { type: 'tokenFile'; path: string };

/** Static TLS material plus a bearer token that may come from a file the kubelet rotates. */
export class StaticKubeConfig implements KubeConfig {
  private token: { value: string; readAt: number; mtimeMs: number } | undefined;

  constructor(
    private readonly server: string,
    private readonly tls: Tls,
    private readonly credential: Credential,
    private readonly rereadMs = TOKEN_FILE_REREAD_MS,
  ) {}

  getCurrentCluster(): { server: string } {
    return { server: this.server };
  }

  async applyToHTTPSOptions(options: RequestOptions): Promise<void> {
    Object.assign(options, this.tls);
    const token = this.bearer();
    if (token !== undefined) options.headers = { ...options.headers, Authorization: `Bearer ${token}` };
  }

  private bearer(): string | undefined {
    switch (this.credential.type) {
      case 'none':
        return undefined;
      case 'token':
        return this.credential.token;
      case 'tokenFile': {
        const now = Date.now();
        if (!this.token || now - this.token.readAt >= this.rereadMs) {
          const mtimeMs = statSync(this.credential.path).mtimeMs;
          const value = this.token?.mtimeMs === mtimeMs ? this.token.value : readFileSync(this.credential.path, 'utf8').trim();
          this.token = { value, readAt: now, mtimeMs };
        }
        return this.token.value;
      }
    }
  }
}

/** Loads credentials the way kubectl would find them; see the file comment for what is read here. */
export async function loadKubeConfig(path?: string): Promise<KubeConfig> {
  const files = path ? [path] : (process.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  if (files.length === 0) {
    const home = join(homedir(), '.kube', 'config');
    if (existsSync(home)) files.push(home);
  }
  if (files.length === 0) {
    const inCluster = inClusterConfig();
    if (inCluster) return inCluster;
    throw new Error('no Kubernetes cluster configured (set --kubeconfig or KUBECONFIG, or run in a pod)');
  }
  if (files.length === 1) {
    const lean = fromKubeconfigFile(files[0]!);
    if (lean) return lean;
  }
  return viaClientNode(path);
}

/** A pod's own ServiceAccount: the API server from the service env vars, its token file re-read as the kubelet rotates it. */
export function inClusterConfig(dir = IN_CLUSTER_DIR, env: NodeJS.ProcessEnv = process.env, rereadMs = TOKEN_FILE_REREAD_MS): KubeConfig | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port || !existsSync(join(dir, 'token'))) return undefined;
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return new StaticKubeConfig(server, { ca: readFileSync(join(dir, 'ca.crt'), 'utf8') }, { type: 'tokenFile', path: join(dir, 'token') }, rereadMs);
}

interface Named<T> {
  name: string;
  [key: string]: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}
type Fields = Record<string, unknown>;

/**
 * A StaticKubeConfig for the current context of a kubeconfig file, or undefined when it needs
 * more than this reader knows (client-node takes over then).
 */
export function fromKubeconfigFile(file: string): KubeConfig | undefined {
  const doc = parse(readFileSync(file, 'utf8')) as Fields | null;
  if (!doc || typeof doc !== 'object') throw new Error(`${file} is not a kubeconfig`);
  const find = (list: unknown, name: unknown, field: 'cluster' | 'user' | 'context'): Fields | undefined =>
    (Array.isArray(list) ? (list as Named<Fields>[]) : []).find((entry) => entry?.name === name)?.[field];
  const context = find(doc.contexts, doc['current-context'], 'context');
  if (!context) throw new Error(`${file} has no current context`);
  const cluster = find(doc.clusters, context.cluster, 'cluster');
  if (!cluster || typeof cluster.server !== 'string') throw new Error(`${file}: the current context's cluster has no server`);
  const user = find(doc.users, context.user, 'user') ?? {};
  const supportedUser = new Set(['client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'token', 'tokenFile']);
  const supportedCluster = new Set(['server', 'certificate-authority', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name']);
  if (Object.keys(user).some((k) => !supportedUser.has(k)) || Object.keys(cluster).some((k) => !supportedCluster.has(k))) return undefined;

  const base = dirname(file);
  const material = (data: unknown, path: unknown): string | undefined => {
    if (typeof data === 'string') return Buffer.from(data, 'base64').toString('utf8');
    if (typeof path === 'string') return readFileSync(isAbsolute(path) ? path : join(base, path), 'utf8');
    return undefined;
  };
  const tls: Tls = {};
  const ca = material(cluster['certificate-authority-data'], cluster['certificate-authority']);
  if (ca !== undefined) tls.ca = ca;
  const cert = material(user['client-certificate-data'], user['client-certificate']);
  if (cert !== undefined) tls.cert = cert;
  const key = material(user['client-key-data'], user['client-key']);
  if (key !== undefined) tls.key = key;
  if (cluster['insecure-skip-tls-verify'] === true) tls.rejectUnauthorized = false;
  if (typeof cluster['tls-server-name'] === 'string') tls.servername = cluster['tls-server-name'];
  const credential: Credential =
    typeof user.token === 'string' ? { type: 'token', token: user.token }
      : typeof user.tokenFile === 'string' ? { type: 'tokenFile', path: isAbsolute(user.tokenFile) ? user.tokenFile : join(base, user.tokenFile) }
        : { type: 'none' };
  return new StaticKubeConfig(cluster.server, tls, credential);
}

async function viaClientNode(path?: string): Promise<KubeConfig> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('the kubeconfig names no current cluster');
  return kc;
}
