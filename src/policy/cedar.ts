// The one adapter around cedar-wasm (STYLE.md habit 2): everything else in taskgrant speaks the
// small types below and never sees a cedar-wasm type, so a Cedar upgrade touches one file.
//
// The `nodejs` build is CommonJS and loads its .wasm synchronously with `fs`; a namespace import
// works both under node's ESM loader (named exports are detected from the CJS module) and under
// jest's ESM mode.
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';

/** A Cedar value as JSON: what entity attributes and the context are made of. */
export type CedarValue = string | number | boolean | CedarValue[] | { [key: string]: CedarValue };

export interface EntityRef {
  type: string;
  id: string;
}

export interface CedarEntity {
  uid: EntityRef;
  attrs: Record<string, CedarValue>;
}

/** One problem Cedar reported. Offsets, when present, are into the text that was given to Cedar. */
export interface CedarDiagnostic {
  message: string;
  help?: string;
  policyId?: string;
  start?: number;
  end?: number;
}

export type SchemaAnswer = { type: 'ok'; actions: string[] } | { type: 'error'; errors: CedarDiagnostic[] };
export type SplitAnswer =
  | { type: 'ok'; policies: { text: string; annotations: Record<string, string> }[]; templateCount: number }
  | { type: 'error'; errors: CedarDiagnostic[] };
export type ValidateAnswer = { type: 'ok'; warnings: CedarDiagnostic[] } | { type: 'error'; errors: CedarDiagnostic[] };
export type PrepareAnswer = { type: 'ok' } | { type: 'error'; errors: CedarDiagnostic[] };

export interface AuthorizeRequest {
  /** Id the schema was prepared under (prepareSchema). */
  schemaId: string;
  /** Id the policy set was prepared under (preparePolicySet). */
  policySetId: string;
  principal: EntityRef;
  action: EntityRef;
  resource: EntityRef;
  context: Record<string, CedarValue>;
  entities: CedarEntity[];
}

/**
 * `decided`: Cedar evaluated the policies. `errors` lists policies that failed while evaluating,
 * which Cedar skips — a caller that ignores them could let an erroring forbid through.
 * `invalid`: the request itself was refused (unknown action, context or entity not matching the schema).
 */
export type AuthorizeAnswer =
  | { type: 'decided'; allowed: boolean; determiningPolicies: string[]; errors: { policyId: string; message: string }[] }
  | { type: 'invalid'; errors: string[] };

interface CedarDetailedError {
  message: string;
  help: string | null;
  sourceLocations?: { start: number; end: number }[];
}

function diagnostic(e: CedarDetailedError, policyId?: string): CedarDiagnostic {
  const at = e.sourceLocations?.[0];
  return {
    message: e.message,
    ...(e.help ? { help: e.help } : {}),
    ...(policyId !== undefined ? { policyId } : {}),
    ...(at ? { start: at.start, end: at.end } : {}),
  };
}

/**
 * Parses a schema in Cedar's human syntax, caches it in cedar-wasm under `schemaId` for request
 * validation, and returns the actions it declares.
 */
export function prepareSchema(schemaId: string, text: string): SchemaAnswer {
  const json = cedar.schemaToJson(text);
  if (json.type === 'failure') return { type: 'error', errors: json.errors.map((e) => diagnostic(e)) };
  const prepared = cedar.preparseSchema(schemaId, text);
  if (prepared.type === 'failure') return { type: 'error', errors: prepared.errors.map((e) => diagnostic(e)) };
  const actions = Object.values(json.json).flatMap((ns) => Object.keys(ns.actions));
  return { type: 'ok', actions: actions.sort() };
}

/** Splits one policy file into its policies, each with its original text and its annotations. */
export function splitPolicies(text: string): SplitAnswer {
  const parts = cedar.policySetTextToParts(text);
  if (parts.type === 'failure') return { type: 'error', errors: parts.errors.map((e) => diagnostic(e)) };
  const policies: { text: string; annotations: Record<string, string> }[] = [];
  for (const policyText of parts.policies) {
    const json = cedar.policyToJson(policyText);
    if (json.type === 'failure') return { type: 'error', errors: json.errors.map((e) => diagnostic(e)) };
    policies.push({ text: policyText, annotations: { ...(json.json.annotations ?? {}) } });
  }
  return { type: 'ok', policies, templateCount: parts.policy_templates.length };
}

/** Strict validation of a whole policy set (keyed by policy id) against a schema. */
export function validatePolicies(schemaText: string, policies: Record<string, string>): ValidateAnswer {
  const answer = cedar.validate({ schema: schemaText, policies: { staticPolicies: policies }, validationSettings: { mode: 'strict' } });
  if (answer.type === 'failure') return { type: 'error', errors: answer.errors.map((e) => diagnostic(e)) };
  if (answer.validationErrors.length > 0) return { type: 'error', errors: answer.validationErrors.map((v) => diagnostic(v.error, v.policyId)) };
  const warnings = [...answer.validationWarnings.map((v) => diagnostic(v.error, v.policyId)), ...answer.otherWarnings.map((e) => diagnostic(e))];
  return { type: 'ok', warnings };
}

/**
 * Parses a policy set once and caches it in cedar-wasm under `policySetId`, so requests are
 * evaluated without re-parsing. Preparing again under the same id replaces the cached set.
 */
export function preparePolicySet(policySetId: string, policies: Record<string, string>): PrepareAnswer {
  const answer = cedar.preparsePolicySet(policySetId, { staticPolicies: policies });
  return answer.type === 'success' ? { type: 'ok' } : { type: 'error', errors: answer.errors.map((e) => diagnostic(e)) };
}

export function authorize(request: AuthorizeRequest): AuthorizeAnswer {
  const answer = cedar.statefulIsAuthorized({
    principal: request.principal,
    action: request.action,
    resource: request.resource,
    context: request.context,
    preparsedSchemaName: request.schemaId,
    // Request validation checks the context and entities against the schema, so a mistake in
    // how taskgrant builds a request surfaces as an error instead of a silently odd decision.
    validateRequest: true,
    preparsedPolicySetId: request.policySetId,
    entities: request.entities.map((e) => ({ uid: e.uid, attrs: e.attrs, parents: [] })),
  });
  if (answer.type === 'failure') return { type: 'invalid', errors: answer.errors.map((e) => e.message) };
  const { decision, diagnostics } = answer.response;
  return {
    type: 'decided',
    allowed: decision === 'allow',
    determiningPolicies: [...diagnostics.reason],
    errors: diagnostics.errors.map((e) => ({ policyId: e.policyId, message: e.error.message })),
  };
}

export function cedarVersion(): string {
  return cedar.getCedarVersion();
}
