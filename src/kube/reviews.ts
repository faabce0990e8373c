// TokenReview and SubjectAccessReview: asking the API server who a token belongs to, and
// whether a user may do something. Both fail closed: any error is "not authenticated" /
// "not allowed", never an exception that a caller might treat as success.
import { paths, type KubeApi } from './api.js';
import type { TokenReviewOutcome, UserInfo } from '../api/index.js';


export class Reviews {
  constructor(private readonly api: KubeApi) {}

  async reviewToken(token: string, audiences: string[] = []): Promise<TokenReviewOutcome> {
    try {
      const review = await this.api.create<{ status?: { authenticated?: boolean; error?: string; audiences?: string[]; user?: UserInfo & { extra?: Record<string, string[]> } } }>(
        paths.tokenReviews(),
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(audiences.length > 0 ? { audiences } : {}) } },
      );
      const status = review.status;
      if (status?.authenticated !== true || !status.user?.username) return { type: 'unauthenticated', error: status?.error ?? 'token not authenticated' };
      return {
        type: 'authenticated',
        identity: {
          username: status.user.username,
          uid: status.user.uid ?? '',
          groups: status.user.groups ?? [],
          extra: status.user.extra ?? {},
          audiences: status.audiences ?? [],
        },
      };
    } catch (err) {
      return { type: 'unauthenticated', error: `token review failed: ${(err as Error).message}` };
    }
  }

  /** Whether `user` may `verb` the resource; false on any error. */
  async userCan(user: UserInfo, attributes: { verb: string; group: string; resource: string; namespace?: string; name?: string; subresource?: string }): Promise<boolean> {
    try {
      const review = await this.api.create<{ status?: { allowed?: boolean } }>(paths.subjectAccessReviews(), {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: user.username,
          uid: user.uid,
          groups: user.groups ?? [],
          ...(user.extra ? { extra: user.extra } : {}),
          resourceAttributes: attributes,
        },
      });
      return review.status?.allowed === true;
    } catch {
      return false;
    }
  }
}
