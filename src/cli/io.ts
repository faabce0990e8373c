// The plugin's contact with the outside world, injected so tests run it in-process, and the
// errors it turns into one-line messages and exit codes.
import { KubeError } from '../kube/api.js';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Reads all of standard input (`-f -`). */
  readStdin?(): Promise<string>;
  /** Milliseconds since the epoch; injected so durations in tests are exact. */
  now?(): number;
  /**
   * Asks a yes/no question on the terminal. Absent when there is no terminal (a pipe, CI, a
   * hook): then nothing can be confirmed, and commands that need a confirmation refuse.
   */
  confirm?(question: string): Promise<boolean>;
}

/** Exit codes. `check` relies on them to gate CI: 1 means "a task would not be granted". */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_ERROR = 2;

/** An error the user can act on, with the exit code it ends the run with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);

function messageOf(err: unknown): string {
  // A KubeError's message starts with `GET /apis/...: 403`; the API server's own sentence after
  // it already names the resource and the user, which is what a person needs.
  if (err instanceof KubeError) {
    const prefix = `${err.method} ${err.path}: ${err.status} `;
    return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
  }
  // Duck-typed, not `instanceof Error`: errors from node:fs and node:https may come from another
  // realm under jest's module sandbox.
  if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') return (err as { message: string }).message;
  return String(err);
}

function causeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { cause?: unknown }).cause : undefined;
}

function codeOf(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** The error and its causes on one line: `reading the kubeconfig /x: ENOENT: no such file...`. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && parts.length < 6; e = causeOf(e)) {
    const message = messageOf(e);
    if (codeOf(e) && NETWORK_CODES.has(codeOf(e) ?? '') && parts.length === 0) parts.push('cannot reach the Kubernetes API server');
    if (!parts.includes(message)) parts.push(message);
  }
  return parts.join(': ').replace(/\s*\n\s*/g, ' ');
}

/** The stack of the error and of every cause, for `--v=debug`. */
export function describeErrorVerbose(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && parts.length < 6; e = causeOf(e)) {
    const stack = typeof e === 'object' && typeof (e as { stack?: unknown }).stack === 'string' ? (e as { stack: string }).stack : messageOf(e);
    parts.push(parts.length === 0 ? stack : `Caused by: ${stack}`);
  }
  return parts.join('\n');
}
