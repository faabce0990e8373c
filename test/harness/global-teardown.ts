import { rmSync } from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const started = globalThis.__taskgrantControlPlane;
  if (!started) return;
  await started.plane.stop();
  if (!process.env.TASKGRANT_KEEP_CONTROLPLANE) rmSync(started.dir, { recursive: true, force: true });
  globalThis.__taskgrantControlPlane = undefined;
}
