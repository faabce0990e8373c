// `kubectl taskgrant approve|deny TASK --reason R`: writes a TaskApproval naming the task's current
// uid. The admission webhook stamps the approver and checks (SubjectAccessReview) that the caller
// may approve; the CLI only writes what the user asked for, so it needs no extra privilege.
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { API_VERSION, TASK_APPROVAL_KIND, type AgentTask, type ApprovalDecision, type TaskApproval } from '../../api/index.js';
import { checkReason, checkTaskName, type CommandContext } from '../context.js';
import { formatStructured } from '../format.js';
import { CliError } from '../io.js';

/** Phases in which the operator still reads approvals; after that they change nothing. */
const DECIDABLE_PHASES = new Set<string | undefined>([undefined, 'Pending', 'AwaitingApproval']);

const MAX_NAME = 253;

/**
 * `<task>-approve-x7k2q`: the task and the decision readable in `kubectl get taskapprovals`, and a
 * random suffix so a second approval (say, after a first one named the wrong uid) never collides.
 */
export function approvalName(task: string, decision: ApprovalDecision, random: string = randomSuffix()): string {
  const suffix = `-${decision === 'Approve' ? 'approve' : 'deny'}-${random}`;
  const head = task.slice(0, MAX_NAME - suffix.length).replace(/[-.]+$/, '');
  return `${head}${suffix}`;
}

function randomSuffix(): string {
  // Base 36 digits from random bytes: lowercase, so the name stays a DNS subdomain.
  return [...randomBytes(5)].map((b) => (b % 36).toString(36)).join('');
}

export function approvalFor(task: AgentTask, decision: ApprovalDecision, reason: string, name: string = approvalName(task.metadata.name, decision)): TaskApproval {
  return {
    apiVersion: API_VERSION,
    kind: TASK_APPROVAL_KIND,
    metadata: { name, namespace: task.metadata.namespace },
    spec: { task: task.metadata.name, taskUID: task.metadata.uid ?? '', decision, reason },
  };
}

export function decisionCommand(ctx: CommandContext, decision: ApprovalDecision): Command {
  const verb = decision === 'Approve' ? 'approve' : 'deny';
  return new Command(verb)
    .description(
      decision === 'Approve'
        ? 'Approve a task that is awaiting approval (creates a TaskApproval bound to its uid)'
        : 'Deny a task that is pending or awaiting approval (creates a TaskApproval bound to its uid)',
    )
    .argument('<task>', 'name of the AgentTask')
    .requiredOption('--reason <reason>', `why you ${verb} it (recorded in the TaskApproval and the task's status)`)
    .action(async (name: string, options: { reason: string }) => {
      checkTaskName(name);
      checkReason(options.reason);
      const { namespace, client, task } = await ctx.existingTask(name);
      const phase = task.status?.phase;
      if (!DECIDABLE_PHASES.has(phase)) {
        const hint = phase === 'Granted' || phase === 'Active' ? '; to end its grant use "kubectl taskgrant revoke"' : '';
        throw new CliError(`agenttask "${name}" in namespace "${namespace}" is ${phase}: approvals only decide Pending or AwaitingApproval tasks${hint}`);
      }
      if (!task.metadata.uid) throw new CliError(`agenttask "${name}" in namespace "${namespace}" has no uid`);
      const created = await client.createApproval(approvalFor(task, decision, options.reason));
      const { output } = ctx.globals;
      if (output !== 'table') {
        ctx.out(formatStructured(output, created));
        return;
      }
      ctx.out(`taskapproval.taskgrant.io/${created.metadata.name} created: ${decision} agenttask ${namespace}/${name} (uid ${task.metadata.uid}): ${JSON.stringify(options.reason)}\n`);
    });
}
