// The plugin's entry point: argv in, exit code out, every byte through the injected writers, so
// tests run it in-process and main.ts is only process wiring.
import { Command, CommanderError, Option } from 'commander';
import { decisionCommand } from './commands/approve.js';
import { checkCommand } from './commands/check.js';
import { explainCommand } from './commands/explain.js';
import { listCommand } from './commands/list.js';
import { revokeCommand } from './commands/revoke.js';
import { CommandContext, type GlobalOptions } from './context.js';
import { OUTPUT_FORMATS, printable } from './format.js';
import { CliError, EXIT_ERROR, EXIT_FAILURE, EXIT_OK, describeError, describeErrorVerbose, type CliIO } from './io.js';

export type { CliIO } from './io.js';

/** `--v=debug`, or a kubectl-style level of 4 and up, prints stack traces with their causes. */
function debugLevel(v: string | undefined): boolean {
  const level = (v ?? '').replace(/^=/, '');
  return level === 'debug' || (Number.isFinite(Number(level)) && Number(level) >= 4);
}

export function buildProgram(ctx: CommandContext, io: CliIO): Command {
  const program = new Command('kubectl taskgrant')
    .description('Inspect and decide taskgrant AgentTasks: just-in-time, task-scoped credentials for AI agents')
    .addOption(new Option('-n, --namespace <namespace>', 'namespace of the tasks (default: the kubeconfig context\'s, else "default")'))
    .addOption(new Option('-A, --all-namespaces', 'list tasks in every namespace'))
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'))
    .addOption(new Option('--kubeconfig <path>', 'path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config)'))
    .addOption(new Option('--context <name>', 'kubeconfig context to use'))
    .addOption(new Option('-v, --v <level>', 'log level; "debug" (or 4 and up) prints stack traces on errors').default('0'))
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      // One line, kubectl's capitalisation, and where to look next.
      outputError: (s, write) => write(`${s.replace(/^error: /, 'Error: ').trimEnd()}\nSee 'kubectl taskgrant --help' for usage.\n`),
    })
    .showSuggestionAfterError(true)
    .exitOverride();

  for (const sub of [listCommand(ctx), explainCommand(ctx), decisionCommand(ctx, 'Approve'), decisionCommand(ctx, 'Deny'), revokeCommand(ctx), checkCommand(ctx)]) {
    // addCommand() does not pass the parent's settings on (only .command() does): without this a
    // subcommand would print to the real stdout and call process.exit on --help.
    sub.copyInheritedSettings(program);
    program.addCommand(sub);
  }
  program.addHelpText(
    'after',
    `
Examples:
  kubectl taskgrant list -A
  kubectl taskgrant explain summarize-errors -n team-a
  kubectl taskgrant approve summarize-errors -n team-a --reason "on-call approved INC-1234"
  kubectl taskgrant revoke summarize-errors -n team-a --reason "incident closed"
  kubectl taskgrant check -f task.yaml --policy-dir policies
`,
  );
  return program;
}

/**
 * kubectl (pflag) accepts `-n=team-a` and `-o=json`; commander would read the value as `=team-a`.
 * Everything after `--` is left alone.
 */
export function normalizeArgs(argv: readonly string[]): string[] {
  const end = argv.indexOf('--');
  const flags = end < 0 ? argv : argv.slice(0, end);
  const rest = end < 0 ? [] : argv.slice(end);
  return [...flags.flatMap((a) => (/^-[a-zA-Z]=/.test(a) ? [a.slice(0, 2), a.slice(3)] : [a])), ...rest];
}

export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  let current: Command | undefined;
  const ctx = new CommandContext(io, () => current ?? program);
  const program = buildProgram(ctx, io);
  program.hook('preAction', (_program, action) => {
    current = action;
  });
  try {
    await program.parseAsync(normalizeArgs(argv), { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and `help` end here too; commander has already printed what it had to say.
      return err.exitCode === 0 ? EXIT_OK : EXIT_ERROR;
    }
    const command = current ?? program;
    const globals = command.optsWithGlobals<GlobalOptions>();
    io.stderr(printable(debugLevel(globals.v) ? `${describeErrorVerbose(err)}\n` : `Error: ${describeError(err)}\n`));
    if (err instanceof CliError) return err.exitCode;
    // `check` promises 2 for anything it could not check; elsewhere kubectl's 1.
    return command.name() === 'check' ? EXIT_ERROR : EXIT_FAILURE;
  }
}
