// What every command receives: the injected IO, the global flags (kubectl's), and a lazily made
// API connection so that `check` and `--help` never touch a kubeconfig or load the client.
import type { Command } from 'commander';
import { dns1123Subdomain, type AgentTask } from '../api/index.js';
import type { CliConnection } from '../kube/tasks-client.js';
import { printable, type OutputFormat } from './format.js';
import { CliError, EXIT_ERROR, type CliIO } from './io.js';

export interface GlobalOptions {
  namespace?: string;
  allNamespaces?: boolean;
  output: OutputFormat;
  kubeconfig?: string;
  context?: string;
  v?: string;
}

export class CommandContext {
  #connection: CliConnection | undefined;
  exitCode = 0;

  constructor(
    readonly io: CliIO,
    /** The command being run; its options merged with the program's are the global flags. */
    private readonly command: () => Command,
  ) {}

  get globals(): GlobalOptions {
    return this.command().optsWithGlobals<GlobalOptions>();
  }

  now(): number {
    return this.io.now?.() ?? Date.now();
  }

  /** Everything printed goes through printable(): no field of a task can drive the terminal. */
  out(text: string): void {
    this.io.stdout(printable(text));
  }

  err(text: string): void {
    this.io.stderr(printable(text));
  }

  async connection(): Promise<CliConnection> {
    if (!this.#connection) {
      // Loaded on first use: @kubernetes/client-node takes most of a second to import, which
      // `check` and `--help` (and a CI job running check per file) should not pay.
      const { connect } = await import('../kube/tasks-client.js');
      const { kubeconfig, context } = this.globals;
      this.#connection = connect({ ...(kubeconfig ? { kubeconfig } : {}), ...(context ? { context } : {}) });
    }
    return this.#connection;
  }

  /** `-n`, else the kubeconfig context's namespace, else `default` (kubectl's order). */
  async namespace(): Promise<string> {
    return this.globals.namespace || (await this.connection()).namespace;
  }

  /** The named task in the current namespace, or a not-found error naming both. */
  async existingTask(name: string): Promise<{ namespace: string; client: CliConnection['client']; task: AgentTask }> {
    checkTaskName(name);
    const namespace = await this.namespace();
    const { client } = await this.connection();
    const task = await client.getTask(namespace, name);
    if (!task) throw notFound(name, namespace);
    return { namespace, client, task };
  }
}

/** A --reason is recorded for auditors: blank is refused. */
export function checkReason(reason: string): string {
  if (reason.trim().length === 0) throw new CliError('--reason must not be empty');
  return reason;
}

/** Refuses a name the API server would refuse anyway, before it can be spliced into a URL path. */
export function checkTaskName(name: string): string {
  if (!dns1123Subdomain(name)) throw new CliError(`"${name}" is not a valid AgentTask name (lowercase letters, digits, '-' and '.')`, EXIT_ERROR);
  return name;
}

export function notFound(name: string, namespace: string): CliError {
  return new CliError(`agenttask "${name}" not found in namespace "${namespace}"`);
}
