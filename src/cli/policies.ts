// Loading Cedar policies for `check` and `explain`: the same loader and engine the operator runs.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_FILE, checkPolicyDir, type PolicyEngine, type PolicySource } from '../policy/index.js';
import { builtInPolicyDir } from './built-in-policies.js';

export const DEFAULT_POLICY_DIR = 'policies';

/**
 * The policy directory to use. An explicit `--policy-dir` is used as given (a typo must fail, not
 * quietly fall back). Without one: `./policies` when it holds a schema, else the default policies
 * built into the single executable or shipped in the npm package, so an installed plugin works
 * from any directory.
 */
export function resolvePolicyDir(explicit: string | undefined, cwd: string = process.cwd()): string {
  if (explicit !== undefined) return explicit;
  if (existsSync(join(cwd, DEFAULT_POLICY_DIR, SCHEMA_FILE))) return DEFAULT_POLICY_DIR;
  return builtInPolicyDir() ?? bundledPolicyDir() ?? DEFAULT_POLICY_DIR;
}

/** `policies/` of this package: three levels up from dist/src/cli, two from src/cli. */
function bundledPolicyDir(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i += 1) {
    const candidate = join(dir, DEFAULT_POLICY_DIR);
    if (existsSync(join(candidate, SCHEMA_FILE))) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

export type LoadedPolicies = { type: 'loaded'; engine: PolicyEngine; revision: string; policyCount: number; dir: string } | { type: 'rejected'; errors: string[]; dir: string };

export async function loadPolicies(dir: string, extraSources: readonly PolicySource[] = []): Promise<LoadedPolicies> {
  const checked = await checkPolicyDir(dir, { extraSources });
  return { ...checked, dir };
}
