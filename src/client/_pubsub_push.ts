/**
 * A consumer's push stream: `GET /v1/groups/consume?topic&group&member&generation`
 * (`text/event-stream`), each `event: message` frame a delivery the
 * cluster recorded before sending it. An `event: fenced` frame, or a 409
 * `staleGeneration` answer, means the group rebalanced: the consumer
 * rejoins and the stream starts again with the new generation. A dropped
 * stream or an unreachable node moves to the next node (or the leader a
 * node names) after a short pause; final refusals end it with their typed
 * error. Private to `src/client/`.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import type { WireDelivery } from "../protocol/http_api_pubsub.ts";
import { CLUSTER_ID_HEADER } from "./_transport.ts";
import { parseEvents, type StreamConnector } from "./_sse.ts";
import { sleepFor } from "./_timers.ts";
import {
  AuthError,
  errorFromWire,
  GroupNotFoundError,
  InvalidRequestError,
  LeaseNotFoundError,
  LimitExceededError,
  NotLeaderError,
  StaleGenerationError,
  TimeoutError,
  TopicNotFoundError,
  UnavailableError,
} from "./errors.ts";
import type { ConsumerMessage } from "./_pubsub_types.ts";

/** Pauses before reconnecting, ms, by consecutive failures (last repeats). */
const RECONNECT_MS = [0, 100, 200, 500, 1_000];
/** Consecutive rejoins without a delivered message before the stream gives up. */
const REJOINS_IN_A_ROW_MAX = 10;

/** What the stream needs from its consumer. */
export interface PushParts {
  readonly connector: StreamConnector;
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  /** Ends the stream (close, client close, lease lost). */
  readonly stop: AbortSignal;
  /** The lease's signal: its loss ends the stream with its reason. */
  readonly lease: AbortSignal | null;
  readonly generation: () => number;
  readonly rejoin: () => Promise<void>;
  readonly message: (wire: WireDelivery, generation: number) => ConsumerMessage;
}

function isFinal(error: unknown): boolean {
  return error instanceof InvalidRequestError ||
    error instanceof LimitExceededError || error instanceof AuthError ||
    error instanceof TopicNotFoundError ||
    error instanceof GroupNotFoundError ||
    error instanceof LeaseNotFoundError;
}

/** What one connection ended with. */
type Ending = "fenced" | "dropped" | { readonly leaderUrl: string };

/** The consumer's messages as the cluster pushes them, until `parts.stop`. */
export async function* pushStream(
  parts: PushParts,
): AsyncGenerator<ConsumerMessage> {
  let failures = 0;
  let rejoins = 0;
  let offset = 0;
  let leaderUrl: string | null = null;
  while (!parts.stop.aborted) {
    const urls = parts.connector.urls();
    const url = (leaderUrl ?? urls[offset % urls.length]!).replace(/\/+$/, "");
    leaderUrl = null;
    const generation = parts.generation();
    let ending: Ending = "dropped";
    let delivered = false;
    try {
      const response = await open(parts, url, generation);
      for await (const event of parseEvents(response)) {
        if (event.event === "fenced") {
          ending = "fenced";
          break;
        }
        if (event.event !== "message" && event.event !== "") continue;
        delivered = true;
        failures = 0;
        rejoins = 0;
        yield parts.message(JSON.parse(event.data) as WireDelivery, generation);
      }
    } catch (error) {
      if (parts.stop.aborted) break;
      if (isFinal(error)) throw error;
      if (error instanceof StaleGenerationError) ending = "fenced";
      else if (error instanceof NotLeaderError && error.leaderUrl !== null) {
        ending = { leaderUrl: error.leaderUrl };
      }
    }
    if (parts.stop.aborted) break;
    if (ending === "fenced") {
      if (++rejoins > REJOINS_IN_A_ROW_MAX) {
        throw new StaleGenerationError(
          "staleGeneration",
          `Cannot consume '${parts.topic}' as member '${parts.memberId}' of '${parts.group}': fenced after ${REJOINS_IN_A_ROW_MAX} rejoins in a row`,
        );
      }
      try {
        await parts.rejoin();
        continue;
      } catch (error) {
        // No leader for a moment: pause and try again, as for a drop.
        if (
          !(error instanceof UnavailableError || error instanceof TimeoutError)
        ) {
          throw error;
        }
        rejoins--;
      }
    }
    if (typeof ending === "object") {
      leaderUrl = ending.leaderUrl;
      continue;
    }
    if (!delivered) failures++;
    offset++;
    await sleepFor(
      RECONNECT_MS[Math.min(failures, RECONNECT_MS.length - 1)]!,
      parts.stop,
    );
  }
  if (parts.lease?.aborted) throw parts.lease.reason;
}

/**
 * Opens the stream on `url`.
 *
 * @throws {AspenError} The typed error of a refusal.
 */
async function open(
  parts: PushParts,
  url: string,
  generation: number,
): Promise<ReadableStream<Uint8Array>> {
  const { connector } = parts;
  const query = new URLSearchParams({
    topic: parts.topic,
    group: parts.group,
    member: parts.memberId,
    generation: String(generation),
  });
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (connector.token !== undefined) {
    headers.authorization = `Bearer ${connector.token}`;
  }
  if (connector.clusterId !== undefined) {
    headers[CLUSTER_ID_HEADER] = connector.clusterId;
  }
  const response = await connector.fetch(
    `${url}${ROUTES.groupConsume}?${query}`,
    { headers, signal: parts.stop },
  );
  if (response.ok && response.body !== null) return response.body;
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // No typed body: the status names the refusal.
  }
  throw errorFromWire(response.status, body, url);
}
