// `kubectl taskgrant revoke TASK --reason R`: the manual revocation annotation. The operator
// deletes the grant's objects when it sees it; the CLI only asks. `--all` asks for every live task
// of the namespace (or of the cluster with -A); `--wait` stays until the operator has revoked them,
// which is how the chart's uninstall hook makes sure no grant outlives the operator.
import { Command, InvalidArgumentError } from 'commander';
import { ANNOTATION_REVOKE, FINALIZER, isTerminal, parseDurationSeconds, type AgentTask } from '../../api/index.js';
import { checkReason, checkTaskName, type CommandContext } from '../context.js';
import { formatStructured } from '../format.js';
import { CliError } from '../io.js';

function waitSeconds(value: string): number {
  const seconds = parseDurationSeconds(value);
  if (seconds === undefined || seconds <= 0) throw new InvalidArgumentError('must be a duration such as 90s or 2m');
  return seconds;
}

const taskRef = (t: AgentTask) => `${t.metadata.namespace}/${t.metadata.name}`;

export function revokeCommand(ctx: CommandContext): Command {
  return new Command('revoke')
    .description(`End a task's grant now (sets the ${ANNOTATION_REVOKE} annotation; the operator deletes its ServiceAccount, Roles and RoleBindings)`)
    .argument('[task]', 'name of the AgentTask (or --all)')
    .requiredOption('--reason <reason>', 'why (recorded in the annotation, the task status and an Event)')
    .option('--all', 'every live task of the namespace (with -A: of the cluster)')
    .option('--wait <duration>', 'wait until the operator has revoked them (objects deleted); fail naming those not yet revoked after this long', waitSeconds)
    .action(async (name: string | undefined, options: { reason: string; all?: boolean; wait?: number }) => {
      checkReason(options.reason);
      if ((name === undefined) === (options.all !== true)) throw new CliError('name one task, or pass --all');
      const targets = name !== undefined ? await oneTask(ctx, name) : await liveTasks(ctx);
      if (targets.length === 0) return;
      const { client } = await ctx.connection();
      const patched = await Promise.all(targets.map((t) => client.annotateTask(t.metadata.namespace ?? '', t.metadata.name, { [ANNOTATION_REVOKE]: options.reason })));
      const { output } = ctx.globals;
      if (output !== 'table' && name !== undefined) ctx.out(formatStructured(output, patched[0]));
      else for (const t of patched) ctx.out(`agenttask.taskgrant.io/${t.metadata.name} revocation requested: ${JSON.stringify(options.reason)}\n`);
      if (options.wait !== undefined) await waitUntilRevoked(ctx, patched, options.wait);
    });
}

async function oneTask(ctx: CommandContext, name: string): Promise<AgentTask[]> {
  checkTaskName(name);
  const { namespace, task } = await ctx.existingTask(name);
  if (isTerminal(task.status?.phase)) {
    // Terminal phases never change, so the annotation would be a false record.
    ctx.err(`agenttask "${name}" in namespace "${namespace}" is already ${task.status?.phase}; nothing to revoke\n`);
    return [];
  }
  return [task];
}

async function liveTasks(ctx: CommandContext): Promise<AgentTask[]> {
  const namespace = ctx.globals.allNamespaces ? undefined : await ctx.namespace();
  const { client } = await ctx.connection();
  const live = (await client.listTasks(namespace)).filter((t) => !isTerminal(t.status?.phase));
  if (live.length === 0) ctx.err(`no live agenttasks ${namespace ? `in namespace "${namespace}"` : 'in any namespace'}; nothing to revoke\n`);
  return live;
}

/**
 * Whether the revocation asked of `asked` is still under way, seen as `now`. Done once the task is
 * terminal and the operator has let go of its finalizer, which it does only after the grant's
 * objects are deleted (the terminal status is written as the deletes start, not after them); or
 * once it is gone or replaced by another of the same name, which holds no grant of the one asked
 * about.
 */
export function stillRevoking(asked: AgentTask, now: AgentTask | undefined): boolean {
  if (now === undefined || now.metadata.uid !== asked.metadata.uid) return false;
  return !isTerminal(now.status?.phase) || (now.metadata.finalizers ?? []).includes(FINALIZER);
}

async function waitUntilRevoked(ctx: CommandContext, tasks: AgentTask[], seconds: number): Promise<void> {
  const { client } = await ctx.connection();
  const deadline = ctx.now() + seconds * 1000;
  let pending = tasks;
  for (;;) {
    const current = await Promise.all(pending.map((t) => client.getTask(t.metadata.namespace ?? '', t.metadata.name)));
    pending = pending.filter((t, i) => stillRevoking(t, current[i]));
    if (pending.length === 0) {
      ctx.out(`${tasks.length} agenttask(s) revoked\n`);
      return;
    }
    if (ctx.now() >= deadline) {
      throw new CliError(`not yet revoked after ${seconds}s (is the operator running?): ${pending.map(taskRef).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
