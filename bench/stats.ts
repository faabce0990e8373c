// Small statistics helpers for the benchmarks.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Runs `fn` `count` times with `concurrency` workers; returns each call's duration in ms. */
export async function timed(count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const start = performance.now();
      await fn(i);
      samples.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return samples;
}

export async function runPool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/**
 * Makes `count` things (granted agents with their pods, say) eight at a time, in index order:
 * what a part measures one by one afterwards need not be set up one by one.
 */
export async function prepare<T>(count: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const made: T[] = new Array<T>(count);
  await runPool(Array.from({ length: count }, (_, i) => i), 8, async (i) => void (made[i] = await make(i)));
  return made;
}

/** Writes each figure's raw samples where `make bench` leaves its results, one JSON file per key. */
export function sampleKeeper(dir: string): (key: string, samples: readonly number[]) => void {
  return (key, samples) => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${key}.json`), `${JSON.stringify(samples.map((v) => round(v)))}\n`);
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
