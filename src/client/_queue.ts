/**
 * The queue side of the client: `listenQueue`'s loop (long-poll the leader,
 * run the handler, ack on success, nack on a throw) and the wire calls for
 * enqueue options, info and peek.
 *
 * @module
 */
import {
  HTTP_API_LIMITS,
  ROUTES,
  type WireEnqueue,
} from "../protocol/http_api.ts";
import type {
  QueueInfoResponse,
  QueueListenResponse,
  QueuePeekResponse,
  WireQueueMessage,
} from "../protocol/http_api_queue.ts";
import { bytesFromWire, keyToWire } from "../protocol/http_api_codec.ts";
import { deserializeV8, serializeV8 } from "../model/v8_codec.ts";
import type { HttpTransport } from "./_transport.ts";
import { sleep } from "./_watch.ts";
import type {
  KvEnqueueOptions,
  KvListenQueueOptions,
  KvQueueInfo,
  KvQueueMessage,
} from "./types.ts";

/** Pause after a failed listen before the next, in ms. */
const LISTEN_RETRY_MS = 100;
/** Handlers one listener runs at once by default. */
const CONCURRENCY_DEFAULT = 10;

/**
 * The wire form of an enqueue. The value is V8-serialized whatever it is
 * (as Deno KV does), so bytes come back as a `Uint8Array`, not raw bytes.
 *
 * @throws {TypeError} For values V8 cannot serialize.
 */
export function enqueueToWire(
  value: unknown,
  options: KvEnqueueOptions,
): WireEnqueue {
  return {
    payload: serializeV8(value),
    ...(options.delay === undefined ? {} : { delay: options.delay }),
    ...(options.keysIfUndelivered === undefined ? {} : {
      keysIfUndelivered: options.keysIfUndelivered.map((key) => keyToWire(key)),
    }),
    ...(options.backoffSchedule === undefined
      ? {}
      : { backoffSchedule: options.backoffSchedule }),
    ...(options.queue === undefined ? {} : { queue: options.queue }),
  };
}

async function deliver(
  transport: HttpTransport,
  message: WireQueueMessage,
  handler: (value: unknown) => unknown,
): Promise<void> {
  let succeeded: boolean;
  try {
    await handler(deserializeV8(bytesFromWire(message.payload, "payload")));
    succeeded = true;
  } catch {
    succeeded = false;
  }
  try {
    if (succeeded) {
      await transport.request("POST", ROUTES.queueAck, {
        ids: [message.id],
      }, "write");
    } else {
      await transport.request("POST", ROUTES.queueNack, {
        messages: [{ id: message.id, delivery: message.delivery }],
      }, "write");
    }
  } catch {
    // Unacknowledged: the lease ends and the message is delivered again.
  }
}

/**
 * Delivers messages to `handler` until the client closes: at least once,
 * acking each delivery whose handler resolved and nacking (retry after the
 * backoff schedule) each whose handler threw.
 *
 * @throws {RangeError} For a concurrency or lease out of range.
 */
export async function listenLoop(
  transport: HttpTransport,
  handler: (value: unknown) => unknown,
  options: KvListenQueueOptions,
  timeoutMs: number,
): Promise<void> {
  const concurrency = options.concurrency ?? CONCURRENCY_DEFAULT;
  if (
    !Number.isSafeInteger(concurrency) || concurrency < 1 ||
    concurrency > HTTP_API_LIMITS.queueListenCountMax
  ) {
    throw new RangeError(
      `Cannot listen as 'concurrency' must be 1 to ${HTTP_API_LIMITS.queueListenCountMax}: current value is ${concurrency}`,
    );
  }
  const signal = transport.closed;
  // Answered well before the request deadline, so a quiet queue is no error.
  const waitMs = Math.min(
    HTTP_API_LIMITS.queueWaitMsDefault,
    Math.floor(timeoutMs / 2),
  );
  const running = new Set<Promise<void>>();
  while (!signal.aborted) {
    if (running.size >= concurrency) {
      await Promise.race(running);
      continue;
    }
    let reply: QueueListenResponse;
    try {
      reply = await transport.request("POST", ROUTES.queueListen, {
        ...(options.queue === undefined ? {} : { queue: options.queue }),
        countMax: concurrency - running.size,
        ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
        waitMs,
      }, "idempotent") as QueueListenResponse;
    } catch {
      // No leader yet, a node down: try again (on the leader when named).
      await sleep(LISTEN_RETRY_MS, signal);
      continue;
    }
    for (const message of reply.messages) {
      const delivery: Promise<void> = deliver(transport, message, handler)
        .finally(() => running.delete(delivery));
      running.add(delivery);
    }
  }
}

/** `POST /v1/queue/info` */
export async function queueInfo(
  transport: HttpTransport,
  queue: string | undefined,
): Promise<KvQueueInfo> {
  const reply = await transport.request(
    "POST",
    ROUTES.queueInfo,
    queue === undefined ? {} : { queue },
    "idempotent",
  ) as QueueInfoResponse;
  return reply;
}

/** `POST /v1/queue/peek` */
export async function peekQueue<T>(
  transport: HttpTransport,
  queue: string | undefined,
  limit: number | undefined,
): Promise<KvQueueMessage<T>[]> {
  const reply = await transport.request("POST", ROUTES.queuePeek, {
    ...(queue === undefined ? {} : { queue }),
    ...(limit === undefined ? {} : { limit }),
  }, "idempotent") as QueuePeekResponse;
  return reply.messages.map((m) => ({
    id: m.id,
    queue: m.queue,
    value: deserializeV8(bytesFromWire(m.payload, "payload")) as T,
    readyAtMs: m.readyAtMs,
    delivery: m.delivery,
  }));
}
