/**
 * The consume (push) stream of the pub/sub port: the deliveries of one
 * fetch yielded one by one, then the next fetch, waiting while there is
 * nothing to deliver; a `staleGeneration` refusal yields a `fenced` item
 * (the current generation and assignment) and ends the stream. The
 * service keeps each partition within `maxAckPending`. Private to
 * `src/node/`.
 *
 * @module
 */
import {
  type Delivery,
  type MemberRef,
  PubsubError,
} from "../services/pubsub/api.ts";
import { type DeliveryWaiter, MEMBER_CHECK_MS } from "./_pubsub_waits.ts";

/** One item of a consume stream. */
export type ConsumeItem =
  | { readonly type: "message"; readonly delivery: Delivery }
  | {
    readonly type: "fenced";
    readonly generation: number;
    readonly assignment: Readonly<Record<string, string>>;
  };

/** A fetch's answer as the stream uses it. */
export interface FetchAnswer {
  readonly generation: number;
  readonly messages: readonly Delivery[];
}

/** What {@linkcode consumeStream} needs. */
export interface ConsumeParts {
  readonly member: MemberRef;
  /** The answer of the fetch that opened the stream. */
  readonly first: FetchAnswer;
  /** Ends the stream. */
  readonly signal: AbortSignal;
  /** Frees the stream's slot; called once the stream ends. */
  readonly release: () => void;
  readonly waits: DeliveryWaiter;
  /** Proposes the next fetch for the member. */
  readonly fetchNext: () => Promise<FetchAnswer>;
}

/** The items of one consume stream. */
export async function* consumeStream(
  parts: ConsumeParts,
): AsyncGenerator<ConsumeItem, undefined> {
  const { member, first, signal, release, waits } = parts;
  try {
    let answer = first;
    for (;;) {
      for (const delivery of answer.messages) {
        if (signal.aborted) return;
        yield { type: "message", delivery };
      }
      if (signal.aborted) return;
      if (answer.messages.length === 0) {
        // After an empty fetch, the next entry (or a while) first: a
        // state that looks deliverable but is not cannot spin proposals.
        if (answer !== first) {
          await waits.nextApplied(MEMBER_CHECK_MS, signal);
        }
        // Wait for something to deliver (or the member to be gone).
        const ready = await waits.untilDeliverable(
          member,
          Number.POSITIVE_INFINITY,
          signal,
        );
        if (!ready || signal.aborted) return;
      }
      try {
        answer = await parts.fetchNext();
      } catch (error) {
        if (
          error instanceof PubsubError && error.code === "staleGeneration"
        ) {
          yield fencedItem(error);
          return;
        }
        throw error;
      }
    }
  } finally {
    release();
  }
}

function fencedItem(error: PubsubError): ConsumeItem {
  const details = error.details ?? {};
  const generation = typeof details.generation === "number"
    ? details.generation
    : 0;
  const assignment = typeof details.assignment === "object" &&
      details.assignment !== null
    ? details.assignment as Record<string, string>
    : {};
  return { type: "fenced", generation, assignment };
}
