/**
 * The Aspen side of `bench:pubsub`: raw `fetch` calls to the pub/sub HTTP
 * API (`src/protocol/http_api_pubsub.ts`) at the leader, bodies in
 * MessagePack (values binary, as JetStream's are) or JSON (values base64),
 * keep-alive connections. Topics have {@linkcode AspenPubsubOptions.partitions}
 * partitions; the consumer is one member of one group, holding a lease
 * granted through `/v1/leases/grant`.
 *
 * @module
 */
import { type ErrorBody, ROUTES } from "../src/protocol/http_api.ts";
import {
  type BodyFormat,
  contentTypeOf,
  decodeBody,
  encodeBody,
  formatOfContentType,
} from "../src/protocol/http_api_codec.ts";
import type {
  GroupAckRequest,
  GroupAckResponse,
  GroupFetchRequest,
  GroupFetchResponse,
  GroupJoinRequest,
  GroupJoinResponse,
  PublishRequest,
  PublishResponse,
  TopicCreateRequest,
} from "../src/protocol/http_api_pubsub.ts";
import type {
  LeaseGrantRequest,
  LeaseGrantResponse,
} from "../src/protocol/http_api_leases.ts";
import { BENCH_ASPEN_TOKEN, REQUEST_TIMEOUT_MS } from "./_drivers.ts";
import type { PubsubConsumer, PubsubDriver } from "./_pubsub_load.ts";

/** The topic of each publish row. */
const TOPICS = {
  publish: "bench.publish",
  "publish-batch": "bench.batch",
} as const;
/** The consumer's group. */
const GROUP = "bench";
/** TTL of the consumer's lease, ms (it must outlive the row). */
const LEASE_TTL_MS = 600_000;
/** Ms one fetch waits for a first message. */
const FETCH_WAIT_MS = 2_000;

/** Options of {@linkcode AspenPubsubDriver}. */
export interface AspenPubsubOptions {
  /** Base URL of the leader. */
  readonly url: string;
  readonly format: BodyFormat;
  /** Partitions of each topic. */
  readonly partitions: number;
  readonly batch: number;
}

/** A reply Aspen answered with a status other than 200. */
export class AspenReplyError extends Error {
  override name = "AspenReplyError";
  constructor(
    readonly route: string,
    readonly status: number,
    readonly code: string | null,
    detail: string,
  ) {
    super(
      `Status ${status}${code === null ? "" : ` ${code}`} from '${route}': ${
        detail.slice(0, 200)
      }`,
    );
  }
}

/** Aspen's pub/sub over raw HTTP. */
export class AspenPubsubDriver implements PubsubDriver {
  readonly calls;
  readonly #options: AspenPubsubOptions;

  constructor(options: AspenPubsubOptions) {
    if (!(options.partitions >= 1 && options.partitions <= 256)) {
      throw new RangeError(
        `Cannot drive Aspen as 'partitions' must be in [1, 256]: current value is ${options.partitions}`,
      );
    }
    this.#options = options;
    const body = options.format === "msgpack"
      ? "MessagePack, values binary"
      : "JSON, values base64";
    const topic = `a topic of ${options.partitions} partition${
      options.partitions === 1 ? "" : "s"
    }`;
    this.calls = {
      publish:
        `POST /v1/topics/publish {messages: [1]} awaited (${body}; ${topic}, round robin)`,
      "publish-batch":
        `POST /v1/topics/publish {messages: [${options.batch}]} awaited: one request, one Raft entry (${body}; ${topic})`,
      consume:
        `one group member: POST /v1/groups/fetch {batch: ${options.batch}}, then POST /v1/groups/ack with each message's ack (${body})`,
    };
  }

  async #post<T>(route: string, body: unknown): Promise<T> {
    const format = this.#options.format;
    const response = await fetch(this.#options.url + route, {
      method: "POST",
      headers: {
        "content-type": contentTypeOf(format),
        accept: contentTypeOf(format),
        authorization: `Bearer ${BENCH_ASPEN_TOKEN}`,
      },
      body: encodeBody(body, format),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const bytes = new Uint8Array(await response.arrayBuffer());
    const replyFormat =
      formatOfContentType(response.headers.get("content-type")) ?? "json";
    let decoded: unknown = null;
    try {
      decoded = bytes.length === 0 ? null : decodeBody(bytes, replyFormat);
    } catch {
      decoded = null;
    }
    if (response.status !== 200) {
      const error = (decoded as Partial<ErrorBody> | null)?.error;
      throw new AspenReplyError(
        route,
        response.status,
        error?.code ?? null,
        error?.message ?? new TextDecoder().decode(bytes.slice(0, 200)),
      );
    }
    return decoded as T;
  }

  async prepare(row: "publish" | "publish-batch"): Promise<void> {
    const request: TopicCreateRequest = {
      name: TOPICS[row],
      partitions: this.#options.partitions,
    };
    await this.#post(ROUTES.topicCreate, request);
  }

  async publish(
    row: "publish" | "publish-batch",
    _publisher: number,
    values: readonly Uint8Array[],
  ): Promise<void> {
    const request: PublishRequest = {
      topic: TOPICS[row],
      messages: values.map((data) => ({ value: { encoding: "bytes", data } })),
    };
    const reply = await this.#post<PublishResponse>(
      ROUTES.topicPublish,
      request,
    );
    if (reply?.records?.length !== values.length) {
      throw new Error(
        `Publish answered ${reply?.records?.length} records for ${values.length} messages`,
      );
    }
  }

  async openConsumer(): Promise<PubsubConsumer> {
    const grant: LeaseGrantRequest = { ttlMs: LEASE_TTL_MS };
    const lease = await this.#post<LeaseGrantResponse>(
      ROUTES.leaseGrant,
      grant,
    );
    const join: GroupJoinRequest = {
      topic: TOPICS.publish,
      group: GROUP,
      lease: lease.id,
      options: { start: "all" },
    };
    const member = await this.#post<GroupJoinResponse>(ROUTES.groupJoin, join);
    const post = <T>(route: string, body: unknown) =>
      this.#post<T>(route, body);
    return {
      async fetchAndAck(batch: number): Promise<number> {
        const fetchRequest: GroupFetchRequest = {
          topic: TOPICS.publish,
          group: GROUP,
          memberId: member.memberId,
          generation: member.generation,
          batch,
          maxWaitMs: FETCH_WAIT_MS,
        };
        const fetched = await post<GroupFetchResponse>(
          ROUTES.groupFetch,
          fetchRequest,
        );
        if (fetched.messages.length === 0) return 0;
        const ackRequest: GroupAckRequest = {
          topic: TOPICS.publish,
          group: GROUP,
          memberId: member.memberId,
          generation: member.generation,
          acks: fetched.messages.map((m) => ({
            partition: m.partition,
            offset: m.offset,
            action: "ack",
          })),
        };
        const acked = await post<GroupAckResponse>(
          ROUTES.groupAck,
          ackRequest,
        );
        const refused = acked.results.filter((r) => !r.ok).length;
        if (refused > 0) {
          throw new Error(
            `${refused} of ${acked.results.length} acks were refused`,
          );
        }
        return fetched.messages.length;
      },
      async close(): Promise<void> {
        await post(ROUTES.groupLeave, {
          topic: TOPICS.publish,
          group: GROUP,
          memberId: member.memberId,
        });
        await post(ROUTES.leaseRevoke, { id: lease.id });
      },
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
