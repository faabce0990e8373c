export const SENSITIVITIES = ['public', 'internal', 'confidential', 'restricted'] as const;
export type Sensitivity = (typeof SENSITIVITIES)[number];
export const DEFAULT_SENSITIVITY: Sensitivity = 'internal';

/** The stricter of two levels (an unknown or missing one counts for nothing). */
export function higherSensitivity(a: Sensitivity | undefined, b: string | undefined): Sensitivity {
  const rank = (s: string | undefined) => SENSITIVITIES.indexOf(s as Sensitivity);
  const winner = rank(b) > rank(a ?? DEFAULT_SENSITIVITY) ? (b as Sensitivity) : (a ?? DEFAULT_SENSITIVITY);
  return winner;
}

/** A namespace label by which the data owner sets the least sensitivity of any task reaching it. */
export const LABEL_NAMESPACE_SENSITIVITY = 'taskgrant.io/sensitivity';
