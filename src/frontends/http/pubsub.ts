/**
 * The `/v1/topics/...` and `/v1/groups/...` handlers (issue 18): topics
 * (create, list, describe, delete, publish) and consumer groups (join,
 * leave, fetch, ack, list, describe, reset, pause, resume), plus `GET
 * /v1/groups/consume`, a `text/event-stream` of deliveries (`event:
 * message`, data a `WireDelivery`) ended by `event: fenced` (data the
 * `staleGeneration` details) once the member is stale. Bodies are JSON or
 * MessagePack; this module checks their shape (unknown fields and wrong
 * types are 400 `badRequest`; values are Deno KV's `v8` or `bytes`), the
 * node's port checks the rest with the service's validators (`invalid`,
 * `limitExceeded`), and a refusal of the service is its code with its
 * details (`staleGeneration`: the current generation and assignment).
 * Nothing is proposed for a refused request. The protocol is in
 * `protocol/http_api_pubsub.ts`; {@linkcode pubsubRoutes} registers the
 * routes (behind the app's bearer check, as every route).
 *
 * @module
 */
import type { Context, Hono } from "hono";
import type { NodeApi } from "../../node/node_api.ts";
import { HTTP_API_LIMITS, ROUTES } from "../../protocol/http_api.ts";
import {
  describe,
  toBase64,
  valueFromWire,
  WireFormatError,
} from "../../protocol/http_api_codec.ts";
import type {
  GroupAckResponse,
  GroupFetchResponse,
  GroupJoinResponse,
  GroupLeaveResponse,
  PublishResponse,
  StaleGenerationDetails,
  TopicDeleteResponse,
  WireDelivery,
  WireGroupOptions,
  WireResetTarget,
  WireRetention,
} from "../../protocol/http_api_pubsub.ts";
import { PUBSUB_LIMITS } from "../../protocol/http_api_pubsub.ts";
import type { KvPubsubStep } from "../../model/types.ts";
import {
  type Delivery,
  type MemberRef,
  type PortAck,
  type PortMessage,
  publishCommand,
  PubsubError,
  type PubsubPort,
  validateMemberId,
  validateName,
} from "../../services/pubsub/api.ts";
import { fields } from "./_parse.ts";
import { reply } from "./_body.ts";
import { HttpApiError } from "./_errors.ts";
import {
  consistencyOf,
  type RouteContext,
  streamLease,
} from "./_route_context.ts";
import { sseFrame, sseResponse } from "./_sse.ts";

type Fields = Record<string, unknown>;

function bad(message: string): WireFormatError {
  return new WireFormatError("badRequest", message);
}

/**
 * The node's pub/sub port.
 *
 * @throws {HttpApiError} `unsupported` when the node serves none.
 */
export function pubsubOf(node: NodeApi): PubsubPort {
  if (node.pubsub === undefined) {
    throw new HttpApiError(
      "unsupported",
      "Cannot use topics or groups: this node serves none",
    );
  }
  return node.pubsub;
}

/** Runs `work`, answering the service's refusals as API errors. */
export async function pubsubCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof PubsubError)) throw error;
    throw new HttpApiError(error.code, error.message, error.details ?? {}, {
      cause: error,
    });
  }
}

function required(f: Fields, field: string): unknown {
  if (f[field] === undefined) throw bad(`Invalid body: missing '${field}'`);
  return f[field];
}

function text(value: unknown, field: string): string {
  if (typeof value !== "string") {
    throw bad(
      `Invalid '${field}': expected a string, received ${describe(value)}`,
    );
  }
  return value;
}

function optionalText(value: unknown, field: string): string | undefined {
  return value === undefined ? undefined : text(value, field);
}

function number(value: unknown, field: string): number {
  if (typeof value !== "number") {
    throw bad(
      `Invalid '${field}': expected a number, received ${describe(value)}`,
    );
  }
  return value;
}

function optionalNumber(value: unknown, field: string): number | undefined {
  return value === undefined ? undefined : number(value, field);
}

function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw bad(
    `Invalid '${field}': expected a boolean, received ${describe(value)}`,
  );
}

function object(value: unknown, field: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad(
      `Invalid '${field}': expected an object, received ${describe(value)}`,
    );
  }
  return value as Fields;
}

function list(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) {
    throw bad(
      `Invalid '${field}': expected a list, received ${describe(value)}`,
    );
  }
  return value;
}

/** Header names to string values. */
function headersField(value: unknown, field: string): Record<string, string> {
  const headers = object(value, field);
  for (const [name, header] of Object.entries(headers)) {
    if (typeof header !== "string") {
      throw bad(
        `Invalid '${field}.${name.slice(0, 64)}': expected a string, received ${
          describe(header)
        }`,
      );
    }
  }
  return headers as Record<string, string>;
}

/** A `WirePublishMessage` → the port's message (value decoded). */
export function parseMessage(body: unknown, at: number): PortMessage {
  const field = `messages[${at}]`;
  const f = fields(object(body, field), [
    "value",
    "key",
    "headers",
    "partition",
    "sequence",
    "delayMs",
    "deliverAtMs",
  ]);
  const value = valueFromWire(required(f, "value"), `${field}.value`);
  if (value.encoding !== "v8" && value.encoding !== "bytes") {
    throw new HttpApiError(
      "invalid",
      `Invalid '${field}.value.encoding': a message value is 'v8' or 'bytes', received '${value.encoding}'`,
    );
  }
  const key = optionalText(f.key, `${field}.key`);
  const partition = optionalNumber(f.partition, `${field}.partition`);
  const sequence = optionalNumber(f.sequence, `${field}.sequence`);
  const delayMs = optionalNumber(f.delayMs, `${field}.delayMs`);
  const deliverAtMs = optionalNumber(f.deliverAtMs, `${field}.deliverAtMs`);
  return {
    value: value.data,
    encoding: value.encoding,
    ...(key === undefined ? {} : { key }),
    ...(f.headers === undefined
      ? {}
      : { headers: headersField(f.headers, `${field}.headers`) }),
    ...(partition === undefined ? {} : { partition }),
    ...(sequence === undefined ? {} : { sequence }),
    ...(delayMs === undefined ? {} : { delayMs }),
    ...(deliverAtMs === undefined ? {} : { deliverAtMs }),
  };
}

/** A `PublishRequest` → topic, messages and producer. */
export function parsePublish(body: unknown): {
  topic: string;
  messages: PortMessage[];
  producerId: string | undefined;
} {
  const f = fields(body, ["topic", "messages", "producerId"]);
  const topic = text(required(f, "topic"), "topic");
  const wire = list(required(f, "messages"), "messages");
  if (wire.length > PUBSUB_LIMITS.batchMessagesMax) {
    throw new HttpApiError(
      "limitExceeded",
      `A publish carries 1 to ${PUBSUB_LIMITS.batchMessagesMax} messages: received ${wire.length}`,
      { limit: "batchMessagesMax", max: PUBSUB_LIMITS.batchMessagesMax },
    );
  }
  return {
    topic,
    messages: wire.map(parseMessage),
    producerId: optionalText(f.producerId, "producerId"),
  };
}

function memberOf(f: Fields, memberField: string): MemberRef {
  return {
    topic: text(required(f, "topic"), "topic"),
    group: text(required(f, "group"), "group"),
    memberId: text(required(f, memberField), memberField),
    generation: number(required(f, "generation"), "generation"),
  };
}

function parseAck(body: unknown, at: number): PortAck {
  const field = `acks[${at}]`;
  const f = fields(object(body, field), [
    "partition",
    "offset",
    "action",
    "delayMs",
  ]);
  const delayMs = optionalNumber(f.delayMs, `${field}.delayMs`);
  return {
    partition: number(required(f, "partition"), `${field}.partition`),
    offset: number(required(f, "offset"), `${field}.offset`),
    action: text(required(f, "action"), `${field}.action`) as PortAck["action"],
    ...(delayMs === undefined ? {} : { delayMs }),
  };
}

/** A delivery as the wire carries it (`bytesAsText`: base64 data, for SSE). */
export function wireDelivery(
  delivery: Delivery,
  bytesAsText: boolean,
): WireDelivery {
  return {
    partition: delivery.partition,
    offset: delivery.offset,
    key: delivery.key,
    value: {
      encoding: delivery.encoding,
      data: bytesAsText ? toBase64(delivery.value) : delivery.value,
    },
    headers: Object.fromEntries(delivery.headers),
    publishedAtMs: delivery.publishedAtMs,
    delivery: delivery.delivery,
    deadlineMs: delivery.deadlineMs,
  };
}

/** The query of `GET /v1/groups/consume`. */
export function parseConsumeQuery(c: Context): MemberRef {
  const query = (name: string): string => {
    const value = c.req.query(name);
    if (value === undefined || value === "") {
      throw bad(`Invalid query: missing '${name}'`);
    }
    return value;
  };
  const generation = query("generation");
  if (!/^\d{1,15}$/.test(generation)) {
    throw bad(
      `Invalid 'generation': expected a non-negative integer, received '${
        generation.slice(0, 40)
      }'`,
    );
  }
  return {
    topic: query("topic"),
    group: query("group"),
    memberId: query("member"),
    generation: Number(generation),
  };
}

type ConsumeItem =
  | { readonly type: "message"; readonly delivery: Delivery }
  | ({ readonly type: "fenced" } & StaleGenerationDetails);

function consumeFrame(item: ConsumeItem): Uint8Array {
  if (item.type === "fenced") {
    const details: StaleGenerationDetails = {
      generation: item.generation,
      assignment: item.assignment,
    };
    return sseFrame({ event: "fenced" }, JSON.stringify(details));
  }
  return sseFrame(
    { event: "message" },
    JSON.stringify(wireDelivery(item.delivery, true)),
  );
}

function consume(ctx: RouteContext, c: Context): Promise<Response> {
  const member = parseConsumeQuery(c);
  const pubsub = pubsubOf(ctx.node);
  const slot = streamLease(ctx.streams, c);
  return sseResponse(
    c.req.raw.signal,
    (signal) => pubsubCall(() => pubsub.consume(member, signal)),
    consumeFrame,
    HTTP_API_LIMITS.watchKeepAliveMs,
    () => slot.release(),
  );
}

async function fetchMessages(
  ctx: RouteContext,
  c: Context,
  body: unknown,
): Promise<GroupFetchResponse> {
  const f = fields(body, [
    "topic",
    "group",
    "memberId",
    "generation",
    "batch",
    "maxWaitMs",
    "maxBytes",
  ]);
  const member = memberOf(f, "memberId");
  const batch = optionalNumber(f.batch, "batch");
  const maxWaitMs = optionalNumber(f.maxWaitMs, "maxWaitMs");
  const maxBytes = optionalNumber(f.maxBytes, "maxBytes");
  const pubsub = pubsubOf(ctx.node);
  // A fetch that may wait holds a slot of the long-lived stream budget.
  const slot = maxWaitMs !== undefined && maxWaitMs > 0
    ? streamLease(ctx.streams, c)
    : null;
  try {
    const answer = await pubsubCall(() =>
      pubsub.fetch(member, {
        ...(batch === undefined ? {} : { batch }),
        ...(maxWaitMs === undefined ? {} : { maxWaitMs }),
        ...(maxBytes === undefined ? {} : { maxBytes }),
      }, slot === null ? undefined : c.req.raw.signal)
    );
    return {
      generation: answer.generation,
      messages: answer.messages.map((d) => wireDelivery(d, false)),
    };
  } finally {
    slot?.release();
  }
}

/** Registers the `/v1/topics/...` and `/v1/groups/...` routes on `app`. */
export function pubsubRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body } = ctx;
  const post = (route: string, handle: (c: Context) => Promise<unknown>) =>
    app.post(route, async (c) => reply(c, await handle(c)));

  post(ROUTES.topicCreate, async (c) => {
    const f = fields(await body(c), [
      "name",
      "partitions",
      "retention",
      "dedupWindowMs",
    ]);
    const name = text(required(f, "name"), "name");
    const partitions = optionalNumber(f.partitions, "partitions");
    const dedupWindowMs = optionalNumber(f.dedupWindowMs, "dedupWindowMs");
    const retention = f.retention === undefined
      ? undefined
      : object(f.retention, "retention") as WireRetention;
    return await pubsubCall(() =>
      pubsubOf(node).createTopic({
        name,
        ...(partitions === undefined ? {} : { partitions }),
        ...(retention === undefined ? {} : { retention }),
        ...(dedupWindowMs === undefined ? {} : { dedupWindowMs }),
      })
    );
  });
  post(ROUTES.topicList, async (c) => {
    fields(await body(c), []);
    return await pubsubCall(() => pubsubOf(node).listTopics(consistencyOf(c)));
  });
  post(ROUTES.topicDescribe, async (c) => {
    const f = fields(await body(c), ["name"]);
    const name = text(required(f, "name"), "name");
    return await pubsubCall(() =>
      pubsubOf(node).describeTopic(name, consistencyOf(c))
    );
  });
  post(ROUTES.topicDelete, async (c) => {
    const f = fields(await body(c), ["name", "force"]);
    const name = text(required(f, "name"), "name");
    const force = optionalBoolean(f.force, "force") ?? false;
    const answer: TopicDeleteResponse = await pubsubCall(() =>
      pubsubOf(node).deleteTopic(name, force)
    );
    return answer;
  });
  post(ROUTES.topicPublish, async (c) => {
    const request = parsePublish(await body(c));
    const answer: PublishResponse = await pubsubCall(() =>
      pubsubOf(node).publish(
        request.topic,
        request.messages,
        request.producerId,
      )
    );
    return answer;
  });

  post(ROUTES.groupJoin, async (c) => {
    const f = fields(await body(c), [
      "topic",
      "group",
      "memberId",
      "lease",
      "options",
    ]);
    const topic = text(required(f, "topic"), "topic");
    const group = text(required(f, "group"), "group");
    const memberId = optionalText(f.memberId, "memberId");
    const lease = text(required(f, "lease"), "lease");
    const options = f.options === undefined
      ? undefined
      : object(f.options, "options") as WireGroupOptions;
    const answer: GroupJoinResponse = await pubsubCall(() =>
      pubsubOf(node).join({
        topic,
        group,
        lease,
        ...(memberId === undefined ? {} : { memberId }),
        ...(options === undefined ? {} : { options }),
      })
    );
    return answer;
  });
  post(ROUTES.groupLeave, async (c) => {
    const f = fields(await body(c), ["topic", "group", "memberId"]);
    const topic = text(required(f, "topic"), "topic");
    const group = text(required(f, "group"), "group");
    const memberId = text(required(f, "memberId"), "memberId");
    const answer: GroupLeaveResponse = await pubsubCall(() =>
      pubsubOf(node).leave(topic, group, memberId)
    );
    return answer;
  });
  post(ROUTES.groupFetch, async (c) => fetchMessages(ctx, c, await body(c)));
  post(ROUTES.groupAck, async (c) => {
    const f = fields(await body(c), [
      "topic",
      "group",
      "memberId",
      "generation",
      "acks",
    ]);
    const member = memberOf(f, "memberId");
    const acks = list(required(f, "acks"), "acks").map(parseAck);
    const answer = await pubsubCall(() => pubsubOf(node).ack(member, acks));
    const wire: GroupAckResponse = {
      results: answer.results.map((r) =>
        r.ok ? r : { ...r, reason: "finished" as const }
      ),
    };
    return wire;
  });
  post(ROUTES.groupList, async (c) => {
    const f = fields(await body(c), ["topic"]);
    const topic = optionalText(f.topic, "topic");
    return await pubsubCall(() =>
      pubsubOf(node).listGroups(topic, consistencyOf(c))
    );
  });
  post(ROUTES.groupDescribe, async (c) => {
    const f = fields(await body(c), ["topic", "group"]);
    const topic = text(required(f, "topic"), "topic");
    const group = text(required(f, "group"), "group");
    return await pubsubCall(() =>
      pubsubOf(node).describeGroup(topic, group, consistencyOf(c))
    );
  });
  post(ROUTES.groupReset, async (c) => {
    const f = fields(await body(c), [
      "topic",
      "group",
      "to",
      "partition",
      "force",
    ]);
    const topic = text(required(f, "topic"), "topic");
    const group = text(required(f, "group"), "group");
    const to = required(f, "to") as WireResetTarget;
    const partition = optionalNumber(f.partition, "partition");
    const force = optionalBoolean(f.force, "force");
    return await pubsubCall(() =>
      pubsubOf(node).resetGroup({
        topic,
        group,
        to,
        ...(partition === undefined ? {} : { partition }),
        ...(force === undefined ? {} : { force }),
      })
    );
  });
  post(ROUTES.groupPause, async (c) => {
    const f = fields(await body(c), ["topic", "group", "untilMs"]);
    const topic = text(required(f, "topic"), "topic");
    const group = text(required(f, "group"), "group");
    const untilMs = optionalNumber(f.untilMs, "untilMs");
    return await pubsubCall(() =>
      pubsubOf(node).pauseGroup(topic, group, untilMs)
    );
  });
  post(ROUTES.groupResume, async (c) => {
    const f = fields(await body(c), ["topic", "group"]);
    const topic = text(required(f, "topic"), "topic");
    const group = text(required(f, "group"), "group");
    return await pubsubCall(() => pubsubOf(node).resumeGroup(topic, group));
  });
  app.get(ROUTES.groupConsume, (c) => consume(ctx, c));
}

/**
 * The pub/sub step of a `POST /v1/kv/atomic` request (`publishes`, `acks`;
 * absent when it has neither), checked as a publish and an ack are, with
 * delays made absolute by this node's clock.
 */
export function parseAtomicPubsub(
  body: unknown,
  nowMs: number,
): KvPubsubStep | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const f = body as Fields;
  if (f.publishes === undefined && f.acks === undefined) return undefined;
  const publishes = f.publishes === undefined
    ? []
    : list(f.publishes, "publishes");
  const acks = f.acks === undefined ? [] : list(f.acks, "acks");
  if (publishes.length + acks.length > PUBSUB_LIMITS.acksMax) {
    throw new HttpApiError(
      "limitExceeded",
      `An atomic operation carries at most ${PUBSUB_LIMITS.acksMax} publishes and acks`,
    );
  }
  try {
    return {
      nowMs,
      publishes: publishes.map((raw, i) => {
        const entry = object(raw, `publishes[${i}]`);
        const { topic, producerId, ...rest } = entry;
        const message = parseMessage(rest, i);
        const producer = optionalText(producerId, `publishes[${i}].producerId`);
        const command = publishCommand(
          text(topic, `publishes[${i}].topic`),
          [message],
          producer,
          nowMs,
        );
        const published = command.messages[0]!;
        return {
          topic: command.topic,
          producerId: command.producerId,
          ...published,
        };
      }),
      acks: acks.map((raw, i) => {
        const f = fields(object(raw, `acks[${i}]`), [
          "topic",
          "group",
          "memberId",
          "generation",
          "partition",
          "offset",
        ]);
        return {
          topic: validateName("topic", text(required(f, "topic"), "topic")),
          group: validateName("group", text(required(f, "group"), "group")),
          memberId: validateMemberId(
            text(required(f, "memberId"), "memberId"),
          ),
          generation: number(required(f, "generation"), "generation"),
          partition: number(required(f, "partition"), "partition"),
          offset: number(required(f, "offset"), "offset"),
        };
      }),
    };
  } catch (error) {
    if (error instanceof PubsubError) {
      throw new HttpApiError(error.code, error.message, error.details);
    }
    throw error;
  }
}
