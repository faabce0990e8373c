// Concurrent writes that must all have landed (or failed) before anything acts on the outcome.

/**
 * Like Promise.all, but waits for every promise before failing: a refusal must not leave a
 * sibling write landing after the clean-up that follows it.
 */
export async function settleAll<T extends readonly unknown[]>(work: readonly [...{ [K in keyof T]: Promise<T[K]> }]): Promise<T> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
