// The one shape every benchmark part has. A part gets what it needs passed in (where the
// repository is, where its figures go, how to log) and keeps nothing between runs.

/** Figures by section (`policy`, `admission`, ...) then key; bench/results/*.json is this object. */
export type Results = Record<string, Record<string, number | string>>;

export interface BenchContext {
  readonly root: string;
  readonly results: Results;
  /** A plain function (no `this`), so parts may destructure it. */
  readonly log: (msg: string) => void;
  /** Keeps the raw samples behind a figure (bench/results/samples/<key>.json). */
  readonly keep: (key: string, samples: readonly number[]) => void;
}

/**
 * One named, separately selectable figure (BENCH_ONLY=name). `Env` is what the part runs against:
 * nothing for the in-process parts, the shared cluster (cluster.ts) for the others, which main
 * sets up once for all of them.
 */
export interface BenchPart<Env = void> {
  readonly name: string;
  /** Logged when the part starts. */
  readonly title: string;
  /** Not part of the default run: only when BENCH_ONLY names it. */
  readonly optIn?: boolean;
  run(ctx: BenchContext, env: Env): Promise<void>;
}

/** With BENCH_ONLY unset, every part but the opt-in ones; otherwise the parts it names. */
export function selected(part: Pick<BenchPart<unknown>, 'name' | 'optIn'>, only: ReadonlySet<string>): boolean {
  return only.size === 0 ? !part.optIn : only.has(part.name);
}

/** Runs the selected parts one after another, in order. */
export async function runParts<Env>(parts: ReadonlyArray<BenchPart<Env>>, ctx: BenchContext, env: Env, only: ReadonlySet<string>): Promise<void> {
  for (const part of parts) {
    if (!selected(part, only)) continue;
    ctx.log(part.title);
    await part.run(ctx, env);
  }
}
