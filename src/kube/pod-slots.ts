// maxPods across replicas: each admitted task pod holds a claim in its task's entry of the grant
// ledger (the agent's ConfigMap in the operator namespace). Every claim is written with the
// ConfigMap's resourceVersion, so the API server serialises them: two replicas admitting the last
// slot at once cannot both succeed, the loser re-reads and counts the winner's pod.
import type { SlotClaim, SlotVerdict } from '../api/index.js';
import { isStatus, paths, type KubeApi } from './api.js';
import { ConfigMapLedger, ledgerDocument } from './ledger.js';
import type { ConfigMapObject } from './objects.js';

/**
 * How long a claim counts without its pod in the caches: the time for a created pod to reach the
 * pod informer. A claim whose pod never appeared (a later admission step refused it, or a review
 * the API server did not send) frees its slot after this.
 */
export const CLAIM_GRACE_MS = 15_000;
const ATTEMPTS = 5;

interface Claim {
  /** The pod's name, or the admission's uid while the name is unknown (generateName). */
  id: string;
  at: number;
}

type Entry = { uid?: unknown; claims?: unknown } & Record<string, unknown>;

export class LedgerPodSlots {
  constructor(
    private readonly api: KubeApi,
    private readonly operatorNamespace: string,
    /**
     * The pods carrying the task's grant that have not terminated (from the pod cache), each by
     * the claim it holds (its `taskgrant.io/slot` annotation) or else its name.
     */
    private readonly boundPods: (namespace: string, taskName: string, taskUid: string) => string[],
    private readonly graceMs = CLAIM_GRACE_MS,
  ) {}

  async claim(request: SlotClaim): Promise<SlotVerdict> {
    const name = ConfigMapLedger.nameFor(request.namespace, request.agent);
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      // Read from the API server, not a cache: the count must include the other replica's last claim.
      const cm = await this.api.find<ConfigMapObject>(paths.configMap(this.operatorNamespace, name));
      const entries: Entry[] = ledgerDocument(cm);
      const entry = entries.find((e) => e.uid === request.taskUid);
      if (!cm || !entry) return { type: 'refused', message: 'the grant is not recorded in its agent\'s ledger' };
      const bound = this.boundPods(request.namespace, request.taskName, request.taskUid);
      const claims = parseClaims(entry.claims).filter((c) => bound.includes(c.id) || request.now - c.at < this.graceMs);
      const held = new Set([...bound, ...claims.map((c) => c.id)]);
      if (request.podName !== undefined && held.has(request.podName)) return { type: 'claimed' };
      if (held.size >= request.maxPods) return { type: 'full', held: held.size };
      entry.claims = [...claims, { id: request.podName ?? request.admission, at: request.now }];
      try {
        await this.api.replace(paths.configMap(this.operatorNamespace, name), { ...cm, data: { ...cm.data, grants: JSON.stringify(entries) } });
        return { type: 'claimed' };
      } catch (err) {
        if (!isStatus(err, 409)) throw new Error(`claiming a pod slot of task ${request.namespace}/${request.taskName}`, { cause: err });
        // Another replica (or the controller recording a grant) wrote first: count again.
      }
    }
    return { type: 'refused', message: `the ledger kept changing under ${ATTEMPTS} attempts; try again` };
  }
}

function parseClaims(value: unknown): Claim[] {
  if (!Array.isArray(value)) return [];
  return value.filter((c): c is Claim => typeof c === 'object' && c !== null && typeof (c as Claim).id === 'string' && typeof (c as Claim).at === 'number');
}
