// Leader election on a coordination.k8s.io/v1 Lease, so that of several replicas only one
// reconciles (every replica keeps serving webhooks from its own caches). The protocol is
// client-go's: the holder rewrites renewTime every retryPeriod; a candidate takes the Lease once
// it is free or it has seen the record unchanged for leaseDurationSeconds; every write carries
// the resourceVersion it read, so two candidates racing for one expired Lease cannot both win.
//
// Expiry is measured on the candidate's own monotonic clock from the moment it last saw the
// record change, never from the renewTime the holder wrote: another node's clock may be minutes
// off, and a holder that is alive keeps changing the record however wrong its stamps are.
// Safety then rests on renewDeadline < leaseDuration alone: a leader that has not renewed for
// renewDeadline stops leading before any candidate can have watched the record stand still for
// leaseDuration.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../telemetry/logger.js';
import { isStatus, paths } from './api.js';

/** The part of KubeApi the elector uses (KubeApi satisfies it; tests pass a fake). */
export interface LeaseApi {
  get<T>(path: string): Promise<T>;
  create<T>(collectionPath: string, object: unknown): Promise<T>;
  replace<T>(path: string, object: unknown): Promise<T>;
}

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
}

export interface LeaseObject {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: LeaseSpec;
}

export interface LeaderElectorOptions {
  api: LeaseApi;
  namespace: string;
  /** Lease name, e.g. `taskgrant-controller`. */
  name: string;
  /** Unique per replica; defaults to `<hostname>_<random>` (the pod name in a cluster). */
  identity?: string;
  /** How long a Lease stays valid after its last renewal (whole seconds: the Lease field's unit). Default 15. */
  leaseDurationSeconds?: number;
  /** A leader that has not renewed for this long stops leading. Default 10 000. */
  renewDeadlineMs?: number;
  /** How often the leader renews and a candidate retries. Default 2 000. */
  retryPeriodMs?: number;
  onStartedLeading?: () => void | Promise<void>;
  onStoppedLeading?: () => void | Promise<void>;
  logger?: Logger;
  clock?: ElectionClock;
}

/**
 * Wall time for the stamps other replicas read (acquireTime, renewTime); a monotonic reading for
 * the spans only this replica measures (lease expiry, the renew deadline), which a wall-clock
 * step must not stretch or shrink.
 */
export interface ElectionClock {
  now(): number;
  monotonic(): number;
}

// The globals, read at each call, so that fake timers stand in for both.
const systemClock: ElectionClock = { now: () => Date.now(), monotonic: () => performance.now() };

type Attempt = { type: 'held'; startedAt: number } | { type: 'heldByOther'; holder: string } | { type: 'conflict' };

/** The record as last seen, and when (monotonic) it was first seen in that form. */
interface Observation {
  record: string;
  at: number;
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits (the API server parses it strictly). */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

export class LeaderElector {
  readonly identity: string;
  private readonly leaseSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly clock: ElectionClock;
  private observed?: Observation;
  private leading = false;
  private running = false;
  private timer?: NodeJS.Timeout;
  private deadline?: NodeJS.Timeout;
  private inflight?: Promise<void>;

  constructor(private readonly options: LeaderElectorOptions) {
    this.identity = options.identity ?? `${hostname()}_${randomBytes(4).toString('hex')}`;
    this.leaseSeconds = options.leaseDurationSeconds ?? 15;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.clock = options.clock ?? systemClock;
    if (!Number.isInteger(this.leaseSeconds) || this.leaseSeconds < 1) throw new Error('leaseDurationSeconds must be a positive integer');
    if (!(this.retryPeriodMs > 0 && this.retryPeriodMs < this.renewDeadlineMs && this.renewDeadlineMs < this.leaseSeconds * 1000)) {
      throw new Error('leader election needs 0 < retryPeriod < renewDeadline < leaseDuration');
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Starts campaigning; onStartedLeading fires once the Lease is ours. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /**
   * Stops campaigning. A leader stops leading (onStoppedLeading is awaited) and then, unless
   * `release: false`, hands the Lease back so the next replica takes over at once instead of
   * after the Lease expires.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    // An in-flight renewal moves resourceVersion; the release must not race it. Bounded, so a
    // hung API call cannot hold up shutdown past the point the Lease would expire anyway.
    if (this.inflight) await Promise.race([this.inflight, new Promise((r) => setTimeout(r, this.renewDeadlineMs).unref())]);
    const wasLeading = this.leading;
    await this.stepDown('stopping', true);
    if (wasLeading && options.release !== false) await this.release();
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    this.inflight = this.attempt();
    await this.inflight;
    this.inflight = undefined;
    if (this.running) this.schedule(this.retryPeriodMs);
  }

  private async attempt(): Promise<void> {
    let result: Attempt;
    try {
      result = await this.tryAcquireOrRenew();
    } catch (err) {
      // Not fatal: the renew deadline decides when a leader that cannot reach the API gives up.
      this.options.logger?.warn({ err, lease: this.leaseRef(), leading: this.leading }, 'leader election: lease update failed');
      return;
    }
    if (!this.running) return; // stop() owns the Lease from here
    switch (result.type) {
      case 'held':
        this.renewed(result.startedAt);
        return;
      case 'heldByOther':
        if (this.leading) void this.stepDown(`lease taken by ${result.holder}`);
        return;
      case 'conflict':
        return; // lost a write race; the next attempt reads the winner's record
    }
  }

  private renewed(startedAt: number): void {
    // Counted from when the attempt began, not from when the answer arrived: other replicas may
    // have seen the record change as early as that.
    const remaining = startedAt + this.renewDeadlineMs - this.clock.monotonic();
    if (remaining <= 0) return;
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => void this.stepDown('renew deadline passed'), remaining);
    if (this.leading) return;
    this.leading = true;
    this.options.logger?.info({ lease: this.leaseRef(), identity: this.identity }, 'leader election: started leading');
    this.fire(this.options.onStartedLeading, 'onStartedLeading');
  }

  private async stepDown(reason: string, wait = false): Promise<void> {
    clearTimeout(this.deadline);
    if (!this.leading) return;
    this.leading = false;
    this.options.logger?.warn({ lease: this.leaseRef(), identity: this.identity, reason }, 'leader election: stopped leading');
    const done = this.fire(this.options.onStoppedLeading, 'onStoppedLeading');
    if (wait) await done;
  }

  private async fire(callback: (() => void | Promise<void>) | undefined, name: string): Promise<void> {
    try {
      await callback?.();
    } catch (err) {
      this.options.logger?.error({ err, callback: name }, 'leader election callback failed');
    }
  }

  private leaseRef(): string {
    return `${this.options.namespace}/${this.options.name}`;
  }

  /** Notes the record read at `at`; the observation time moves only when the record changed. */
  private observe(spec: LeaseSpec, at: number): void {
    const record = JSON.stringify([spec.holderIdentity ?? '', spec.leaseDurationSeconds, spec.acquireTime, spec.renewTime, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at };
  }

  /** Whether the record has stood unchanged, as this replica saw it, for the holder's lease duration. */
  private expired(spec: LeaseSpec, at: number): boolean {
    const observedAt = this.observed?.at ?? at;
    return observedAt + (spec.leaseDurationSeconds ?? this.leaseSeconds) * 1000 <= at;
  }

  private async tryAcquireOrRenew(): Promise<Attempt> {
    const { api, namespace, name } = this.options;
    const startedAt = this.clock.monotonic();
    let lease: LeaseObject | undefined;
    try {
      lease = await api.get<LeaseObject>(paths.lease(namespace, name));
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
    const now = this.clock.now();
    if (!lease) {
      try {
        const spec = this.holdSpec(now, microTime(now), 0);
        await api.create(paths.leases(namespace), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec } satisfies LeaseObject);
        this.observe(spec, startedAt);
        return { type: 'held', startedAt };
      } catch (err) {
        if (isStatus(err, 409)) return { type: 'conflict' };
        throw err;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const mine = holder === this.identity;
    const readAt = this.clock.monotonic();
    this.observe(spec, readAt);
    if (!mine && holder !== '' && !this.expired(spec, readAt)) return { type: 'heldByOther', holder };
    const transitions = (spec.leaseTransitions ?? 0) + (mine ? 0 : 1);
    const acquireTime = mine && spec.acquireTime ? spec.acquireTime : microTime(now);
    const next = { ...spec, ...this.holdSpec(now, acquireTime, transitions) };
    try {
      await api.replace(paths.lease(namespace, name), { ...lease, spec: next });
      this.observe(next, startedAt);
      if (!mine) this.options.logger?.info({ lease: this.leaseRef(), identity: this.identity, previous: holder || undefined }, 'leader election: acquired lease');
      return { type: 'held', startedAt };
    } catch (err) {
      if (isStatus(err, 409)) return { type: 'conflict' };
      throw err;
    }
  }

  private holdSpec(now: number, acquireTime: string, transitions: number): LeaseSpec {
    return { holderIdentity: this.identity, leaseDurationSeconds: this.leaseSeconds, acquireTime, renewTime: microTime(now), leaseTransitions: transitions };
  }

  /** Empty holder and a 1 s duration (as client-go releases): free for the next candidate now. */
  private async release(): Promise<void> {
    const { api, namespace, name } = this.options;
    try {
      const lease = await api.get<LeaseObject>(paths.lease(namespace, name));
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = microTime(this.clock.now());
      await api.replace(paths.lease(namespace, name), {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
      });
      this.options.logger?.info({ lease: this.leaseRef(), identity: this.identity }, 'leader election: released lease');
    } catch (err) {
      // The Lease then simply expires; the next leader waits leaseDuration instead.
      this.options.logger?.warn({ err, lease: this.leaseRef() }, 'leader election: releasing the lease failed');
    }
  }
}
