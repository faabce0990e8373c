import { rmSync } from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const started = globalThis.__taskgrantCluster;
  if (!started) return;
  await started.cluster.stop();
  if (!process.env.TASKGRANT_KEEP_CONTROLPLANE) rmSync(started.dir, { recursive: true, force: true });
  globalThis.__taskgrantCluster = undefined;
}
