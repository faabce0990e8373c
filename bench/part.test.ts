// The bench's repeat-and-median machinery: what `make bench` reports is the median of its runs,
// with every run's value beside it.
import { describe, expect, it } from '@jest/globals';
import { mergeRuns, runParts, type BenchContext, type BenchPart, type Results } from './part.js';
import { table } from './report.js';

function context(): { ctx: BenchContext; kept: string[] } {
  const kept: string[] = [];
  const ctx: BenchContext = { root: '.', results: {}, log: () => undefined, keep: (key) => void kept.push(key) };
  return { ctx, kept };
}

describe('bench runs', () => {
  it('runs a timed part three times: the median of each figure, every run beside it, samples kept per run', async () => {
    const { ctx, kept } = context();
    const values = [30, 10, 20];
    let calls = 0;
    const part: BenchPart = {
      name: 'grant',
      title: 'grant',
      run: async ({ results, keep }) => {
        const v = values[calls++]!;
        results.grant = { ...results.grant, p99_ms: v, mode: 'policy' };
        keep('grant.ours', [v]);
      },
    };
    const once: BenchPart = { name: 'scale', title: 'scale', once: true, run: async ({ results }) => void (results.scale = { held_tasks: 50_200 }) };
    await runParts([part, once], ctx, undefined, new Set(), 3);
    expect(calls).toBe(3);
    expect(ctx.results.grant).toEqual({ p99_ms: 20, mode: 'policy' });
    expect(ctx.results.runs).toEqual({ 'grant.p99_ms': '30 · 10 · 20' });
    expect(ctx.results.scale).toEqual({ held_tasks: 50_200 });
    expect(kept).toEqual(['grant.ours.run1', 'grant.ours.run2', 'grant.ours.run3']);
    expect(Object.keys(ctx.results.durations ?? {})).toEqual(['grant', 'scale']);
    const md = table(ctx.results, 'test machine');
    expect(md).toContain('| `grant.p99_ms` | 20 | 30 · 10 · 20 |');
    expect(md).toContain('| `scale.held_tasks` | 50200 | once |');
    expect(md).not.toContain('durations.');
  });

  it('keeps the figures of a single run as measured, and never takes a median over runs that did not all measure it', () => {
    const into: Results = { grant: { n: 100 } };
    mergeRuns(into, [{ grant: { p50_ms: 5 } }]);
    expect(into).toEqual({ grant: { n: 100, p50_ms: 5 } });
    mergeRuns(into, [{ revoke: { p99_ms: 7, label: 'a' } }, { revoke: { p99_ms: 'n/a', label: 'b' } }, { revoke: { p99_ms: 9, label: 'c' } }]);
    expect(into.revoke).toEqual({ p99_ms: 9, label: 'c' });
    expect(into.runs).toBeUndefined();
  });
});
