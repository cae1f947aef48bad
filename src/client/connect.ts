/**
 * {@linkcode connect}: the entry point of the Aspen client.
 *
 * @module
 */
import { HttpTransport } from "./_transport.ts";
import { isTicket, ticketClusterId, ticketUrls } from "./_ticket.ts";
import { AspenCluster } from "./cluster.ts";
import { AspenKv } from "./kv.ts";
import { AspenHooks } from "./hooks.ts";
import { AspenLeases } from "./leases.ts";
import { AspenLocks } from "./locks.ts";
import { AspenElections } from "./elections.ts";
import { AspenEvents } from "./events.ts";
import { AspenPubsub } from "./pubsub.ts";
import { OwnLease } from "./_own_lease.ts";
import type { ConnectOptions } from "./types.ts";

/** Default deadline of one request, in ms. */
export const REQUEST_TIMEOUT_MS_DEFAULT = 10_000;
const ATTEMPTS_PER_NODE = 2;
const ATTEMPTS_MIN = 3;

/** A connection to an Aspen cluster. */
export class AspenClient {
  /** The `Deno.Kv`-shaped store. */
  readonly kv: AspenKv;
  /** Status and membership administration. */
  readonly cluster: AspenCluster;
  /** Durable hooks (webhooks, queues) and the webhook workers' protocol. */
  readonly hooks: AspenHooks;
  /** Leases: grant, keep alive, revoke, inspect, and open (kept alive). */
  readonly leases: AspenLeases;
  /** Locks and semaphores with fencing tokens. */
  readonly locks: AspenLocks;
  /** Leader elections with fencing tokens. */
  readonly elections: AspenElections;
  /** The events history: resumable watch, list, status. */
  readonly events: AspenEvents;
  /** Pub/sub: topics, publishing, consumer groups. */
  readonly pubsub: AspenPubsub;
  readonly #transport: HttpTransport;
  readonly #ownLease: OwnLease;

  /**
   * Used by {@linkcode connect}.
   *
   * @param transport The requests' transport.
   * @param streams How event streams (`elections.observe`, `events.watch`) reach a node.
   */
  constructor(transport: HttpTransport, streams: StreamOptions = {}) {
    this.#transport = transport;
    this.kv = new AspenKv(transport);
    this.hooks = new AspenHooks(transport);
    this.cluster = new AspenCluster(transport);
    this.leases = new AspenLeases(transport);
    this.#ownLease = new OwnLease(this.leases);
    this.locks = new AspenLocks(transport, this.#ownLease);
    const connector = {
      urls: () => transport.urls,
      token: streams.token,
      clusterId: streams.clusterId,
      fetch: streams.fetch ?? ((input, init) => fetch(input, init)),
      closed: transport.closed,
    };
    this.elections = new AspenElections(transport, this.#ownLease, connector);
    this.events = new AspenEvents(transport, connector);
    this.pubsub = new AspenPubsub(transport, this.leases, connector);
  }

  /** The node URLs, the one tried first leading. */
  get urls(): readonly string[] {
    return this.#transport.urls;
  }

  /** Aborts in-flight requests; later calls fail. */
  close(): void {
    this.#transport.close();
  }

  /** Same as {@linkcode AspenClient.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Revokes the client's own lease (releasing the locks and elections held
   * with it at once, rather than when its 10 s TTL passes), then closes.
   * For `await using`.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#ownLease.close();
    } finally {
      this.close();
    }
  }
}

/** What `elections.observe` streams need to reach a node (as `connect`'s options). */
export interface StreamOptions {
  /** Bearer token. */
  readonly token?: string;
  /** The cluster id every node must belong to. */
  readonly clusterId?: string;
  /** The `fetch` to use. Default `globalThis.fetch`. */
  readonly fetch?: typeof fetch;
}

/**
 * Connects to an Aspen cluster. Nothing is sent until the first call.
 *
 * @example
 * ```ts ignore
 * import { connect, KvU64 } from "@aspen/aspen";
 * using client = connect("http://127.0.0.1:8080", { token: "secret" });
 * await client.kv.set(["visits"], new KvU64(0n));
 * await client.kv.atomic().sum(["visits"], 1n).commit();
 * ```
 *
 * @example Several nodes, or a ticket
 * ```ts
 * import { connect } from "./connect.ts";
 * import assert from "node:assert/strict";
 * const client = connect(["http://127.0.0.1:4001", "http://127.0.0.1:4002"]);
 * assert.equal(client.urls.length, 2);
 * client.close();
 * ```
 *
 * @param urlOrTicket A node URL, a list of node URLs, or a client ticket (`aspen…`).
 * @param options Token, deadline, body format, attempts.
 * @returns The client.
 * A ticket names its cluster: every node answering is checked to belong to
 * it (the request carries the id, the node refuses another cluster's before
 * applying anything, and the client checks the id the node answers with); a
 * node of another cluster is skipped and, if none of the right one answers,
 * the call fails with a `WrongClusterError`. Given URLs only, the first node
 * that answers names the cluster, and the others must belong to it.
 *
 * @throws {TypeError} When no URL is given, a URL is not http(s), the ticket is unreadable, or tickets name different clusters.
 */
export function connect(
  urlOrTicket: string | readonly string[],
  options: ConnectOptions = {},
): AspenClient {
  const given = typeof urlOrTicket === "string" ? [urlOrTicket] : urlOrTicket;
  const urls = given.flatMap((text) =>
    isTicket(text) ? ticketUrls(text) : [text]
  );
  const clusterIds = new Set(
    given.filter(isTicket).map((text) => ticketClusterId(text)),
  );
  if (options.clusterId !== undefined) clusterIds.add(options.clusterId);
  if (clusterIds.size > 1) {
    throw new TypeError(
      `Cannot connect as the tickets (or 'clusterId') name ${clusterIds.size} different clusters`,
    );
  }
  for (const url of urls) {
    if (!/^https?:\/\/[^/]/.test(url)) {
      throw new TypeError(
        `Cannot connect as the URL must start with http:// or https://: received '${url}'`,
      );
    }
  }
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(
      `Cannot connect as 'timeoutMs' must be a positive integer: current value is ${timeoutMs}`,
    );
  }
  const attemptsMax = options.attemptsMax ??
    Math.max(ATTEMPTS_MIN, urls.length * ATTEMPTS_PER_NODE);
  if (
    !Number.isSafeInteger(attemptsMax) || attemptsMax < 1 || attemptsMax > 100
  ) {
    throw new RangeError(
      `Cannot connect as 'attemptsMax' must be 1 to 100: current value is ${attemptsMax}`,
    );
  }
  const fetchFunction = options.fetch ?? ((input, init) => fetch(input, init));
  const clusterId = [...clusterIds][0];
  return new AspenClient(
    new HttpTransport({
      urls,
      token: options.token,
      timeoutMs,
      format: options.format ?? "json",
      attemptsMax,
      fetch: fetchFunction,
      clusterId,
    }),
    { token: options.token, clusterId, fetch: fetchFunction },
  );
}
