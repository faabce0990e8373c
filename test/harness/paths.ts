import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, whether this runs from test/ (ts-jest) or from dist/test/ (compiled). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'Makefile'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('repository root (Makefile) not found');
    dir = parent;
  }
  return dir;
}

/** Directory with the control-plane binaries: KUBEBUILDER_ASSETS, as make exports it. */
export function kubeAssets(): string {
  const assets = process.env.KUBEBUILDER_ASSETS;
  if (!assets) throw new Error('KUBEBUILDER_ASSETS is not set; run through make, or point it at etcd/kube-apiserver/kube-controller-manager');
  return assets;
}
