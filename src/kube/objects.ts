// The Kubernetes objects taskgrant reads and writes, as plain JSON shapes (only the fields used).
import type { KubeObject } from './informer.js';

export interface PolicyRuleObject {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface ServiceAccountObject extends KubeObject {
  automountServiceAccountToken?: boolean;
}

export interface RoleObject extends KubeObject {
  rules: PolicyRuleObject[];
}

export interface RoleBindingObject extends KubeObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: Array<{ kind: string; name: string; namespace?: string; apiGroup?: string }>;
}

export interface PodObject extends KubeObject {
  spec?: { serviceAccountName?: string; [k: string]: unknown };
  status?: { phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown'; [k: string]: unknown };
}

export interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}

export interface SecretObject extends KubeObject {
  type?: string;
  data?: Record<string, string>;
}

export type { UserInfo } from '../api/index.js';

/** The objects a task's grant consists of. */
export type ManagedKind = 'ServiceAccount' | 'Role' | 'RoleBinding';
