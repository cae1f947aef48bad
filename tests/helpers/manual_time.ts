/**
 * Test time that moves only when the test says so (a Clock and Scheduler of
 * `src/base/clock.ts`), and a leadership the test flips, for leader tasks.
 */
import type { Clock, Scheduled, Scheduler } from "../../src/base/clock.ts";
import type { Leadership } from "../../src/node/service_host.ts";

/** Time that moves only when the test says so. */
export class ManualTime implements Clock, Scheduler {
  nowMs = 0;
  #timers = new Map<
    number,
    { atMs: number; periodMs: number | null; callback: () => void }
  >();
  #next = 0;

  monotonicMs(): number {
    return this.nowMs;
  }
  wallMs(): number {
    return 1_700_000_000_000 + this.nowMs;
  }
  after(delayMs: number, callback: () => void): Scheduled {
    return this.#add(delayMs, null, callback);
  }
  every(periodMs: number, callback: () => void): Scheduled {
    return this.#add(periodMs, periodMs, callback);
  }
  #add(delayMs: number, periodMs: number | null, callback: () => void) {
    const id = this.#next++;
    this.#timers.set(id, { atMs: this.nowMs + delayMs, periodMs, callback });
    return { cancel: () => void this.#timers.delete(id) };
  }
  get pending(): number {
    return this.#timers.size;
  }

  /** Runs every timer due within `ms`, in order, letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.nowMs + ms;
    for (let fired = 0; fired < 100_000; fired++) {
      let dueId: number | null = null;
      for (const [id, t] of this.#timers) {
        if (t.atMs > end) continue;
        if (dueId === null || t.atMs < this.#timers.get(dueId)!.atMs) {
          dueId = id;
        }
      }
      if (dueId === null) break;
      const timer = this.#timers.get(dueId)!;
      this.nowMs = Math.max(this.nowMs, timer.atMs);
      if (timer.periodMs === null) this.#timers.delete(dueId);
      else timer.atMs += timer.periodMs;
      timer.callback();
      await settle();
    }
    this.nowMs = end;
    await settle();
  }
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** Leadership the test flips; applied listeners fire on demand. */
export class FakeLeadership implements Leadership {
  leader = false;
  currentTerm = 1;
  readonly listeners = new Set<() => void>();
  isLeader(): boolean {
    return this.leader;
  }
  term(): number {
    return this.currentTerm;
  }
  onApplied(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
