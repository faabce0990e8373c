// The cluster's risk level: one ConfigMap the platform team turns up when something is wrong,
// read by both decisions (grant time and request time) through their Cedar context.

export const RISK_LEVELS = ['normal', 'elevated', 'lockdown'] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];

/** The ConfigMap in the operator namespace whose `level` key sets the risk level. */
export const RISK_CONFIGMAP = 'taskgrant-risk';
export const RISK_KEY = 'level';

export interface RiskReading {
  level: RiskLevel;
  /** Set when the ConfigMap holds something that is not a level; `level` is then lockdown. */
  problem?: string;
}

/**
 * No ConfigMap, or one without the key, is `normal`. Anything else that is not a level reads as
 * `lockdown`: a level nobody can read cannot be assumed harmless, and the admission guard
 * refuses such a value at the API server in the first place.
 */
export function readRiskLevel(data: Readonly<Record<string, string>> | undefined): RiskReading {
  const raw = data?.[RISK_KEY];
  if (raw === undefined) return { level: 'normal' };
  const value = raw.trim();
  if ((RISK_LEVELS as readonly string[]).includes(value)) return { level: value as RiskLevel };
  return { level: 'lockdown', problem: `${RISK_CONFIGMAP} ${RISK_KEY} ${JSON.stringify(raw)} is not one of ${RISK_LEVELS.join(', ')}; treated as lockdown` };
}
