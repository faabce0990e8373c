// The operator as a real child process (dist/src/main.js), for tests that must SIGKILL it.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './controlplane.js';
import { eventually } from './kube.js';
import { repoRoot } from './paths.js';

export interface OperatorProcess {
  child: ChildProcess;
  healthPort: number;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function spawnOperator(args: { kubeconfig: string; namespace: string; logFile: string; extra?: string[]; env?: NodeJS.ProcessEnv }): Promise<OperatorProcess> {
  const root = repoRoot();
  const healthPort = await freePort();
  const log = openSync(args.logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      join(root, 'dist', 'src', 'main.js'),
      `--kubeconfig=${args.kubeconfig}`,
      `--namespace=${args.namespace}`,
      `--policy-dir=${join(root, 'policies')}`,
      `--health-port=${healthPort}`,
      '--webhook-port=0',
      '--log-level=debug',
      ...(args.extra ?? []),
    ],
    { stdio: ['ignore', log, log], cwd: root, env: { ...process.env, ...args.env } },
  );
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`operator exited with ${child.exitCode}; see ${args.logFile}`);
      const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined);
      return res?.status === 200;
    },
    'the operator process to be ready',
    30_000,
    100,
  );
  return {
    child,
    healthPort,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
