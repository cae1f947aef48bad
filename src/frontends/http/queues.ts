/**
 * The `/v1/queue/...` handlers: parsed requests in, wire bodies out. Listen
 * is served by the leader only (its dispatcher leases the messages); a
 * follower answers `notLeader` naming the leader. Ack, nack and configure
 * are proposals, so any node takes them. {@linkcode queueRoutes} registers
 * them.
 *
 * @module
 */
import type { Hono } from "hono";
import {
  type KvConsistency,
  KvNotLeaderError,
  type KvQueues,
} from "../../services/kv/api.ts";
import { validateQueueName } from "../../services/queues/api.ts";
import {
  versionstampFromString,
  versionstampToString,
} from "../../model/versionstamp.ts";
import type { NodeApi } from "../../node/node_api.ts";
import { HTTP_API_LIMITS, ROUTES } from "../../protocol/http_api.ts";
import type {
  QueueCountResponse,
  QueueInfoResponse,
  QueueListenResponse,
  QueuePeekResponse,
} from "../../protocol/http_api_queue.ts";
import { describe, WireFormatError } from "../../protocol/http_api_codec.ts";
import { HttpApiError } from "./_errors.ts";
import { fields, optionalInteger } from "./_parse.ts";
import { reply } from "./_body.ts";
import {
  consistencyOf,
  OK,
  type RouteContext,
  streamLease,
} from "./_route_context.ts";

function bad(message: string): WireFormatError {
  return new WireFormatError("badRequest", message);
}

function queues(node: NodeApi): KvQueues {
  const { queues } = node.backend;
  if (queues === undefined) {
    throw new HttpApiError(
      "unsupported",
      "Cannot use queues: this node's backend has no queue delivery",
    );
  }
  return queues;
}

function queueName(value: unknown): string {
  if (value === undefined) return "";
  try {
    return validateQueueName(value);
  } catch (error) {
    throw new WireFormatError("invalid", (error as Error).message);
  }
}

function messageId(value: unknown, field: string): Uint8Array {
  if (typeof value === "string") {
    try {
      return versionstampFromString(value);
    } catch {
      // Answered below.
    }
  }
  throw new WireFormatError(
    "invalid",
    `Invalid '${field}': expected 20 hex characters, received ${
      describe(value)
    }`,
  );
}

function idList(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) {
    throw bad(
      `Invalid '${field}': expected a list, received ${describe(value)}`,
    );
  }
  if (value.length > HTTP_API_LIMITS.queueIdsMax) {
    throw new HttpApiError(
      "limitExceeded",
      `Too many messages (max ${HTTP_API_LIMITS.queueIdsMax})`,
      { limit: "queueIds", max: HTTP_API_LIMITS.queueIdsMax },
    );
  }
  return value;
}

/** `POST /v1/queue/listen`: waits for messages and leases them. */
export async function listen(
  node: NodeApi,
  body: unknown,
  signal: AbortSignal,
): Promise<QueueListenResponse> {
  const f = fields(body, ["queue", "countMax", "leaseMs", "waitMs"]);
  const options = {
    queue: queueName(f.queue),
    countMax: optionalInteger(
      f.countMax,
      "countMax",
      1,
      HTTP_API_LIMITS.queueListenCountMax,
    ) ?? 1,
    leaseMs: optionalInteger(
      f.leaseMs,
      "leaseMs",
      1,
      HTTP_API_LIMITS.queueLeaseMsMax,
    ) ?? HTTP_API_LIMITS.queueLeaseMsDefault,
    waitMs: optionalInteger(
      f.waitMs,
      "waitMs",
      0,
      HTTP_API_LIMITS.queueWaitMsMax,
    ) ?? HTTP_API_LIMITS.queueWaitMsDefault,
    signal,
  };
  try {
    const deliveries = await queues(node).listen(options);
    return {
      messages: deliveries.map((d) => ({
        id: versionstampToString(d.id),
        queue: d.queue,
        payload: d.payload,
        delivery: d.delivery,
        leaseDeadlineMs: d.leaseDeadlineMs,
      })),
    };
  } catch (error) {
    if (!(error instanceof KvNotLeaderError)) throw error;
    throw new HttpApiError("notLeader", error.message, {
      leaderUrl: node.status().leaderHttpUrl,
    });
  }
}

/** `POST /v1/queue/ack` */
export async function ack(
  node: NodeApi,
  body: unknown,
): Promise<QueueCountResponse> {
  const ids = idList(fields(body, ["ids"]).ids, "ids").map((id, i) =>
    messageId(id, `ids[${i}]`)
  );
  return { count: await queues(node).ack(ids) };
}

/** `POST /v1/queue/nack` */
export async function nack(
  node: NodeApi,
  body: unknown,
): Promise<QueueCountResponse> {
  const messages = idList(fields(body, ["messages"]).messages, "messages").map(
    (wire, i) => {
      const f = fields(wire, ["id", "delivery"]);
      const delivery = optionalInteger(
        f.delivery,
        `messages[${i}].delivery`,
        1,
        Number.MAX_SAFE_INTEGER,
      );
      if (delivery === undefined) {
        throw bad(`Invalid body: missing 'messages[${i}].delivery'`);
      }
      return { id: messageId(f.id, `messages[${i}].id`), delivery };
    },
  );
  return { count: await queues(node).nack(messages) };
}

/** `POST /v1/queue/info` */
export async function info(
  node: NodeApi,
  body: unknown,
  consistency: KvConsistency,
): Promise<QueueInfoResponse> {
  const queue = queueName(fields(body, ["queue"]).queue);
  return await queues(node).info(queue, consistency);
}

/** `POST /v1/queue/peek` */
export async function peek(
  node: NodeApi,
  body: unknown,
  consistency: KvConsistency,
): Promise<QueuePeekResponse> {
  const f = fields(body, ["queue", "limit"]);
  const limit = optionalInteger(
    f.limit,
    "limit",
    1,
    HTTP_API_LIMITS.queuePeekLimitMax,
  ) ?? 10;
  const messages = await queues(node).peek(
    queueName(f.queue),
    limit,
    consistency,
  );
  return {
    messages: messages.map((m) => ({
      id: versionstampToString(m.id),
      queue: m.queue,
      payload: m.payload,
      readyAtMs: m.readyAtMs,
      delivery: m.delivery,
    })),
  };
}

/** `POST /v1/queue/configure` */
export async function configure(node: NodeApi, body: unknown): Promise<void> {
  const f = fields(body, ["queue", "concurrencyMax"]);
  if (f.concurrencyMax === undefined) {
    throw bad("Invalid body: missing 'concurrencyMax'");
  }
  const concurrencyMax = f.concurrencyMax === null
    ? null
    : optionalInteger(f.concurrencyMax, "concurrencyMax", 1, 100_000)!;
  await queues(node).configure(queueName(f.queue), concurrencyMax);
}

/** Registers the `/v1/queue/...` routes on `app`. */
export function queueRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body, streams } = ctx;
  app.post(ROUTES.queueListen, async (c) => {
    const request = await body(c);
    const lease = streamLease(streams, c);
    try {
      return reply(c, await listen(node, request, c.req.raw.signal));
    } finally {
      lease.release();
    }
  });
  app.post(
    ROUTES.queueAck,
    async (c) => reply(c, await ack(node, await body(c))),
  );
  app.post(
    ROUTES.queueNack,
    async (c) => reply(c, await nack(node, await body(c))),
  );
  app.post(
    ROUTES.queueInfo,
    async (c) => reply(c, await info(node, await body(c), consistencyOf(c))),
  );
  app.post(
    ROUTES.queuePeek,
    async (c) => reply(c, await peek(node, await body(c), consistencyOf(c))),
  );
  app.post(ROUTES.queueConfigure, async (c) => {
    await configure(node, await body(c));
    return reply(c, OK);
  });
}
