// A real local Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager) for
// integration tests and `make cluster-up`: generated PKI, RBAC on, ServiceAccount token
// signing so TokenRequest and TokenReview work, every listener on 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CertificateAuthority, generateKeyPairPem } from '../../src/webhook/certs.js';
import { repoRoot } from './paths.js';

const tether = join(repoRoot(), 'test', 'harness', 'tether.sh');
const day = 24 * 3600 * 1000;

export interface ControlPlaneOptions {
  /** Where PKI, etcd data, logs and the kubeconfig live. */
  dir: string;
  /** Directory with etcd, kube-apiserver and kube-controller-manager. */
  assets: string;
  /**
   * `tethered`: processes die with this Node process (tests: nothing survives a crashed run).
   * `detached`: processes outlive it and are tracked by pid files (`make cluster-up`).
   */
  mode: 'tethered' | 'detached';
  startTimeoutMs?: number;
  /** Serve kube-apiserver's /debug/pprof (off unless a benchmark asks for CPU profiles). */
  profiling?: boolean;
}

export interface ControlPlaneInfo {
  kubeconfigPath: string;
  server: string;
  caPem: string;
  /** ServiceAccount token issuer and default audience. */
  issuer: string;
}

const components = ['etcd', 'kube-apiserver', 'kube-controller-manager'] as const;
type Component = (typeof components)[number];

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function kubeconfigYaml(server: string, caPem: string, certPem: string, keyPem: string): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: taskgrant-local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caPem)}`,
    'users:',
    '- name: admin',
    '  user:',
    `    client-certificate-data: ${b64(certPem)}`,
    `    client-key-data: ${b64(keyPem)}`,
    'contexts:',
    '- name: taskgrant-local',
    '  context: { cluster: taskgrant-local, user: admin, namespace: default }',
    'current-context: taskgrant-local',
    '',
  ].join('\n');
}

export class ControlPlane {
  private readonly children = new Map<Component, ChildProcess>();
  private info?: ControlPlaneInfo;
  private adminTls?: { ca: string; cert: string; key: string };

  constructor(private readonly options: ControlPlaneOptions) {}

  get pidDir(): string {
    return join(this.options.dir, 'pids');
  }

  async start(): Promise<ControlPlaneInfo> {
    const { dir, assets } = this.options;
    for (const c of components) {
      if (!existsSync(join(assets, c))) throw new Error(`${c} not found in ${assets}; run hack/toolchain.sh kube`);
    }
    for (const sub of ['pki', 'logs', 'pids']) mkdirSync(join(dir, sub), { recursive: true });
    rmSync(join(dir, 'etcd'), { recursive: true, force: true });

    const pki = join(dir, 'pki');
    const ca = await CertificateAuthority.create('taskgrant-local-ca', 365 * day);
    const serving = await ca.issue({
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
      ipAddresses: ['127.0.0.1', '10.0.0.1'],
      usage: 'server',
      validityMs: 365 * day,
    });
    const admin = await ca.issue({ commonName: 'taskgrant-admin', organizations: ['system:masters'], usage: 'client', validityMs: 365 * day });
    const saKeys = await generateKeyPairPem();
    const files = {
      ca: join(pki, 'ca.crt'),
      cert: join(pki, 'apiserver.crt'),
      key: join(pki, 'apiserver.key'),
      saPub: join(pki, 'sa.pub'),
      saKey: join(pki, 'sa.key'),
    };
    writeFileSync(files.ca, ca.certPem);
    writeFileSync(files.cert, serving.certPem);
    writeFileSync(files.key, serving.keyPem, { mode: 0o600 });
    writeFileSync(files.saPub, saKeys.publicKeyPem);
    writeFileSync(files.saKey, saKeys.privateKeyPem, { mode: 0o600 });
    this.adminTls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };

    const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
    const server = `https://127.0.0.1:${apiPort}`;
    const issuer = 'https://kubernetes.default.svc.cluster.local';
    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(server, ca.certPem, admin.certPem, admin.keyPem), { mode: 0o600 });

    this.spawn('etcd', [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // A throwaway test store: skipping fsync makes writes cheap on a shared CI disk.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    this.spawn('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--secure-port=${apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--tls-cert-file=${files.cert}`,
      `--tls-private-key-file=${files.key}`,
      `--client-ca-file=${files.ca}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${issuer}`,
      `--service-account-key-file=${files.saPub}`,
      `--service-account-signing-key-file=${files.saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      `--profiling=${this.options.profiling === true}`,
      '--v=1',
    ]);
    this.info = { kubeconfigPath, server, caPem: ca.certPem, issuer };
    await this.waitFor(() => this.apiGet('/readyz').then((r) => r.status === 200), 'kube-apiserver /readyz');
    this.spawn('kube-controller-manager', [
      `--kubeconfig=${kubeconfigPath}`,
      '--controllers=garbagecollector,serviceaccount,namespace',
      `--root-ca-file=${files.ca}`,
      '--secure-port=0',
      '--leader-elect=false',
      '--v=1',
    ]);
    await this.waitFor(
      () => this.apiGet('/api/v1/namespaces/default/serviceaccounts/default').then((r) => r.status === 200),
      'the default/default ServiceAccount',
    );
    return this.info;
  }

  /** GET with the admin identity; resolves with status and body, never rejects on HTTP errors. */
  apiGet(path: string): Promise<{ status: number; body: string }> {
    const info = this.info;
    const tls = this.adminTls;
    if (!info || !tls) return Promise.reject(new Error('control plane not started'));
    return new Promise((resolveGet, reject) => {
      const req = request(`${info.server}${path}`, { ca: tls.ca, cert: tls.cert, key: tls.key, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  private spawn(component: Component, args: string[]): void {
    const { dir, assets, mode } = this.options;
    const log = openSync(join(dir, 'logs', `${component}.log`), 'a');
    const binary = join(assets, component);
    const child =
      mode === 'tethered'
        ? spawn('bash', [tether, String(process.pid), binary, ...args], { stdio: ['ignore', log, log] })
        : spawn(binary, args, { stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    if (mode === 'detached') child.unref();
    child.on('exit', () => this.children.delete(component));
    this.children.set(component, child);
    writeFileSync(join(this.pidDir, `${component}.pid`), `${child.pid}\n`);
  }

  private async waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 60_000);
    let lastError: unknown;
    while (Date.now() < deadline) {
      for (const c of components) {
        const child = this.children.get(c);
        if (child?.exitCode != null) {
          throw new Error(`${c} exited with ${child.exitCode} while waiting for ${what}; see ${join(this.options.dir, 'logs', `${c}.log`)}`);
        }
      }
      try {
        if (await check()) return;
      } catch (err) {
        lastError = err;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out waiting for ${what}`, { cause: lastError });
  }

  /** Stops every component started by this object or recorded in the pid directory. */
  async stop(): Promise<void> {
    await stopFromPidDir(this.pidDir);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the processes recorded under `pidDir`, controller-manager first, etcd last. */
export async function stopFromPidDir(pidDir: string): Promise<void> {
  for (const c of [...components].reverse()) {
    const file = join(pidDir, `${c}.pid`);
    if (!existsSync(file)) continue;
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(file, { force: true });
  }
}

/** True when every component recorded under `pidDir` is still running. */
export function allRunning(pidDir: string): boolean {
  return components.every((c) => {
    const file = join(pidDir, `${c}.pid`);
    if (!existsSync(file)) return false;
    return alive(Number(readFileSync(file, 'utf8').trim()));
  });
}
