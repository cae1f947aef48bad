/**
 * How the pub/sub port waits on this node's applied state: until a member
 * may get a message (woken by applied batches and by the groups' next due
 * time, as a deadline passing makes a message deliverable without any
 * entry), or just for the next applied batch. Private to `src/node/`.
 *
 * @module
 */
import type { GroupReads, MemberRef } from "../services/pubsub/api.ts";

/** How often a quiet wait checks that its member still exists, ms. */
export const MEMBER_CHECK_MS = 1_000;
/** Longest single sleep of a wait, ms (it then looks again). */
const SLEEP_MS_MAX = 60_000;

/** What {@linkcode DeliveryWaiter} needs. */
export interface DeliveryWaiterOptions {
  /** The group reads over this node's state. */
  readonly groups: GroupReads;
  /** Calls `listener` after each applied batch; returns an unsubscribe function. */
  readonly onApplied: (listener: () => void) => () => void;
  /** Clock in Unix ms. */
  readonly now: () => number;
}

/** Waits of the pub/sub port on the applied state. */
export class DeliveryWaiter {
  readonly #options: DeliveryWaiterOptions;

  constructor(options: DeliveryWaiterOptions) {
    this.#options = options;
  }

  /**
   * Waits until `member` may get a message (by this node's state), the
   * deadline passes or `signal` aborts. Wakes after each applied batch and
   * at the groups' next due time; every {@linkcode MEMBER_CHECK_MS} a quiet
   * wait also reports ready once the member is gone from its group, so
   * the next fetch answers its refusal.
   *
   * @returns True when ready, false at the deadline or on abort.
   */
  async untilDeliverable(
    member: MemberRef,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    let nextMemberCheck = this.#options.now() + MEMBER_CHECK_MS;
    for (;;) {
      if (signal?.aborted) return false;
      const now = this.#options.now();
      if (
        this.#options.groups.hasDeliverable(
          member.topic,
          member.group,
          member.memberId,
          now,
        )
      ) return true;
      if (now >= nextMemberCheck) {
        nextMemberCheck = now + MEMBER_CHECK_MS;
        if (!this.#isMember(member)) return true;
      }
      if (now >= deadline) return false;
      const due = this.#options.groups.nextDueMs();
      const wakeAt = Math.min(
        deadline,
        nextMemberCheck,
        due === null ? Number.POSITIVE_INFINITY : Math.max(due, now + 1),
      );
      await this.nextApplied(wakeAt - now, signal);
    }
  }

  #isMember(member: MemberRef): boolean {
    const group = this.#options.groups.describe(member.topic, member.group);
    return group !== null &&
      group.members.some((m) => m.id === member.memberId);
  }

  /** Resolves after the next applied batch, `ms`, or an abort. */
  nextApplied(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      let unsubscribe = () => {};
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, Math.min(ms, SLEEP_MS_MAX)));
      unsubscribe = this.#options.onApplied(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}
