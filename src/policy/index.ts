// The policy layer's public surface. Nothing outside src/policy sees a cedar-wasm type.
export { checkPolicyDir, type PolicyDirCheck } from './check.js';
export { policyRevision, type LoadedPolicy } from './compile.js';
export { decisionResult, describeTuple, type Decision, type DecisionResult, type TupleDecision, type TupleOutcome } from './decision.js';
export { PolicyEngine, type LoadResult, type PolicyEngineOptions } from './engine.js';
export { MAX_TUPLES, agentId, resourceId, tupleCount, type DecisionInput } from './request.js';
export { buildRuntimeRequest, type RuntimeInput } from './runtime-request.js';
export { POLICY_SUFFIX, RUNTIME_POLICY_SUFFIX, RUNTIME_SCHEMA_FILE, SCHEMA_FILE, configMapSources, readPolicyDir, schemaFile, type PolicyDir, type PolicyFamily, type PolicySource } from './sources.js';
