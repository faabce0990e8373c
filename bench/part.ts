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
  /** Measured once however many runs are asked for (memory, scale: what they measure is their one long run). */
  readonly once?: boolean;
  run(ctx: BenchContext, env: Env): Promise<void>;
}

/** With BENCH_ONLY unset, every part but the opt-in ones; otherwise the parts it names. */
export function selected(part: Pick<BenchPart<unknown>, 'name' | 'optIn'>, only: ReadonlySet<string>): boolean {
  return only.size === 0 ? !part.optIn : only.has(part.name);
}

/**
 * Runs the selected parts one after another, in order; each part but the `once` ones `runs`
 * times, its figures the median of the runs (mergeRuns). Each part's duration goes to
 * results.durations.
 */
export async function runParts<Env>(parts: ReadonlyArray<BenchPart<Env>>, ctx: BenchContext, env: Env, only: ReadonlySet<string>, runs = 1): Promise<void> {
  for (const part of parts) {
    if (!selected(part, only)) continue;
    const started = performance.now();
    const repeats = part.once ? 1 : runs;
    const perRun: Results[] = [];
    for (let run = 1; run <= repeats; run += 1) {
      const label = repeats > 1 ? ` (run ${run} of ${repeats})` : '';
      ctx.log(`${part.title}${label}`);
      const own: Results = {};
      const keep = repeats > 1 ? (key: string, samples: readonly number[]) => ctx.keep(`${key}.run${run}`, samples) : ctx.keep;
      await part.run({ ...ctx, results: own, keep }, env);
      perRun.push(own);
    }
    mergeRuns(ctx.results, perRun);
    ctx.results.durations = { ...ctx.results.durations, [part.name]: Math.round((performance.now() - started) / 1000) };
  }
}

/**
 * The runs of one part folded into `into`: a figure every run measured is their median (an odd
 * count: one of the measured values), and all of them, in run order, go to results.runs under
 * `section.key` — the spread beside the median. A figure not numeric in every run keeps the last.
 */
export function mergeRuns(into: Results, perRun: readonly Results[]): void {
  for (const [section, values] of Object.entries(perRun.at(-1) ?? {})) {
    for (const [key, last] of Object.entries(values)) {
      const measured = perRun.map((r) => r[section]?.[key]);
      const numbers = measured.filter((v): v is number => typeof v === 'number');
      into[section] = { ...into[section] };
      if (perRun.length > 1 && numbers.length === perRun.length) {
        into[section][key] = median(numbers);
        into.runs = { ...into.runs, [`${section}.${key}`]: numbers.join(' · ') };
      } else {
        into[section][key] = last;
      }
    }
  }
}

/** The middle value (of an even count, the lower middle: always a value that was measured). */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}
