// `kubectl-taskgrant` as a process: argv and stdio in, exit code out. Everything else is in run.ts.
import { createInterface } from 'node:readline/promises';
import { text } from 'node:stream/consumers';
import { run } from './run.js';

/** y/N on the terminal; only offered when both ends are one (never for a pipe or a script). */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

// `kubectl taskgrant list | head -1` closes the pipe early; that is the reader's choice, not an
// error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));

// No top-level await: the single executable (src/packaging/plugin.ts) runs this module bundled
// as CommonJS, the only format Node 24's single-executable applications start.
void run(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readStdin: () => text(process.stdin),
  ...(process.stdin.isTTY && process.stderr.isTTY ? { confirm } : {}),
}).then((code) => {
  // Exit explicitly: a kept-alive HTTPS socket must not hold the command open. Waiting for stdout
  // to drain first keeps piped output (`| jq`) whole.
  process.stdout.write('', () => process.exit(code));
});
