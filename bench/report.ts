// The report: every figure in a markdown table, beside its goal where it has one.
import type { Results } from './part.js';

const goals: ReadonlyArray<readonly [string, string, (v: number) => boolean, string]> = [
  ['policy', 'ratio_p50', (v) => v <= 1.5, '<= 1.5'],
  ['admission', 'handler_p99_ms', (v) => v <= 5, '<= 5 ms'],
  // Task pods admitted inside the API server (the chart's default); the webhook path (e2e_*) is reported beside it.
  ['admission', 'policy_e2e_p50_ratio', (v) => v <= 1.2, '<= 1.2'],
  ['authz', 'request_p50_ratio', (v) => v <= 1.3, '<= 1.3'],
  ['revoke', 'authz_p99_ms', (v) => v <= 100, '<= 100 ms'],
  ['grant', 'ratio_p50', (v) => v <= 1.5, '<= 1.5'],
  ['grant', 'burst_per_s', (v) => v >= 50, '>= 50/s'],
  ['revoke', 'pod_p99_ms', (v) => v <= 1000, '<= 1000 ms'],
  ['revoke', 'ttl_p99_ms', (v) => v <= 1000, '<= 1000 ms'],
  ['memory', 'loaded_mb', (v) => v <= 200, '<= 200 MB'],
  ['memory', 'churn_ratio', (v) => v <= 1.1, '<= 1.1'],
];

export function table(results: Results, machine: string): string {
  const lines = [`Machine: ${machine}`, '', '| key | value | goal | met |', '|---|---|---|---|'];
  for (const [section, values] of Object.entries(results)) {
    if (section === 'machine') continue;
    for (const [key, value] of Object.entries(values)) {
      const goal = goals.find(([s, k]) => s === section && k === key);
      const met = goal && typeof value === 'number' ? (goal[2](value) ? 'yes' : '**no**') : '';
      lines.push(`| \`${section}.${key}\` | ${value} | ${goal?.[3] ?? ''} | ${met} |`);
    }
  }
  return lines.join('\n');
}
