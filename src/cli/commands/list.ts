// `kubectl taskgrant list`: the tasks of a namespace (or all) with what each holds and for how long.
import { Command } from 'commander';
import type { AgentTask } from '../../api/index.js';
import type { CommandContext } from '../context.js';
import { NONE, age, formatStructured, formatTable, remainingTtl, summarizePermissions } from '../format.js';

export const LIST_HEADERS = ['NAME', 'AGENT', 'PHASE', 'REMAINING', 'PERMISSIONS', 'REASON', 'AGE'] as const;

export function listRows(tasks: readonly AgentTask[], now: number, withNamespace: boolean): string[][] {
  return [...tasks]
    .sort((a, b) => a.metadata.namespace.localeCompare(b.metadata.namespace) || a.metadata.name.localeCompare(b.metadata.name))
    .map((t) => [
      ...(withNamespace ? [t.metadata.namespace] : []),
      t.metadata.name,
      t.spec?.agent ?? NONE,
      t.status?.phase ?? NONE,
      remainingTtl(t, now),
      summarizePermissions(t),
      t.status?.reason || NONE,
      age(t.metadata.creationTimestamp, now),
    ]);
}

export function listCommand(ctx: CommandContext): Command {
  return new Command('list')
    .alias('ls')
    .description('List AgentTasks with their phase, remaining grant time and permissions')
    .option('-l, --selector <selector>', 'label selector to filter on, e.g. app=triage')
    .action(async (options: { selector?: string }) => {
      const { allNamespaces, output } = ctx.globals;
      const namespace = allNamespaces ? undefined : await ctx.namespace();
      const tasks = await (await ctx.connection()).client.listTasks(namespace, options.selector);
      if (output !== 'table') {
        ctx.out(formatStructured(output, { apiVersion: 'v1', kind: 'List', items: tasks }));
        return;
      }
      if (tasks.length === 0) {
        // kubectl's wording, on stderr, so `| wc -l` counts only tasks.
        ctx.err(namespace ? `No resources found in ${namespace} namespace.\n` : 'No resources found\n');
        return;
      }
      const headers = allNamespaces ? ['NAMESPACE', ...LIST_HEADERS] : [...LIST_HEADERS];
      ctx.out(formatTable(headers, listRows(tasks, ctx.now(), allNamespaces === true)));
    });
}
