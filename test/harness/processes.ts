// The local cluster's processes: each started either tethered to this Node process (tests: a
// crashed run leaves no process behind) or detached and tracked by a pid file (`make cluster-up`),
// with its output in a log file of its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

export type RunMode = 'tethered' | 'detached';

const tether = join(repoRoot(), 'test', 'harness', 'tether.sh');

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Processes {
  private readonly children = new Map<string, ChildProcess>();

  constructor(private readonly options: { logDir: string; pidDir: string; mode: RunMode }) {
    mkdirSync(options.logDir, { recursive: true });
    mkdirSync(options.pidDir, { recursive: true });
  }

  logFile(name: string): string {
    return join(this.options.logDir, `${name}.log`);
  }

  spawn(name: string, binary: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
    const log = openSync(this.logFile(name), 'a');
    const child =
      this.options.mode === 'tethered'
        ? spawn('bash', [tether, String(process.pid), binary, ...args], { stdio: ['ignore', log, log], env })
        : spawn(binary, args, { stdio: ['ignore', log, log], detached: true, env });
    closeSync(log);
    if (this.options.mode === 'detached') child.unref();
    child.on('exit', () => this.children.delete(name));
    this.children.set(name, child);
    writeFileSync(join(this.options.pidDir, `${name}.pid`), `${child.pid}\n`);
  }

  /** Polls `check` until it holds; fails at once, naming the log, if a process exits meanwhile. */
  async waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      for (const [name, child] of this.children) {
        if (child.exitCode != null) {
          throw new Error(`${name} exited with ${child.exitCode} while waiting for ${what}; see ${this.logFile(name)}`);
        }
      }
      try {
        if (await check()) return;
      } catch (err) {
        lastError = err;
      }
      await sleep(200);
    }
    throw new Error(`timed out waiting for ${what}`, { cause: lastError });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function recordedPid(pidDir: string, name: string): number | undefined {
  const file = join(pidDir, `${name}.pid`);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Stops the processes recorded under `pidDir`, in the order given (dependents first). */
export async function stopFromPidDir(pidDir: string, order: readonly string[]): Promise<void> {
  for (const name of order) {
    const pid = recordedPid(pidDir, name);
    if (pid !== undefined && alive(pid)) {
      process.kill(pid, 'SIGTERM');
      // Longer than tether.sh takes to stop its child (5 s), so a tether is never killed mid-way.
      const deadline = Date.now() + 12_000;
      while (alive(pid) && Date.now() < deadline) await sleep(100);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(join(pidDir, `${name}.pid`), { force: true });
  }
}

/** True when every process named is recorded under `pidDir` and still running. */
export function allRunning(pidDir: string, names: readonly string[]): boolean {
  return names.every((name) => {
    const pid = recordedPid(pidDir, name);
    return pid !== undefined && alive(pid);
  });
}

/** True when any process named is recorded under `pidDir` and still running. */
export function anyRunning(pidDir: string, names: readonly string[]): boolean {
  return names.some((name) => {
    const pid = recordedPid(pidDir, name);
    return pid !== undefined && alive(pid);
  });
}
