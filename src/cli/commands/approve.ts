// `kubectl taskgrant approve|deny TASK --reason R --uid U`: writes a TaskApproval naming the task
// the approver reviewed. A task deleted and recreated under the same name between review and
// approval has another uid, so `--uid` (printed by `explain`) makes the approval land on what was
// seen; without it the command shows the task's permissions and asks, and refuses when there is no
// terminal to ask on. The admission webhook stamps the approver and checks (SubjectAccessReview)
// that the caller may approve; the CLI only writes what the user asked for.
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

function permissionLines(task: AgentTask): string {
  return (task.spec.intent?.permissions ?? [])
    .map((p) => {
      const groups = p.apiGroups.map((g) => (g === '' ? 'core' : g)).join(',');
      const names = p.resourceNames?.length ? ` names ${p.resourceNames.join(',')}` : '';
      const where = ` in ${p.namespace ?? task.metadata.namespace}`;
      return `  ${p.verbs.join(',')} ${groups}/${p.resources.join(',')}${names}${where}\n`;
    })
    .join('');
}

/** The decision lands on the task the approver saw, or on nothing. */
async function confirmReviewed(ctx: CommandContext, task: AgentTask, verb: string, uid: string | undefined): Promise<void> {
  const ref = `agenttask "${task.metadata.name}" in namespace "${task.metadata.namespace}"`;
  if (uid !== undefined) {
    if (uid !== task.metadata.uid)
      throw new CliError(`${ref} is not the one you reviewed: its uid is now ${task.metadata.uid} (it was deleted and recreated); review it again with "kubectl taskgrant explain"`);
    return;
  }
  if (!ctx.io.confirm)
    throw new CliError(`no terminal to confirm on: pass --uid <uid> with the uid you reviewed ("kubectl taskgrant explain ${task.metadata.name}" prints it)`);
  ctx.err(`${ref} (uid ${task.metadata.uid}), agent ${task.spec.agent}, asks for:\n${permissionLines(task)}`);
  if (!(await ctx.io.confirm(`${verb} it?`))) throw new CliError(`not ${verb === 'approve' ? 'approved' : 'denied'}: nothing was written`);
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
    .option('--uid <uid>', `the uid of the task you reviewed (kubectl taskgrant explain prints it); refused if the task now has another`)
    .action(async (name: string, options: { reason: string; uid?: string }) => {
      checkTaskName(name);
      checkReason(options.reason);
      const { namespace, client, task } = await ctx.existingTask(name);
      const phase = task.status?.phase;
      if (!DECIDABLE_PHASES.has(phase)) {
        const hint = phase === 'Granted' || phase === 'Active' ? '; to end its grant use "kubectl taskgrant revoke"' : '';
        throw new CliError(`agenttask "${name}" in namespace "${namespace}" is ${phase}: approvals only decide Pending or AwaitingApproval tasks${hint}`);
      }
      if (!task.metadata.uid) throw new CliError(`agenttask "${name}" in namespace "${namespace}" has no uid`);
      await confirmReviewed(ctx, task, verb, options.uid);
      const created = await client.createApproval(approvalFor(task, decision, options.reason));
      const { output } = ctx.globals;
      if (output !== 'table') {
        ctx.out(formatStructured(output, created));
        return;
      }
      ctx.out(`taskapproval.taskgrant.io/${created.metadata.name} created: ${decision} agenttask ${namespace}/${name} (uid ${task.metadata.uid}): ${JSON.stringify(options.reason)}\n`);
    });
}
