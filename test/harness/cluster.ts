// The local cluster: the control plane and, where this machine allows (root, the node's
// toolchain built), a real node. Used by the test harness (tethered to the test run) and by
// `make cluster-up` / `make cluster-down` (detached, tracked by pid files).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlane, controlPlaneRunning, stopControlPlane, type ControlPlaneInfo } from './controlplane.js';
import { cleanNode, createBridge, LocalNode, nodeLayout, nodeRunning, startJanitor } from './node.js';
import type { RunMode } from './processes.js';

export interface ClusterOptions {
  dir: string;
  assets: string;
  mode: RunMode;
  /** Start a node (default: true). */
  node?: boolean;
  containerdDir?: string;
  /** OCI archives loaded into the node. */
  images?: string[];
  taints?: { key: string; value: string; effect: 'NoSchedule' | 'NoExecute' }[];
  profiling?: boolean;
  startTimeoutMs?: number;
  /** Configure the API server to ask taskgrant's request-time authorizer (ControlPlaneOptions.authorizer). */
  authorizer?: boolean;
}

export interface Cluster {
  info: ControlPlaneInfo;
  plane: ControlPlane;
  /** True when pods can run here. */
  hasNode: boolean;
  stop(): Promise<void>;
}

/** The containerd build hack/toolchain.sh made (make exports its directory). */
export function containerdDir(): string {
  const dir = process.env.TASKGRANT_CONTAINERD;
  if (!dir || !existsSync(join(dir, 'containerd'))) throw new Error('TASKGRANT_CONTAINERD is not set up; run through make (hack/toolchain.sh containerd)');
  return dir;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const withNode = options.node ?? true;
  if (withNode && nodeRunning()) {
    throw new Error(`a local node is already running on this machine (pid files under ${nodeLayout.run}/pids); stop it with make cluster-down, or point the tests at it with TASKGRANT_TEST_KUBECONFIG=.local/kubeconfig`);
  }
  let janitor: { stop(): void } | undefined;
  if (withNode) {
    cleanNode(); // whatever a killed run left behind
    if (options.mode === 'tethered') janitor = startJanitor(process.pid);
    createBridge();
  }
  const plane = new ControlPlane({
    dir: options.dir,
    assets: options.assets,
    mode: options.mode,
    bindAddress: withNode ? nodeLayout.gateway : '127.0.0.1',
    profiling: options.profiling,
    startTimeoutMs: options.startTimeoutMs,
    authorizer: options.authorizer,
  });
  const stop = async () => {
    // The API server first: its own loopback client speaks to the bridge address, and without
    // it its shutdown stalls. The node's processes then meet an API server that is gone.
    await plane.stop();
    if (withNode) cleanNode();
    janitor?.stop();
  };
  try {
    const info = await plane.start();
    if (withNode) {
      const authority = plane.authority;
      if (!authority) throw new Error('control plane started without a CA');
      await new LocalNode({
        assets: options.assets,
        containerdDir: options.containerdDir ?? containerdDir(),
        mode: options.mode,
        server: info.server,
        authority,
        images: options.images,
        taints: options.taints,
        startTimeoutMs: options.startTimeoutMs,
        ready: async (name) => {
          const res = await plane.apiGet(`/api/v1/nodes/${name}`);
          if (res.status !== 200) return false;
          const node = JSON.parse(res.body) as { status?: { conditions?: { type: string; status: string }[] } };
          return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
        },
      }).start();
    }
    return { info, plane, hasNode: withNode, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Stops a detached cluster from its pid files and cleans the node's host state. */
export async function stopCluster(dir: string): Promise<void> {
  await stopControlPlane(join(dir, 'pids'));
  cleanNode();
}

export function clusterRunning(dir: string): boolean {
  return controlPlaneRunning(join(dir, 'pids')) && nodeRunning();
}
