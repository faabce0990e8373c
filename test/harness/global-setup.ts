// Starts one local control plane for the whole integration run, tethered to this process so a
// crashed or interrupted run leaves nothing behind. TASKGRANT_TEST_KUBECONFIG (set by this file,
// or by a developer pointing tests at `make cluster-up`'s cluster) tells the suites where it is.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane } from './controlplane.js';
import { kubeAssets } from './paths.js';

declare global {
  var __taskgrantControlPlane: { plane: ControlPlane; dir: string } | undefined;
}

export default async function globalSetup(): Promise<void> {
  if (process.env.TASKGRANT_TEST_KUBECONFIG) return;
  const dir = mkdtempSync(join(tmpdir(), 'taskgrant-it-'));
  const plane = new ControlPlane({ dir, assets: kubeAssets(), mode: 'tethered' });
  const started = Date.now();
  const info = await plane.start();
  process.env.TASKGRANT_TEST_KUBECONFIG = info.kubeconfigPath;
  process.env.TASKGRANT_TEST_CONTROLPLANE_DIR = dir;
  globalThis.__taskgrantControlPlane = { plane, dir };
  console.error(`\n[harness] control plane up in ${((Date.now() - started) / 1000).toFixed(1)} s (${dir})`);
}
