// `kubectl taskgrant revoke TASK --reason R`: the manual revocation annotation (CONTRACT.md). The
// operator deletes the grant's objects when it sees it; the CLI only asks.
import { Command } from 'commander';
import { ANNOTATION_REVOKE, isTerminal } from '../../api/index.js';
import { checkReason, checkTaskName, type CommandContext } from '../context.js';
import { formatStructured } from '../format.js';

export function revokeCommand(ctx: CommandContext): Command {
  return new Command('revoke')
    .description(`End a task's grant now (sets the ${ANNOTATION_REVOKE} annotation; the operator deletes its ServiceAccount, Roles and RoleBindings)`)
    .argument('<task>', 'name of the AgentTask')
    .requiredOption('--reason <reason>', 'why (recorded in the annotation, the task status and an Event)')
    .action(async (name: string, options: { reason: string }) => {
      checkTaskName(name);
      checkReason(options.reason);
      const { namespace, client, task } = await ctx.existingTask(name);
      if (isTerminal(task.status?.phase)) {
        // Terminal phases never change (CONTRACT.md), so the annotation would be a false record.
        ctx.err(`agenttask "${name}" in namespace "${namespace}" is already ${task.status?.phase}; nothing to revoke\n`);
        return;
      }
      const patched = await client.annotateTask(namespace, name, { [ANNOTATION_REVOKE]: options.reason });
      const { output } = ctx.globals;
      if (output !== 'table') {
        ctx.out(formatStructured(output, patched));
        return;
      }
      ctx.out(`agenttask.taskgrant.io/${name} revocation requested: ${JSON.stringify(options.reason)}\n`);
    });
}
