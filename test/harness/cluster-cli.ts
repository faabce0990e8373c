// `make cluster-up` / `make cluster-down` / `make image`: the local cluster in the background,
// with its admin kubeconfig at .local/kubeconfig and pid files under .local/pids (the node's under
// /run/taskgrant-node/pids); the project's images built and loaded into its node.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { clusterRunning, containerdDir, startCluster, stopCluster } from './cluster.js';
import { loadImage, nodeRunning } from './node.js';
import { kubeAssets, repoRoot } from './paths.js';
import { buildDemoAgentImage, buildOperatorImage, demoAgentImage, imageArchive, operatorImage } from './project-images.js';

const dir = join(repoRoot(), '.local');

async function up(): Promise<void> {
  const kubeconfig = join(dir, 'kubeconfig');
  // The walkthrough's pods run the demo agent: build it (cheap) before the node starts.
  const demo = await buildDemoAgentImage();
  if (clusterRunning(dir) && existsSync(kubeconfig)) {
    loadImage(join(containerdDir(), 'ctr'), demo);
    console.log(`cluster already running; KUBECONFIG=${kubeconfig}`);
    return;
  }
  await stopCluster(dir); // a partial set from a crash: start clean
  const images = [demo, imageArchive(operatorImage)].filter((archive) => existsSync(archive));
  // Ctrl-C while it starts: take down what started, as cluster-down would.
  const abort = () => void stopCluster(dir).finally(() => process.exit(130));
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  const started = Date.now();
  const cluster = await startCluster({ dir, assets: kubeAssets(), mode: 'detached', images, authorizer: true });
  console.log(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${cluster.info.server}, node Ready; KUBECONFIG=${cluster.info.kubeconfigPath}`);
}

async function image(): Promise<void> {
  const archives = [await buildOperatorImage(), await buildDemoAgentImage()];
  for (const [name, archive] of [[operatorImage, archives[0]], [demoAgentImage, archives[1]]] as const) {
    console.log(`built ${name} (${archive})`);
  }
  if (nodeRunning()) {
    for (const archive of archives) loadImage(join(containerdDir(), 'ctr'), archive);
    console.log('loaded into the local node');
  } else {
    console.log('no local node is running: make cluster-up (or make run) loads them when it starts');
  }
}

const command = process.argv[2];
if (command === 'up') await up();
else if (command === 'down') await stopCluster(dir);
else if (command === 'image') await image();
else {
  console.error('usage: cluster-cli up|down|image');
  process.exit(2);
}
