export const SENSITIVITIES = ['public', 'internal', 'confidential', 'restricted'] as const;
export type Sensitivity = (typeof SENSITIVITIES)[number];
export const DEFAULT_SENSITIVITY: Sensitivity = 'internal';

/** How strict a level is (higher is stricter); -1 for anything that is not a level. */
export function sensitivityRank(s: string | undefined): number {
  return SENSITIVITIES.indexOf(s as Sensitivity);
}

/** The stricter of two levels (an unknown or missing one counts for nothing). */
export function higherSensitivity(a: Sensitivity | undefined, b: string | undefined): Sensitivity {
  return sensitivityRank(b) > sensitivityRank(a ?? DEFAULT_SENSITIVITY) ? (b as Sensitivity) : (a ?? DEFAULT_SENSITIVITY);
}

/** A namespace label by which the data owner sets the least sensitivity of any task reaching it. */
export const LABEL_NAMESPACE_SENSITIVITY = 'taskgrant.io/sensitivity';
