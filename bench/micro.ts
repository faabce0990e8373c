// The in-process micro-benchmarks (policy evaluation, the admission handler), run by `make bench`
// in a child process started with the operator's own V8 flags (run.ts), so they measure the code
// as the operator runs it. Figures go to stdout as JSON; the log to stderr.
import { policyPart } from './parts/policy.js';
import { handlerPart } from './parts/admission.js';
import { runParts, type BenchContext, type Results } from './part.js';
import { join } from 'node:path';
import { repoRoot } from '../test/harness/paths.js';
import { sampleKeeper } from './stats.js';

const results: Results = {};
const ctx: BenchContext = { root: repoRoot(), results, log: (msg) => void process.stderr.write(`[bench] ${msg}\n`), keep: sampleKeeper(join(repoRoot(), 'bench', 'results', 'samples')) };
const only: ReadonlySet<string> = new Set((process.env.BENCH_ONLY ?? '').split(',').filter(Boolean));
runParts([policyPart, handlerPart], ctx, undefined, only).then(
  () => process.stdout.write(JSON.stringify(results)),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
