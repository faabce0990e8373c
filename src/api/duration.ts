// Go's time.ParseDuration grammar (what `ttl: 15m` means to a Kubernetes user), in seconds.
const unitSeconds: Record<string, number> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, 'μs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Seconds in a Go duration string, or undefined when it is not one. Negative durations are refused. */
export function parseDurationSeconds(text: string): number | undefined {
  if (text === '0') return 0;
  if (text.length === 0 || text.length > 64) return undefined;
  let total = 0;
  part.lastIndex = 0;
  while (part.lastIndex < text.length) {
    const at = part.lastIndex;
    const m = part.exec(text);
    if (!m || m.index !== at) return undefined;
    total += Number(m[1]) * unitSeconds[m[2]!]!;
  }
  return Number.isFinite(total) ? total : undefined;
}

/** `900` -> `15m`, `5400` -> `1h30m`: how durations read back to a human. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const out = `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${sec || (!h && !m) ? `${sec}s` : ''}`;
  return out;
}
