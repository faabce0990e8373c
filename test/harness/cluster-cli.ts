// `make cluster-up` / `make cluster-down`: the local control plane in the background, with its
// admin kubeconfig at .local/kubeconfig and pid files under .local/pids.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { allRunning, ControlPlane, stopFromPidDir } from './controlplane.js';
import { kubeAssets, repoRoot } from './paths.js';

const dir = join(repoRoot(), '.local');
const pidDir = join(dir, 'pids');

async function up(): Promise<void> {
  const kubeconfig = join(dir, 'kubeconfig');
  if (allRunning(pidDir) && existsSync(kubeconfig)) {
    console.log(`control plane already running; KUBECONFIG=${kubeconfig}`);
    return;
  }
  await stopFromPidDir(pidDir); // a partial set from a crash: start clean
  const plane = new ControlPlane({ dir, assets: kubeAssets(), mode: 'detached' });
  const abort = () => void plane.stop().finally(() => process.exit(130));
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  const started = Date.now();
  try {
    const info = await plane.start();
    console.log(`control plane up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${info.server}; KUBECONFIG=${info.kubeconfigPath}`);
  } catch (err) {
    await plane.stop();
    throw err;
  }
}

const command = process.argv[2];
if (command === 'up') await up();
else if (command === 'down') await stopFromPidDir(pidDir);
else {
  console.error('usage: cluster-cli up|down');
  process.exit(2);
}
