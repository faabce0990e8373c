// A keyed work queue in the client-go mould: a key waiting is queued once however often it is
// added; a key is never processed by two workers at once (an add while it runs queues it again
// for after); failures retry with per-key exponential backoff; delayed adds serve timers.
// Two lanes: an urgent key (a revocation, a deletion) is taken before any ordinary one, and a few
// workers are kept for urgent keys alone, so access never waits behind a burst of grants; a key
// already waiting moves up when it turns urgent.
export type Processor = (key: string) => Promise<void>;

export interface QueueOptions {
  workers: number;
  /**
   * Workers only urgent keys may take: with every other worker busy on a burst of grants, a
   * revocation still starts at once rather than when a grant finishes. At most workers - 1.
   */
  urgentReserve?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onDepth?: (depth: number) => void;
  onError?: (key: string, err: unknown, retryInMs: number) => void;
  /**
   * A run that has not settled by then counts as failed: reported through onError at once, and
   * retried once it settles. The key stays running until then, so no second run overlaps it.
   */
  deadlineMs?: number;
}

export class WorkQueue {
  private readonly pending: string[] = [];
  private readonly urgent: string[] = [];
  private readonly queued = new Set<string>();
  private readonly urgentKeys = new Set<string>();
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly idleWaiters: Array<() => void> = [];
  private active = 0;
  private stopped = true;

  constructor(
    private readonly process: Processor,
    private readonly options: QueueOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.pump();
  }

  /** Stops taking work; resolves when in-flight items finish. Pending keys are dropped. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.pending.length = 0;
    this.urgent.length = 0;
    this.queued.clear();
    this.urgentKeys.clear();
    await this.idle();
  }

  /** Queues `key`; `urgent` puts it ahead of every ordinary key (and moves it up if it waits). */
  add(key: string, urgent = false): void {
    if (this.running.has(key)) {
      this.dirty.add(key);
      if (urgent) this.urgentKeys.add(key);
      return;
    }
    if (this.queued.has(key)) {
      if (urgent && !this.urgentKeys.has(key)) {
        this.pending.splice(this.pending.indexOf(key), 1);
        this.urgent.push(key);
        this.urgentKeys.add(key);
      }
      return;
    }
    this.queued.add(key);
    if (urgent) {
      this.urgent.push(key);
      this.urgentKeys.add(key);
    } else {
      this.pending.push(key);
    }
    this.options.onDepth?.(this.depth);
    this.pump();
  }

  /** Adds `key` after `delayMs`; an earlier pending timer for the same key wins. */
  addAfter(key: string, delayMs: number, urgent = false): void {
    if (delayMs <= 0) {
      this.add(key, urgent);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key, urgent);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Drops the pending timer and failure count of a key whose object is gone. */
  cancel(key: string): void {
    const pending = this.timers.get(key);
    if (pending) clearTimeout(pending.timer);
    this.timers.delete(key);
    this.failures.delete(key);
  }

  /** Clears the failure count of `key` (after it succeeded) so the next retry starts fast. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  get depth(): number {
    return this.pending.length + this.urgent.length;
  }

  /** Resolves when nothing is queued or running (timers aside). */
  idle(): Promise<void> {
    if (this.active === 0 && this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    const ordinaryWorkers = this.options.workers - Math.min(this.options.urgentReserve ?? 0, this.options.workers - 1);
    while (!this.stopped) {
      let key: string;
      if (this.urgent.length > 0 && this.active < this.options.workers) key = this.urgent.shift() as string;
      else if (this.pending.length > 0 && this.active < ordinaryWorkers) key = this.pending.shift() as string;
      else break;
      this.queued.delete(key);
      this.urgentKeys.delete(key);
      this.options.onDepth?.(this.depth);
      this.active += 1;
      this.running.add(key);
      void this.runOne(key);
    }
    if (this.active === 0 && this.depth === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** One more failure of `key`: the backoff before its retry. */
  private backoff(key: string): number {
    const attempts = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, attempts);
    const base = this.options.baseDelayMs ?? 100;
    const max = this.options.maxDelayMs ?? 30_000;
    return Math.min(max, base * 2 ** (attempts - 1)) * (0.8 + Math.random() * 0.4);
  }

  private async runOne(key: string): Promise<void> {
    // A run cannot be cancelled (it may be half-way through its writes), so an overdue run is only
    // reported; releasing its key would let a second worker reconcile the same task alongside it.
    const deadlineMs = this.options.deadlineMs ?? 120_000;
    let overdueRetryMs: number | undefined;
    const deadline = setTimeout(() => {
      overdueRetryMs = this.backoff(key);
      this.options.onError?.(key, new Error(`processing ${key} took longer than ${deadlineMs} ms`), Math.round(overdueRetryMs));
    }, deadlineMs);
    let retryMs: number | undefined;
    try {
      await this.process(key);
      retryMs = overdueRetryMs;
      if (retryMs === undefined) this.failures.delete(key);
    } catch (err) {
      // An overdue run was counted as failed at its deadline; its error is reported, not counted again.
      retryMs = overdueRetryMs ?? this.backoff(key);
      this.options.onError?.(key, err, Math.round(retryMs));
    } finally {
      clearTimeout(deadline);
      if (retryMs !== undefined && !this.stopped) this.addAfter(key, retryMs);
      this.running.delete(key);
      this.active -= 1;
      const urgentAgain = this.urgentKeys.delete(key);
      if (this.dirty.delete(key) && !this.stopped) this.add(key, urgentAgain);
      this.pump();
    }
  }
}
