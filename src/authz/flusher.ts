// Writes counted usage into task statuses every few seconds, one task at a time: a burst of
// requests becomes one status write per task per interval, never one per request.
import type { AgentTask } from '../api/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { UsageBook, UsageWriter } from './usage.js';

export interface UsageFlusherDeps {
  book: UsageBook;
  /** The task as the cache holds it now (the newest status and resourceVersion this process knows). */
  taskByUid(uid: string): AgentTask | undefined;
  write: UsageWriter;
  /** A conflict: the task changed since the cache saw it; the next round uses the newer copy. */
  isConflict(err: unknown): boolean;
  intervalMs: number;
  logger: Logger;
  metrics: Metrics;
  now(): Date;
}

export class UsageFlusher {
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly deps: UsageFlusherDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.flushNow(), this.deps.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is left once more. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flushNow();
  }

  /** One round over every task with unwritten counts; rounds never overlap. */
  flushNow(): Promise<void> {
    this.running = this.running.then(() => this.round());
    return this.running;
  }

  private async round(): Promise<void> {
    const { book, logger, metrics } = this.deps;
    for (const { uid, namespace, name } of book.pending()) {
      const task = this.deps.taskByUid(uid);
      if (!task) {
        book.forget(uid); // deleted: nothing left to write to
        continue;
      }
      try {
        await book.flush(task, this.deps.write, this.deps.now());
        metrics.usageWrites.inc({ result: 'success' });
      } catch (err) {
        const conflict = this.deps.isConflict(err);
        metrics.usageWrites.inc({ result: conflict ? 'conflict' : 'error' });
        if (!conflict) logger.warn({ err, namespace, name }, 'writing status.usage failed; the counts are kept for the next round');
      }
    }
  }
}
