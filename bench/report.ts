// The report: every figure in a markdown table, beside its goal where it has one.
import type { Results } from './part.js';

const goals: ReadonlyArray<readonly [string, string, (v: number) => boolean, string]> = [
  ['policy', 'ratio_p50', (v) => v <= 1.5, '<= 1.5'],
  ['admission', 'handler_p99_ms', (v) => v <= 5, '<= 5 ms'],
  // Task pods admitted inside the API server (the chart's default); the webhook path (e2e_*) is reported beside it.
  ['admission', 'policy_e2e_p50_ratio', (v) => v <= 1.2, '<= 1.2'],
  ['admission', 'null_floor_p50_ratio', (v) => v <= 1.15, '<= 1.15'],
  ['authz', 'request_p50_ratio', (v) => v <= 1.3, '<= 1.3'],
  ['revoke', 'authz_p99_ms', (v) => v <= 100, '<= 100 ms'],
  ['grant', 'ratio_p50', (v) => v <= 1.5, '<= 1.5'],
  ['grant', 'overhead_p50_ms', (v) => v <= 10, '<= 10 ms'],
  // Against the floor's rate at the same concurrency: an absolute rate moves with the machine.
  ['grant', 'burst_floor_ratio', (v) => v >= 0.8, '>= 0.8'],
  ['revoke', 'unused_token_pod_p99_ms', (v) => v <= 1000, '<= 1000 ms'],
  ['revoke', 'unused_token_ttl_p99_ms', (v) => v <= 1000, '<= 1000 ms'],
  ['revoke', 'used_token_403_p99_ms', (v) => v <= 1000, '<= 1000 ms'],
  ['revoke', 'during_burst_p99_ms', (v) => v <= 1000, '<= 1000 ms'],
  ['memory', 'loaded_mb', (v) => v <= 200, '<= 200 MB'],
  ['memory', 'churn_ratio', (v) => v <= 1.1, '<= 1.1'],
  ['scale', 'held_tasks', (v) => v >= 50_000, '>= 50000'],
  ['scale', 'rss_mb', (v) => v <= 512, '<= 512 MB (chart limit)'],
  ['scale', 'peak_rss_mb', (v) => v <= 512, '<= 512 MB (chart limit)'],
  ['scale', 'restart_peak_rss_mb', (v) => v <= 512, '<= 512 MB (chart limit)'],
  ['scale', 'grant_p99_ratio', (v) => v <= 1.5, '<= 1.5'],
  ['scale', 'restart_ready_s', (v) => v <= 30, '<= 30 s'],
  ['scale', 'overdue_revoked_s', (v) => v <= 10, '<= 10 s'],
];

/** Sections that are not figures: the machine, each part's duration, and each figure's runs. */
const NOT_FIGURES = new Set(['machine', 'durations', 'runs']);

export function table(results: Results, machine: string): string {
  const runs = results.runs ?? {};
  const repeated = Object.keys(runs).length > 0;
  const lines = [`Machine: ${machine}`, ''];
  lines.push(repeated ? '| key | median | runs | goal | met |' : '| key | value | goal | met |', repeated ? '|---|---|---|---|---|' : '|---|---|---|---|');
  for (const [section, values] of Object.entries(results)) {
    if (NOT_FIGURES.has(section)) continue;
    for (const [key, value] of Object.entries(values)) {
      const goal = goals.find(([s, k]) => s === section && k === key);
      const met = goal && typeof value === 'number' ? (goal[2](value) ? 'yes' : '**no**') : '';
      const spread = repeated ? ` ${runs[`${section}.${key}`] ?? 'once'} |` : '';
      lines.push(`| \`${section}.${key}\` | ${value} |${spread} ${goal?.[3] ?? ''} | ${met} |`);
    }
  }
  const durations = Object.entries(results.durations ?? {}).map(([part, s]) => `${part} ${s} s`);
  if (durations.length > 0) lines.push('', `Time per part: ${durations.join(', ')}.`);
  return lines.join('\n');
}
