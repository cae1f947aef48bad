/**
 * Consumer groups at apply: members (on leases), rendezvous assignment,
 * generations and fencing, deliveries with deadlines, acks, dead letters,
 * cursors, resets and pauses. (Skeleton: the contract the rest of the
 * service calls; filled in by the groups half of issue 18.)
 *
 * @module
 */
import type { ApplyContext } from "../../state/write_context.ts";
import type { PubsubAnswer, PubsubCommand } from "./commands.ts";
import { PubsubError } from "./commands.ts";

/** Testing knobs of the pub/sub service: planted bugs of the simulator. */
export interface PubsubKnobs {
  /** Planted bug: an ack is applied without checking the member's generation. */
  readonly ackIgnoresGeneration?: boolean;
  /** Planted bug: a sequence seen inside the dedup window is appended again. */
  readonly dedupAfterWindowAppend?: boolean;
}

type Of<T extends PubsubCommand["type"]> = Extract<PubsubCommand, { type: T }>;
type AnswerOf<T extends PubsubAnswer["type"]> = Extract<
  PubsubAnswer,
  { type: T }
>;

function notYet(): never {
  throw new PubsubError("invalid", "Consumer groups are not built yet");
}

/** The apply-time operations on groups over one entry. */
export class GroupWriter {
  readonly #context: ApplyContext;
  readonly #knobs: PubsubKnobs;

  constructor(context: ApplyContext, knobs: PubsubKnobs = {}) {
    this.#context = context;
    this.#knobs = knobs;
  }

  /** Adds or refreshes a member (creating the group), then rebalances. */
  join(_command: Of<"join">): AnswerOf<"join"> {
    void this.#context;
    void this.#knobs;
    return notYet();
  }
  /** Removes a member, then rebalances. */
  leave(_command: Of<"leave">): AnswerOf<"leave"> {
    return notYet();
  }
  /** Records deliveries for the member and answers them. */
  fetch(_command: Of<"fetch">): AnswerOf<"fetch"> {
    return notYet();
  }
  /** Applies acks. */
  ack(_command: Of<"ack">): AnswerOf<"ack"> {
    return notYet();
  }
  /** Moves cursors. */
  reset(_command: Of<"reset">): AnswerOf<"reset"> {
    return notYet();
  }
  /** Pauses a group. */
  pause(_command: Of<"pause">): AnswerOf<"pause"> {
    return notYet();
  }
  /** Resumes a group. */
  resume(_command: Of<"resume">): AnswerOf<"pause"> {
    return notYet();
  }
  /**
   * The leader's clock: expired deadlines become failed deliveries (or
   * dead letters past `maxDeliveries`), ended pauses end; at most `budget`
   * items. Returns how many and whether more were due.
   */
  tick(_nowMs: number, _budget: number): { expired: number; more: boolean } {
    return { expired: 0, more: false };
  }
  /** Removes the members of the leases `ids` (ended in this entry) and rebalances. */
  leasesEnded(_ids: readonly string[]): void {}
  /** Whether `topic` has groups. */
  hasGroups(_topic: string): boolean {
    return false;
  }
  /** Deletes every group of `topic` (a forced topic delete). */
  topicDeleted(_topic: string): void {}
}
