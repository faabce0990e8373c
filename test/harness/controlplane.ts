// A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) for integration tests and `make cluster-up`: generated PKI, Node + RBAC
// authorization, NodeRestriction, ServiceAccount token signing so TokenRequest and TokenReview
// work. The API server listens on one address only: the pod bridge's gateway when a node runs
// (pods reach it through the `kubernetes` Service, which kube-proxy points at that address), else
// 127.0.0.1. Nothing listens on the machine's external interface.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { CertificateAuthority, generateKeyPairPem } from '../../src/webhook/certs.js';
import { freePort, Processes, stopFromPidDir, allRunning, type RunMode } from './processes.js';
import { repoRoot } from './paths.js';

export { freePort } from './processes.js';

const day = 24 * 3600 * 1000;

export interface ControlPlaneOptions {
  /** Where PKI, etcd data, logs and the kubeconfig live. */
  dir: string;
  /** Directory with the Kubernetes binaries (hack/toolchain.sh kube). */
  assets: string;
  /**
   * `tethered`: processes die with this Node process (tests: nothing survives a crashed run).
   * `detached`: processes outlive it and are tracked by pid files (`make cluster-up`).
   */
  mode: RunMode;
  /** The only address the API server listens on. */
  bindAddress?: string;
  startTimeoutMs?: number;
  /** Serve kube-apiserver's /debug/pprof (off unless a benchmark asks for CPU profiles). */
  profiling?: boolean;
  /**
   * Ask taskgrant's request-time authorizer about task identities (AuthorizationConfiguration:
   * Node, taskgrant, RBAC), through a relay at a fixed loopback port (hack/authz-relay.mjs).
   * Off: Node and RBAC only, as on a managed cluster.
   */
  authorizer?: boolean;
}

export interface ControlPlaneInfo {
  kubeconfigPath: string;
  server: string;
  caPem: string;
  /** ServiceAccount token issuer and default audience. */
  issuer: string;
}

export const controlPlaneComponents = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;
/** Runs beside the control plane when the authorizer is configured (stopped with it, not required by it). */
const authzRelay = 'authz-relay';
/** Service range of the local cluster; the `kubernetes` Service takes its first address. */
export const serviceCidr = '10.0.0.0/24';
const kubernetesServiceIp = '10.0.0.1';

export interface KubeconfigUser {
  certPem: string;
  keyPem: string;
}

export function kubeconfigYaml(server: string, caPem: string, user: KubeconfigUser, userName = 'admin'): string {
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
    `- name: ${userName}`,
    '  user:',
    `    client-certificate-data: ${b64(user.certPem)}`,
    `    client-key-data: ${b64(user.keyPem)}`,
    'contexts:',
    '- name: taskgrant-local',
    `  context: { cluster: taskgrant-local, user: ${userName}, namespace: default }`,
    'current-context: taskgrant-local',
    '',
  ].join('\n');
}

export class ControlPlane {
  private processes?: Processes;
  private info?: ControlPlaneInfo;
  private adminTls?: { ca: string; cert: string; key: string };
  /** The cluster CA, for the node's certificates. Set by start(). */
  authority?: CertificateAuthority;

  constructor(private readonly options: ControlPlaneOptions) {}

  get pidDir(): string {
    return join(this.options.dir, 'pids');
  }

  async start(): Promise<ControlPlaneInfo> {
    const { dir, assets, mode } = this.options;
    const bindAddress = this.options.bindAddress ?? '127.0.0.1';
    mkdirSync(join(dir, 'pki'), { recursive: true });
    rmSync(join(dir, 'etcd'), { recursive: true, force: true });
    const processes = new Processes({ logDir: join(dir, 'logs'), pidDir: this.pidDir, mode });
    this.processes = processes;

    const pki = join(dir, 'pki');
    const ca = await CertificateAuthority.create('taskgrant-local-ca', 365 * day);
    this.authority = ca;
    const serving = await ca.issue({
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
      ipAddresses: [...new Set(['127.0.0.1', kubernetesServiceIp, bindAddress])],
      usage: 'server',
      validityMs: 365 * day,
    });
    const admin = await ca.issue({ commonName: 'taskgrant-admin', organizations: ['system:masters'], usage: 'client', validityMs: 365 * day });
    // The API server's identity towards kubelets (logs, exec): cluster-admin by group.
    const kubeletClient = await ca.issue({ commonName: 'kube-apiserver-kubelet-client', organizations: ['system:masters'], usage: 'client', validityMs: 365 * day });
    // The API server's identity towards admission webhooks, from a CA that signs nothing else:
    // the webhook trusts a certificate it issued as "the API server", so no other client may hold one.
    const webhookClientCa = await CertificateAuthority.create('taskgrant-webhook-client-ca', 365 * day);
    const webhookClient = await webhookClientCa.issue({ commonName: 'kube-apiserver-webhook-client', usage: 'client', validityMs: 365 * day });
    const saKeys = await generateKeyPairPem();
    const files = {
      ca: join(pki, 'ca.crt'),
      cert: join(pki, 'apiserver.crt'),
      key: join(pki, 'apiserver.key'),
      kubeletClientCert: join(pki, 'apiserver-kubelet-client.crt'),
      kubeletClientKey: join(pki, 'apiserver-kubelet-client.key'),
      saPub: join(pki, 'sa.pub'),
      saKey: join(pki, 'sa.key'),
      ...webhookClientFiles(dir),
      admissionConfig: join(pki, 'admission-config.yaml'),
      webhookKubeconfig: join(pki, 'webhook-client.kubeconfig'),
    };
    writeFileSync(files.ca, ca.certPem);
    writeFileSync(files.cert, serving.certPem);
    writeFileSync(files.key, serving.keyPem, { mode: 0o600 });
    writeFileSync(files.kubeletClientCert, kubeletClient.certPem);
    writeFileSync(files.kubeletClientKey, kubeletClient.keyPem, { mode: 0o600 });
    writeFileSync(files.saPub, saKeys.publicKeyPem);
    writeFileSync(files.saKey, saKeys.privateKeyPem, { mode: 0o600 });
    writeFileSync(files.webhookClientCa, webhookClientCa.certPem);
    writeFileSync(files.webhookClientCert, webhookClient.certPem);
    writeFileSync(files.webhookClientKey, webhookClient.keyPem, { mode: 0o600 });
    // '*' is the default entry: the certificate goes to every webhook, whatever its URL or Service.
    writeFileSync(
      files.webhookKubeconfig,
      ['apiVersion: v1', 'kind: Config', 'users:', "  - name: '*'", '    user:', `      client-certificate: ${files.webhookClientCert}`, `      client-key: ${files.webhookClientKey}`, ''].join('\n'),
      { mode: 0o600 },
    );
    const webhookAdmission = ['    configuration:', '      apiVersion: apiserver.config.k8s.io/v1', '      kind: WebhookAdmissionConfiguration', `      kubeConfigFile: ${files.webhookKubeconfig}`];
    writeFileSync(
      files.admissionConfig,
      ['apiVersion: apiserver.config.k8s.io/v1', 'kind: AdmissionConfiguration', 'plugins:', '  - name: ValidatingAdmissionWebhook', ...webhookAdmission, '  - name: MutatingAdmissionWebhook', ...webhookAdmission, ''].join('\n'),
    );
    this.adminTls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    const authorization = this.options.authorizer ? await this.writeAuthorizerFiles(dir, files) : undefined;

    const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort(bindAddress)];
    const server = `https://${bindAddress}:${apiPort}`;
    const issuer = 'https://kubernetes.default.svc.cluster.local';
    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(server, ca.certPem, admin), { mode: 0o600 });

    processes.spawn('etcd', join(assets, 'etcd'), [
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
    processes.spawn('kube-apiserver', join(assets, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--secure-port=${apiPort}`,
      `--bind-address=${bindAddress}`,
      `--advertise-address=${bindAddress}`,
      `--tls-cert-file=${files.cert}`,
      `--tls-private-key-file=${files.key}`,
      `--client-ca-file=${files.ca}`,
      ...(authorization ? [`--authorization-config=${authorization.configFile}`] : ['--authorization-mode=Node,RBAC']),
      '--enable-admission-plugins=NodeRestriction',
      `--admission-control-config-file=${files.admissionConfig}`,
      `--kubelet-client-certificate=${files.kubeletClientCert}`,
      `--kubelet-client-key=${files.kubeletClientKey}`,
      `--kubelet-certificate-authority=${files.ca}`,
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      `--service-account-issuer=${issuer}`,
      `--service-account-key-file=${files.saPub}`,
      `--service-account-signing-key-file=${files.saKey}`,
      `--service-cluster-ip-range=${serviceCidr}`,
      '--allow-privileged=true',
      `--profiling=${this.options.profiling === true}`,
      // Without a node (make bench) the API server stays on loopback, which Kubernetes 1.37
      // refuses to advertise in the `kubernetes` Service's endpoints; no pod would use them.
      ...(bindAddress.startsWith('127.') ? ['--endpoint-reconciler-type=none'] : []),
      '--v=1',
    ]);
    if (authorization) processes.spawn(authzRelay, process.execPath, [join(repoRoot(), 'hack', 'authz-relay.mjs'), String(authorization.relayPort), authzFiles(dir).target]);
    this.info = { kubeconfigPath, server, caPem: ca.certPem, issuer };
    const timeout = this.options.startTimeoutMs ?? 60_000;
    await processes.waitFor(() => this.apiGet('/readyz').then((r) => r.status === 200), 'kube-apiserver /readyz', timeout);
    // Every default controller a user relies on (deployments, replicasets, jobs, node lifecycle,
    // garbage collection, service accounts, namespaces, endpoints, root CA publishing, ...).
    processes.spawn('kube-controller-manager', join(assets, 'kube-controller-manager'), [
      `--kubeconfig=${kubeconfigPath}`,
      `--root-ca-file=${files.ca}`,
      `--service-cluster-ip-range=${serviceCidr}`,
      // Its default is under /usr/libexec, which it would create on the host.
      `--flex-volume-plugin-dir=${join(dir, 'flexvolume')}`,
      '--secure-port=0',
      '--leader-elect=false',
      '--v=1',
    ]);
    processes.spawn('kube-scheduler', join(assets, 'kube-scheduler'), [
      `--kubeconfig=${kubeconfigPath}`,
      `--authentication-kubeconfig=${kubeconfigPath}`,
      `--authorization-kubeconfig=${kubeconfigPath}`,
      '--secure-port=0',
      '--leader-elect=false',
      '--v=1',
    ]);
    await processes.waitFor(
      () => this.apiGet('/api/v1/namespaces/default/serviceaccounts/default').then((r) => r.status === 200),
      'the default/default ServiceAccount',
      timeout,
    );
    return this.info;
  }

  /**
   * The authorizer's serving certificate (from a CA of its own, named in the API server's
   * kubeconfig for it), that kubeconfig, and the AuthorizationConfiguration.
   */
  private async writeAuthorizerFiles(dir: string, client: { webhookClientCert: string; webhookClientKey: string }): Promise<{ configFile: string; relayPort: number }> {
    const files = authzFiles(dir);
    const authority = await CertificateAuthority.create('taskgrant-authz-ca', 365 * day);
    const serving = await authority.issue({ commonName: 'taskgrant-authz', dnsNames: ['localhost', 'taskgrant-authz'], ipAddresses: ['127.0.0.1'], usage: 'server', validityMs: 365 * day });
    mkdirSync(files.tlsDir, { recursive: true });
    writeFileSync(files.ca, authority.certPem);
    writeFileSync(join(files.tlsDir, 'tls.crt'), serving.certPem);
    writeFileSync(join(files.tlsDir, 'tls.key'), serving.keyPem, { mode: 0o600 });
    const relayPort = await freePort();
    const kubeconfig = join(dir, 'pki', 'authz-webhook.kubeconfig');
    writeFileSync(kubeconfig, authzKubeconfig(`https://127.0.0.1:${relayPort}/authorize`, files.ca, client.webhookClientCert, client.webhookClientKey), { mode: 0o600 });
    const configFile = join(dir, 'pki', 'authorization-config.yaml');
    writeFileSync(configFile, authorizationConfiguration(kubeconfig));
    return { configFile, relayPort };
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

  /** Stops every component started by this object or recorded in the pid directory. */
  async stop(): Promise<void> {
    await stopControlPlane(this.pidDir);
  }
}

/** Stops the control-plane processes recorded under `pidDir`, etcd last. */
export function stopControlPlane(pidDir: string): Promise<void> {
  return stopFromPidDir(pidDir, [authzRelay, ...[...controlPlaneComponents].reverse()]);
}

/** True when every control-plane component recorded under `pidDir` is still running. */
export function controlPlaneRunning(pidDir: string): boolean {
  return allRunning(pidDir, controlPlaneComponents);
}

/**
 * Where a cluster directory keeps the API server's webhook client certificate and its CA: the
 * operator trusts the CA (--webhook-client-ca); tests that play the API server use the pair.
 */
export function webhookClientFiles(clusterDir: string): { webhookClientCa: string; webhookClientCert: string; webhookClientKey: string } {
  const pki = join(clusterDir, 'pki');
  return { webhookClientCa: join(pki, 'webhook-client-ca.crt'), webhookClientCert: join(pki, 'webhook-client.crt'), webhookClientKey: join(pki, 'webhook-client.key') };
}

/**
 * Where a cluster directory keeps the authorizer's serving certificate (`tlsDir`, for the
 * operator's --authz-tls-dir), its CA, and the file the relay reads its target from.
 */
export function authzFiles(clusterDir: string): { tlsDir: string; ca: string; target: string } {
  const pki = join(clusterDir, 'pki');
  return { tlsDir: join(pki, 'authz-tls'), ca: join(pki, 'authz-ca.crt'), target: join(clusterDir, 'authz-target') };
}

/** The kubeconfig the API server calls the authorizer with: its URL and CA, and the API server's client certificate. */
export function authzKubeconfig(url: string, caFile: string, clientCert: string, clientKey: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: taskgrant-authz',
    `    cluster: { server: "${url}", certificate-authority: ${caFile} }`,
    'users:',
    '  - name: kube-apiserver',
    `    user: { client-certificate: ${clientCert}, client-key: ${clientKey} }`,
    'contexts:',
    '  - name: taskgrant-authz',
    '    context: { cluster: taskgrant-authz, user: kube-apiserver }',
    'current-context: taskgrant-authz',
    '',
  ].join('\n');
}

/**
 * Node, then taskgrant for `tg-*` ServiceAccounts only, then RBAC (the same file README,
 * "Request time", gives a self-managed cluster). taskgrant answers deny or no opinion, so
 * whatever it passes RBAC must still allow. Unauthorized answers are not cached: a revocation
 * or a spent budget holds on the very next request.
 */
export function authorizationConfiguration(kubeconfig: string): string {
  return [
    'apiVersion: apiserver.config.k8s.io/v1',
    'kind: AuthorizationConfiguration',
    'authorizers:',
    '  - type: Node',
    '    name: node',
    '  - type: Webhook',
    '    name: taskgrant',
    '    webhook:',
    '      timeout: 3s',
    '      subjectAccessReviewVersion: v1',
    '      matchConditionSubjectAccessReviewVersion: v1',
    '      failurePolicy: Deny',
    '      cacheAuthorizedRequests: false',
    '      cacheUnauthorizedRequests: false',
    '      connectionInfo:',
    '        type: KubeConfigFile',
    `        kubeConfigFile: ${kubeconfig}`,
    '      matchConditions:',
    "        - expression: \"request.user.matches('^system:serviceaccount:[^:]+:tg-')\"",
    '  - type: RBAC',
    '    name: rbac',
    '',
  ].join('\n');
}
