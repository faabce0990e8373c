// Starts one local cluster for the whole integration run, tethered to this process so a crashed
// or interrupted run leaves nothing behind (a janitor cleans the node's host state even after a
// SIGKILL). TASKGRANT_TEST_KUBECONFIG (set by this file, or by a developer pointing tests at
// `make cluster-up`'s cluster) tells the suites where it is.
//
// The node is tainted: only pods that tolerate `taskgrant.io/test-node` run on it (the e2e and
// chart suites). Every other suite moves its pods through their lifecycle by writing their
// status, as before, and an untolerated pod stays unscheduled so no kubelet contradicts it.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from './cluster.js';
import { testNodeTaint } from './node.js';
import { kubeAssets } from './paths.js';
import { demoAgentImage, imageArchive, operatorImage } from './project-images.js';

declare global {
  var __taskgrantCluster: { cluster: Cluster; dir: string } | undefined;
}

/**
 * The integration suites run against an API server that asks taskgrant's request-time
 * authorizer about task identities; the chart suites (global-setup-chart.ts) against one that
 * does not, as a managed cluster's would.
 */
export default async function globalSetup(options: { authorizer?: boolean } = {}): Promise<void> {
  if (process.env.TASKGRANT_TEST_KUBECONFIG) return;
  const authorizer = typeof options === 'object' && options.authorizer === false ? false : true;
  const dir = mkdtempSync(join(tmpdir(), 'taskgrant-it-'));
  const started = Date.now();
  const images = [operatorImage, demoAgentImage].map(imageArchive).filter((archive) => existsSync(archive));
  const cluster = await startCluster({ dir, assets: kubeAssets(), mode: 'tethered', images, taints: [testNodeTaint], authorizer });
  process.env.TASKGRANT_TEST_KUBECONFIG = cluster.info.kubeconfigPath;
  process.env.TASKGRANT_TEST_CONTROLPLANE_DIR = dir;
  globalThis.__taskgrantCluster = { cluster, dir };
  console.error(`\n[harness] cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s (${dir}; images: ${images.length}; authorization: ${authorizer ? 'Node, taskgrant, RBAC' : 'Node, RBAC'})`);
}
