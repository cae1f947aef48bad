/**
 * `client.elections`: leader election on the locks service (a lock of one
 * permit whose holder carries a value). The leader's token fences its
 * writes like a lock's (`kv.atomic().checkFence(name, token)`).
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import {
  COORDINATION_LIMITS,
  type ElectionCampaignResponse,
  type ElectionLeaderResponse,
  type ElectionObserveEvent,
} from "../protocol/http_api_leases.ts";
import type { HttpTransport } from "./_transport.ts";
import { checkTimeout, waitForGrant } from "./_grant_wait.ts";
import type { OwnLease } from "./_own_lease.ts";
import { eventStream, type StreamConnector } from "./_sse.ts";
import { checkName, checkToken, holdingLease } from "./locks.ts";
import { NotHolderError } from "./errors.ts";
import type {
  CampaignOptions,
  ElectionLeader,
  ElectionObservation,
  Leadership,
  ObserveOptions,
} from "./types.ts";

const encoder = new TextEncoder();
/** A signal that never aborts: leadership of a lease this client does not keep. */
const NEVER = new AbortController().signal;

function checkValue(value: string): void {
  if (typeof value !== "string") {
    throw new TypeError(`Invalid value: expected a string: received ${value}`);
  }
  const bytes = encoder.encode(value).length;
  const max = COORDINATION_LIMITS.valueBytesMax;
  if (bytes > max) {
    throw new RangeError(
      `Invalid value: must be at most ${max} UTF-8 bytes: received ${bytes} bytes`,
    );
  }
}

/**
 * Elections: campaign (wait to lead, FIFO), proclaim a new value, read or
 * observe the leader, resign.
 *
 * @example
 * ```ts ignore
 * const leadership = await client.elections.campaign("scheduler", "node-a");
 * leadership.signal.addEventListener("abort", () => stopScheduling());
 * for await (const { leader } of client.elections.observe("scheduler")) {
 *   console.log("leader:", leader?.value ?? "(none)");
 * }
 * ```
 */
export class AspenElections {
  readonly #transport: HttpTransport;
  readonly #own: OwnLease;
  readonly #streams: StreamConnector;

  /** Used by `connect`. */
  constructor(
    transport: HttpTransport,
    own: OwnLease,
    streams: StreamConnector,
  ) {
    this.#transport = transport;
    this.#own = own;
    this.#streams = streams;
  }

  /**
   * Waits to lead `name` with `value`, holding it with `lease` or the
   * client's own kept-alive lease. Campaigning again with the leading lease
   * answers the same leadership.
   *
   * @throws {AcquireTimeoutError} After `timeoutMs` without being elected.
   * @throws {LeaseNotFoundError} When the lease does not exist.
   * @throws {RangeError} For a name or value too long.
   */
  async campaign(
    name: string,
    value: string,
    options: CampaignOptions = {},
  ): Promise<Leadership> {
    checkName(name);
    checkValue(value);
    checkTimeout(options.timeoutMs);
    const lease = await holdingLease(options.lease, this.#own);
    const reply = await waitForGrant({
      transport: this.#transport,
      name,
      lease: lease.id,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      leaseSignal: lease.signal,
      attempt: async (waitMs) => {
        const answer = await this.#transport.request(
          "POST",
          ROUTES.electionCampaign,
          { name, value, lease: lease.id, waitMs },
          "idempotent",
        ) as ElectionCampaignResponse;
        return answer.elected ? answer : null;
      },
    });
    const resign = () => this.resign(reply.name, reply.token);
    return {
      name: reply.name,
      token: reply.token,
      lease: reply.lease,
      value: reply.value,
      revision: reply.revision,
      signal: lease.signal ?? NEVER,
      resign,
    };
  }

  /**
   * Sets the leader's value.
   *
   * @returns The leader with its new value.
   * @throws {NotHolderError} When `token` does not lead `name`.
   */
  async proclaim(
    name: string,
    token: string,
    value: string,
  ): Promise<ElectionLeader> {
    checkName(name);
    checkToken(token);
    checkValue(value);
    const reply = await this.#transport.request(
      "POST",
      ROUTES.electionProclaim,
      { name, token, value },
      "write",
    ) as ElectionLeaderResponse;
    if (reply.leader === null) {
      throw new NotHolderError(
        "notHolder",
        `Token ${token} does not lead ${name}`,
      );
    }
    return { ...reply.leader };
  }

  /** The leader of `name`, or null when nobody leads. */
  async leader(name: string): Promise<ElectionLeader | null> {
    checkName(name);
    const reply = await this.#transport.request(
      "POST",
      ROUTES.electionLeader,
      { name },
      "idempotent",
    ) as ElectionLeaderResponse;
    return reply.leader === null ? null : { ...reply.leader };
  }

  /**
   * Resigns leadership `token` of `name`; the next candidate is elected in
   * the same entry.
   *
   * @throws {NotHolderError} When `token` does not lead `name`.
   */
  async resign(name: string, token: string): Promise<void> {
    checkName(name);
    checkToken(token);
    await this.#transport.request("POST", ROUTES.electionResign, {
      name,
      token,
    }, "write");
  }

  /**
   * The leader of `name` now, then each change in revision order, until
   * `signal` aborts or the client closes. A dropped stream resumes on the
   * next node from the last revision seen (`Last-Event-ID`); a revision
   * already delivered is never repeated.
   *
   * Unreachable nodes and busy ones (`tooManyStreams`) are retried, never thrown.
   *
   * @throws {TypeError} At once, for a malformed name.
   * @throws {InvalidRequestError} For a name the cluster refuses.
   * @throws {AuthError} For a missing or wrong token.
   */
  observe(
    name: string,
    options: ObserveOptions = {},
  ): AsyncGenerator<ElectionObservation> {
    checkName(name);
    return this.#observe(name, options.signal);
  }

  async *#observe(
    name: string,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ElectionObservation> {
    const path = `${ROUTES.electionObserve}?name=${encodeURIComponent(name)}`;
    let newest = -1;
    for await (const event of eventStream(this.#streams, path, signal)) {
      const parsed = JSON.parse(event.data) as ElectionObserveEvent;
      // A lagging node after a reconnect: never go back in time.
      if (parsed.revision <= newest) continue;
      newest = parsed.revision;
      yield {
        leader: parsed.leader === null ? null : { ...parsed.leader },
        revision: parsed.revision,
      };
    }
  }
}
