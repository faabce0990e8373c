// The cluster's risk level as part of every grant-time decision. The level joins the policy
// revision ("<revision>+elevated"), so a change of level is a change of revision: every live
// task is re-decided once, the way a policy reload re-decides it, and revoked (PolicyChanged)
// if the policies no longer allow it at that level.
import type { RiskLevel } from '../api/index.js';
import type { Decision } from '../policy/index.js';
import type { PolicyDecider } from './decide.js';

export function revisionAtRisk(revision: string | undefined, level: RiskLevel): string | undefined {
  return revision === undefined || level === 'normal' ? revision : `${revision}+${level}`;
}

export function withRisk(policy: PolicyDecider, level: () => RiskLevel): PolicyDecider {
  return {
    get ready() {
      return policy.ready;
    },
    get revision() {
      return revisionAtRisk(policy.revision, level());
    },
    evaluate(input): Decision {
      const risk = level();
      const decision = policy.evaluate({ ...input, risk });
      return decision.type === 'error' ? { ...decision, revision: revisionAtRisk(decision.revision, risk) } : { ...decision, revision: revisionAtRisk(decision.revision, risk) ?? decision.revision };
    },
  };
}
