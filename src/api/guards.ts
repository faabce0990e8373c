// Runtime guards for objects that arrive as JSON (informer events, AdmissionReviews).
// The CRD schema already refuses most bad input at the API server; these guards are the
// second line, so a malformed object is refused with a reason instead of crashing a handler.
import { DEFAULT_TTL, TTL_MAX_SECONDS, TTL_MIN_SECONDS } from './constants.js';
import { parseDurationSeconds } from './duration.js';
import { DEFAULT_SENSITIVITY, SENSITIVITIES, type Sensitivity } from './sensitivity.js';
import type { AgentTask, PermissionRule, TaskApproval } from './types.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** A JSON object (not an array, not null). */
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isString = (v: unknown): v is string => typeof v === 'string';
const isStringList = (v: unknown, max: number): v is string[] => Array.isArray(v) && v.length <= max && v.every(isString);
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function fail<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

function parseRule(raw: unknown, index: number): Parsed<PermissionRule> {
  const at = `spec.intent.permissions[${index}]`;
  if (!isRecord(raw)) return fail(`${at} must be an object`);
  for (const key of ['apiGroups', 'resources', 'verbs'] as const) {
    if (!isStringList(raw[key], 32) || (key !== 'apiGroups' && raw[key].length === 0)) return fail(`${at}.${key} must be a non-empty list of at most 32 strings`);
    if ((raw[key] as string[]).some((v) => v.includes('*'))) return fail(`${at}.${key} must not contain '*': wildcards are never grantable`);
  }
  if ((raw.apiGroups as string[]).length === 0) return fail(`${at}.apiGroups must list at least one group ("" is the core group)`);
  if (raw.resourceNames !== undefined && !isStringList(raw.resourceNames, 32)) return fail(`${at}.resourceNames must be a list of at most 32 strings`);
  if (raw.namespace !== undefined && (!isString(raw.namespace) || (raw.namespace !== '' && !dns1123Label.test(raw.namespace))))
    return fail(`${at}.namespace must be a namespace name`);
  return {
    ok: true,
    value: {
      apiGroups: raw.apiGroups as string[],
      resources: raw.resources as string[],
      verbs: raw.verbs as string[],
      ...(raw.resourceNames !== undefined ? { resourceNames: raw.resourceNames as string[] } : {}),
      ...(isString(raw.namespace) && raw.namespace !== '' ? { namespace: raw.namespace } : {}),
    },
  };
}

/** Validates an AgentTask and fills the defaults the CRD schema would (ttl, sensitivity, maxPods). */
export function parseAgentTask(raw: unknown): Parsed<AgentTask> {
  if (!isRecord(raw)) return fail('an AgentTask must be an object');
  const metadata = raw.metadata;
  if (!isRecord(metadata) || !isString(metadata.name) || !isString(metadata.namespace)) return fail('metadata.name and metadata.namespace are required');
  const spec = raw.spec;
  if (!isRecord(spec)) return fail('spec is required');
  if (!isString(spec.agent) || spec.agent.length > 63 || !dns1123Label.test(spec.agent)) return fail('spec.agent must be a DNS-1123 label');
  const intent = spec.intent;
  if (!isRecord(intent)) return fail('spec.intent is required');
  if (!isString(intent.objective) || intent.objective.length < 1 || intent.objective.length > 1024) return fail('spec.intent.objective must be 1..1024 characters');
  if (intent.tools !== undefined && !isStringList(intent.tools, 32)) return fail('spec.intent.tools must be a list of at most 32 strings');
  const sensitivity = intent.sensitivity ?? DEFAULT_SENSITIVITY;
  if (!SENSITIVITIES.includes(sensitivity as Sensitivity)) return fail(`spec.intent.sensitivity must be one of ${SENSITIVITIES.join(', ')}`);
  if (!Array.isArray(intent.permissions) || intent.permissions.length < 1 || intent.permissions.length > 32) return fail('spec.intent.permissions must hold 1..32 rules');
  const permissions: PermissionRule[] = [];
  for (const [i, r] of intent.permissions.entries()) {
    const rule = parseRule(r, i);
    if (!rule.ok) return rule;
    permissions.push(rule.value);
  }
  const ttl = spec.ttl === undefined ? DEFAULT_TTL : spec.ttl;
  if (!isString(ttl)) return fail('spec.ttl must be a duration between 10s and 24h');
  const ttlSeconds = parseDurationSeconds(ttl);
  if (ttlSeconds === undefined || ttlSeconds < TTL_MIN_SECONDS || ttlSeconds > TTL_MAX_SECONDS) return fail('spec.ttl must be a duration between 10s and 24h');
  const maxPods = spec.maxPods ?? 1;
  if (typeof maxPods !== 'number' || !Number.isInteger(maxPods) || maxPods < 1 || maxPods > 100) return fail('spec.maxPods must be an integer 1..100');
  const token = spec.token ?? {};
  if (!isRecord(token)) return fail('spec.token must be an object');
  if (token.audiences !== undefined && !isStringList(token.audiences, 16)) return fail('spec.token.audiences must be a list of at most 16 strings');
  if (token.expirationSeconds !== undefined && (typeof token.expirationSeconds !== 'number' || token.expirationSeconds < 600 || token.expirationSeconds === 3607))
    return fail('spec.token.expirationSeconds must be >= 600 and not 3607');
  if (spec.parentTask !== undefined && !isString(spec.parentTask)) return fail('spec.parentTask must be a string');
  const task = raw as unknown as AgentTask;
  return {
    ok: true,
    value: {
      ...task,
      spec: {
        ...task.spec,
        ttl,
        maxPods,
        intent: { ...task.spec.intent, sensitivity: sensitivity as Sensitivity, tools: (intent.tools as string[] | undefined) ?? [], permissions },
      },
    },
  };
}

/** Seconds in the task's ttl (after parseAgentTask the value is known to be valid). */
export function ttlSeconds(task: AgentTask): number {
  return parseDurationSeconds(task.spec.ttl ?? DEFAULT_TTL) ?? 0;
}

export function parseTaskApproval(raw: unknown): Parsed<TaskApproval> {
  if (!isRecord(raw)) return fail('a TaskApproval must be an object');
  const metadata = raw.metadata;
  if (!isRecord(metadata) || !isString(metadata.namespace)) return fail('metadata.namespace is required');
  const spec = raw.spec;
  if (!isRecord(spec)) return fail('spec is required');
  if (!isString(spec.task) || !dns1123Subdomain(spec.task)) return fail('spec.task must name an AgentTask');
  if (!isString(spec.taskUID) || spec.taskUID.length === 0 || spec.taskUID.length > 128) return fail('spec.taskUID must be the AgentTask uid');
  if (spec.decision !== 'Approve' && spec.decision !== 'Deny') return fail('spec.decision must be Approve or Deny');
  if (spec.reason !== undefined && (!isString(spec.reason) || spec.reason.length > 1024)) return fail('spec.reason must be at most 1024 characters');
  return { ok: true, value: raw as unknown as TaskApproval };
}

export function dns1123Subdomain(v: string): boolean {
  return v.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(v);
}
