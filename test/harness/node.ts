// A real node for the local cluster: containerd 2 + runc + the CNI bridge plugin, the kubelet
// (authenticated as system:node:<name>) and kube-proxy. One per machine: its directories, pod
// bridge and iptables chains are fixed, and hack/node-clean.sh undoes all of it (processes,
// mounts, cgroups, iptables, the bridge, sysctls, files), also after a killed run.
//
// What this machine needs that a laptop does not (cgroup v1, no CAP_SYS_RESOURCE) is set here
// and explained where it is set.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CertificateAuthority } from '../../src/webhook/certs.js';
import { kubeconfigYaml } from './controlplane.js';
import { pauseArchive, pauseImage } from './project-images.js';
import { repoRoot } from './paths.js';
import { anyRunning, freePort, Processes, type RunMode } from './processes.js';

const day = 24 * 3600 * 1000;

/** Fixed, because kube-proxy's iptables chains are machine-wide anyway: one node per machine. */
export const nodeLayout = {
  name: 'taskgrant-node',
  state: '/var/lib/taskgrant-node',
  run: '/run/taskgrant-node',
  bridge: 'tg0',
  podCidr: '10.213.0.0/24',
  /** The bridge's own address: the node's InternalIP, and where the API server listens. */
  gateway: '10.213.0.1',
  sysctlsSaved: '/run/taskgrant-node.sysctl',
} as const;

/** The test node's taint: only pods of suites that mean to run for real tolerate it. */
export const testNodeTaint = { key: 'taskgrant.io/test-node', value: 'real-pods', effect: 'NoSchedule' as const };

export const nodeComponents = ['kube-proxy', 'kubelet', 'containerd'] as const;
const pidDir = join(nodeLayout.run, 'pids');
const containerdSocket = join(nodeLayout.run, 'containerd', 'containerd.sock');

// Set by the kubelet (kernel defaults it insists on), kube-proxy and the bridge plugin; saved
// before the node first starts and restored by hack/node-clean.sh.
const touchedSysctls = [
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.route_localnet',
  'net.bridge.bridge-nf-call-iptables',
  'net.netfilter.nf_conntrack_max',
  'net.netfilter.nf_conntrack_tcp_timeout_established',
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait',
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
];

export interface NodeOptions {
  assets: string;
  containerdDir: string;
  mode: RunMode;
  server: string;
  authority: CertificateAuthority;
  /** Taints the node registers with (the test node keeps pods off it unless they tolerate). */
  taints?: { key: string; value: string; effect: 'NoSchedule' | 'NoExecute' }[];
  /** OCI archives to load into the node's image store. */
  images?: string[];
  /** Whether the node reports Ready (asked of the API server by the caller). */
  ready: (name: string) => Promise<boolean>;
  startTimeoutMs?: number;
}

function run(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Removes everything a node left on this machine; safe to run at any time. */
export function cleanNode(): void {
  execFileSync('bash', [join(repoRoot(), 'hack', 'node-clean.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
}

export function nodeRunning(): boolean {
  return anyRunning(pidDir, nodeComponents);
}

/**
 * Leaves a process behind that runs hack/node-clean.sh once `parentPid` is gone, so a test run
 * that is killed (or Ctrl-C'd past its teardown) still leaves the machine as it found it. It is
 * in a session of its own, so the terminal's Ctrl-C does not reach it.
 */
export function startJanitor(parentPid: number): { stop(): void } {
  const script = `while kill -0 ${parentPid} 2>/dev/null; do sleep 0.5; done; exec bash ${JSON.stringify(join(repoRoot(), 'hack', 'node-clean.sh'))}`;
  const janitor = spawn('bash', ['-c', script], { detached: true, stdio: 'ignore' });
  janitor.unref();
  return { stop: () => void (janitor.exitCode === null && janitor.kill('SIGKILL')) };
}

function saveSysctls(): void {
  if (existsSync(nodeLayout.sysctlsSaved)) return; // saved by a run that never cleaned up: those are the originals
  const lines = touchedSysctls.flatMap((key) => {
    try {
      return [`${key}=${run('sysctl', ['-n', key]).trim()}`];
    } catch {
      return []; // not present on this kernel
    }
  });
  writeFileSync(nodeLayout.sysctlsSaved, `${lines.join('\n')}\n`);
}

/** The pod bridge with the gateway address, before the API server binds to it. */
export function createBridge(): void {
  if (process.getuid?.() !== 0) throw new Error('the local node needs root (it creates a bridge, mounts and cgroups)');
  saveSysctls();
  const { bridge, gateway, podCidr } = nodeLayout;
  const prefix = podCidr.split('/')[1];
  try {
    run('ip', ['link', 'show', bridge]);
  } catch {
    run('ip', ['link', 'add', bridge, 'type', 'bridge']);
  }
  if (!run('ip', ['-4', 'addr', 'show', 'dev', bridge]).includes(`${gateway}/`)) run('ip', ['addr', 'add', `${gateway}/${prefix}`, 'dev', bridge]);
  run('ip', ['link', 'set', bridge, 'up']);
}

function containerdConfig(cniConfDir: string): string {
  const { state, run: runDir } = nodeLayout;
  return `version = 3
root = "${join(state, 'containerd')}"
state = "${join(runDir, 'containerd')}"

[grpc]
  address = "${containerdSocket}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${pauseImage}"

[plugins."io.containerd.cri.v1.runtime"]
  # This machine lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below its own, and every
  # sandbox would fail with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "${cniConfDir}"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = false
`;
}

function cniConfig(): string {
  const { bridge, podCidr, gateway, run: runDir } = nodeLayout;
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'taskgrant',
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        // Pods only talk to this machine (the API server on the gateway, each other): no NAT rules.
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: podCidr, gateway }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(runDir, 'cni-ipam') },
      },
    ],
  });
}

function kubeletConfig(files: { ca: string; cert: string; key: string }, ports: { port: number; healthz: number }, taints: NodeOptions['taints']): string {
  const { state, gateway } = nodeLayout;
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: gateway,
    port: ports.port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: ports.healthz,
    tlsCertFile: files.cert,
    tlsPrivateKeyFile: files.key,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: files.ca } },
    authorization: { mode: 'Webhook' },
    containerRuntimeEndpoint: `unix://${containerdSocket}`,
    // This machine mounts cgroup v1 hierarchies; the kubelet still supports them when asked.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    failSwapOn: false,
    enforceNodeAllocatable: [],
    // Images are loaded here, never pulled: garbage-collecting one would strand its pods.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    podLogsDir: join(state, 'pod-logs'),
    volumePluginDir: join(state, 'volume-plugins'),
    clusterDomain: 'cluster.local',
    resolvConf: '',
    registerWithTaints: taints ?? [],
    // Status reaches the API server quickly: tests and users wait on it.
    nodeStatusReportFrequency: '10s',
    serializeImagePulls: false,
  });
}

export function loadImage(ctr: string, archive: string): void {
  run(ctr, ['--address', containerdSocket, '-n', 'k8s.io', 'images', 'import', archive]);
}

export class LocalNode {
  private processes?: Processes;

  constructor(private readonly options: NodeOptions) {}

  async start(): Promise<void> {
    const { assets, containerdDir, mode, server, authority } = this.options;
    const { state, run: runDir, name, gateway, podCidr } = nodeLayout;
    const dirs = { pki: join(state, 'pki'), cni: join(state, 'cni'), kubelet: join(state, 'kubelet') };
    for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
    const processes = new Processes({ logDir: join(state, 'logs'), pidDir, mode });
    this.processes = processes;
    const timeout = this.options.startTimeoutMs ?? 60_000;

    const issue = async (file: string, spec: Parameters<CertificateAuthority['issue']>[0]) => {
      const cert = await authority.issue(spec);
      writeFileSync(join(dirs.pki, `${file}.crt`), cert.certPem);
      writeFileSync(join(dirs.pki, `${file}.key`), cert.keyPem, { mode: 0o600 });
      return cert;
    };
    writeFileSync(join(dirs.pki, 'ca.crt'), authority.certPem);
    // The Node authorizer and NodeRestriction know a kubelet by this name and group.
    const kubeletUser = await issue('kubelet-client', { commonName: `system:node:${name}`, organizations: ['system:nodes'], usage: 'client', validityMs: 365 * day });
    await issue('kubelet-serving', { commonName: name, dnsNames: [name], ipAddresses: [gateway], usage: 'server', validityMs: 365 * day });
    // kube-proxy's built-in binding (system:node-proxier) names this user.
    const proxyUser = await issue('kube-proxy', { commonName: 'system:kube-proxy', usage: 'client', validityMs: 365 * day });
    const kubeletKubeconfig = join(state, 'kubelet.kubeconfig');
    const proxyKubeconfig = join(state, 'kube-proxy.kubeconfig');
    writeFileSync(kubeletKubeconfig, kubeconfigYaml(server, authority.certPem, kubeletUser, 'kubelet'), { mode: 0o600 });
    writeFileSync(proxyKubeconfig, kubeconfigYaml(server, authority.certPem, proxyUser, 'kube-proxy'), { mode: 0o600 });

    // containerd: its shims and runc must be on PATH.
    const containerdConfigFile = join(state, 'containerd.toml');
    writeFileSync(containerdConfigFile, containerdConfig(dirs.cni));
    writeFileSync(join(dirs.cni, '10-taskgrant.conflist'), cniConfig());
    mkdirSync(join(runDir, 'containerd'), { recursive: true });
    const env = { ...process.env, PATH: `${containerdDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
    processes.spawn('containerd', join(containerdDir, 'containerd'), ['--config', containerdConfigFile, '--log-level', 'warn'], env);
    const ctr = join(containerdDir, 'ctr');
    await processes.waitFor(async () => existsSync(containerdSocket) && (run(ctr, ['--address', containerdSocket, 'version']), true), 'containerd', timeout);
    for (const archive of [await pauseArchive(), ...(this.options.images ?? [])]) loadImage(ctr, archive);

    const ports = { port: await freePort(gateway), healthz: await freePort() };
    const kubeletConfigFile = join(state, 'kubelet.json');
    writeFileSync(kubeletConfigFile, kubeletConfig({ ca: join(dirs.pki, 'ca.crt'), cert: join(dirs.pki, 'kubelet-serving.crt'), key: join(dirs.pki, 'kubelet-serving.key') }, ports, this.options.taints));
    processes.spawn('kubelet', join(assets, 'kubelet'), [
      `--config=${kubeletConfigFile}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--root-dir=${dirs.kubelet}`,
      `--cert-dir=${join(state, 'kubelet-certs')}`,
      `--hostname-override=${name}`,
      `--node-ip=${gateway}`,
      '--v=1',
    ], env);
    const proxyHealth = await freePort();
    const proxyMetrics = await freePort();
    processes.spawn('kube-proxy', join(assets, 'kube-proxy'), [
      `--kubeconfig=${proxyKubeconfig}`,
      `--hostname-override=${name}`,
      '--proxy-mode=iptables',
      `--cluster-cidr=${podCidr}`,
      // NodePorts only on the node's own (bridge) address, never the machine's interfaces.
      `--nodeport-addresses=${gateway}/32`,
      // Leave the machine's conntrack table size and timeouts as they are.
      '--conntrack-max-per-core=0',
      '--conntrack-tcp-timeout-established=0',
      '--conntrack-tcp-timeout-close-wait=0',
      `--healthz-bind-address=127.0.0.1:${proxyHealth}`,
      `--metrics-bind-address=127.0.0.1:${proxyMetrics}`,
      '--v=1',
    ], env);
    await processes.waitFor(() => this.options.ready(name), `node ${name} Ready`, timeout);
  }
}

