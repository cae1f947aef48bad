/**
 * A consumer's ack batcher: every ack made in one turn of the event loop
 * goes in one `POST /v1/groups/ack` per generation (≤ 1,000 acks a call,
 * one Raft entry each). Acks carry the generation their message was
 * delivered in, so the cluster fences an ack of a partition that moved
 * since. A `staleGeneration` refusal refuses the whole call: the batcher
 * then fails the acks of partitions the cluster's assignment gives to
 * another member, and sends the rest again one partition at a time, so
 * one fenced partition does not fail the acks of the others. Private to
 * `src/client/`.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import {
  type GroupAckResponse,
  PUBSUB_LIMITS,
  type WireAck,
} from "../protocol/http_api_pubsub.ts";
import type { HttpTransport } from "./_transport.ts";
import { StaleGenerationError } from "./errors.ts";
import type { AckAction } from "./_pubsub_types.ts";

/** One queued ack and its caller. */
interface PendingAck {
  readonly generation: number;
  readonly ack: WireAck;
  readonly resolve: (ok: boolean) => void;
  readonly reject: (error: unknown) => void;
}

/** Who is acking: the member and what to do when fenced. */
export interface AckMember {
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  /** Called once per fenced call (the consumer rejoins before its next fetch). */
  readonly fenced: (error: StaleGenerationError) => void;
}

/** Batches one consumer's acks. */
export class AckBatcher {
  readonly #transport: HttpTransport;
  readonly #member: AckMember;
  #queue: PendingAck[] = [];
  #scheduled = false;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(transport: HttpTransport, member: AckMember) {
    this.#transport = transport;
    this.#member = member;
  }

  /**
   * Queues an ack of `(partition, offset)` delivered in `generation`.
   *
   * @returns True when applied, false when the message was not in flight.
   */
  add(
    generation: number,
    partition: number,
    offset: number,
    action: AckAction,
    delayMs: number | undefined,
  ): Promise<boolean> {
    if (
      delayMs !== undefined &&
      (!Number.isSafeInteger(delayMs) || delayMs < 0 ||
        delayMs > PUBSUB_LIMITS.nackDelayMsMax)
    ) {
      return Promise.reject(
        new RangeError(
          `Invalid 'delayMs': must be a whole number from 0 to ${PUBSUB_LIMITS.nackDelayMsMax}: current value is ${delayMs}`,
        ),
      );
    }
    const ack: WireAck = {
      partition,
      offset,
      action,
      ...(action === "nack" && delayMs !== undefined ? { delayMs } : {}),
    };
    return new Promise((resolve, reject) => {
      this.#queue.push({ generation, ack, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /** Sends what is queued and waits for every call in flight. */
  async drain(): Promise<void> {
    this.#flush();
    while (this.#inFlight.size > 0) {
      await Promise.allSettled([...this.#inFlight]);
    }
  }

  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    const byGeneration = new Map<number, PendingAck[]>();
    for (const pending of queue) {
      const list = byGeneration.get(pending.generation) ?? [];
      list.push(pending);
      byGeneration.set(pending.generation, list);
    }
    for (const [generation, list] of byGeneration) {
      for (let i = 0; i < list.length; i += PUBSUB_LIMITS.acksMax) {
        const chunk = list.slice(i, i + PUBSUB_LIMITS.acksMax);
        const call = this.#send(generation, chunk, true);
        this.#inFlight.add(call);
        call.finally(() => this.#inFlight.delete(call));
      }
    }
  }

  async #send(
    generation: number,
    acks: readonly PendingAck[],
    split: boolean,
  ): Promise<void> {
    const { topic, group, memberId } = this.#member;
    let reply: GroupAckResponse;
    try {
      reply = await this.#transport.request("POST", ROUTES.groupAck, {
        topic,
        group,
        memberId,
        generation,
        acks: acks.map((pending) => pending.ack),
      }, "write") as GroupAckResponse;
    } catch (error) {
      if (!(error instanceof StaleGenerationError)) {
        for (const pending of acks) pending.reject(error);
        return;
      }
      if (split) this.#member.fenced(error);
      await this.#fenced(generation, acks, error, split);
      return;
    }
    for (const [index, pending] of acks.entries()) {
      const result = reply.results[index];
      pending.resolve(result?.ok === true);
    }
  }

  /** Fails the acks of partitions owned elsewhere; sends the rest per partition. */
  async #fenced(
    generation: number,
    acks: readonly PendingAck[],
    error: StaleGenerationError,
    split: boolean,
  ): Promise<void> {
    const owners = error.assignment;
    const byPartition = new Map<number, PendingAck[]>();
    for (const pending of acks) {
      const partition = pending.ack.partition;
      if (!split || owners[String(partition)] !== this.#member.memberId) {
        pending.reject(error);
        continue;
      }
      const list = byPartition.get(partition) ?? [];
      list.push(pending);
      byPartition.set(partition, list);
    }
    await Promise.all(
      [...byPartition.values()].map((list) =>
        this.#send(generation, list, false)
      ),
    );
  }
}
