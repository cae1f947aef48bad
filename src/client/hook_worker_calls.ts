/**
 * The webhook workers' calls of the hooks protocol (issue 17, "Webhook
 * delivery"; `src/protocol/http_api_hooks.ts`): `claim` under a lease,
 * `begin` and `finish` of each attempt, fenced by the claim's token,
 * `replayDone`, and history pages with wire selectors (the webhook body is
 * the event's wire JSON, so it is not decoded). They need the admin token
 * (claims carry the signing secrets). Get them with `hookWorkerCalls`
 * ({@link ./hooks.ts}); `src/workers/webhooks/worker.ts` drives them.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import type {
  EventsListRequest,
  EventsListResponse,
  EventsStatusResponse,
} from "../protocol/http_api_events.ts";
import type {
  HookBeginRequest,
  HookClaimRequest,
  HookClaimResponse,
  HookFinishRequest,
  HookReplayDoneRequest,
  HookStepResponse,
} from "../protocol/http_api_hooks.ts";
import type { HttpTransport } from "./_transport.ts";

/** The delivery protocol's calls over one client's connection. */
export class HookWorkerCalls {
  readonly #transport: HttpTransport;

  /** Used by `hookWorkerCalls`. */
  constructor(transport: HttpTransport) {
    this.#transport = transport;
  }

  /**
   * For webhook workers: claims every free webhook hook (up to `max`)
   * under the worker's lease, and answers every hook that lease holds,
   * with what delivering it needs (secrets included).
   *
   * @throws {ClaimLostError} When the lease is not live.
   */
  async claim(request: HookClaimRequest): Promise<HookClaimResponse> {
    return await this.#transport.request(
      "POST",
      ROUTES.hookClaim,
      request,
      "write",
    ) as HookClaimResponse;
  }

  /**
   * For webhook workers: opens attempt `attempt` of `event` (committed
   * before the request is sent). Repeating it answers as the first did.
   *
   * @throws {ClaimLostError} When the claim moved.
   */
  async begin(request: HookBeginRequest): Promise<HookStepResponse> {
    return await this.#transport.request(
      "POST",
      ROUTES.hookBegin,
      request,
      "write",
    ) as HookStepResponse;
  }

  /**
   * For webhook workers: closes the open attempt with its outcome; an `ok`
   * moves the cursor in the same entry. A finish retried after its answer
   * was lost applies once and answers as the first did.
   *
   * @throws {ClaimLostError} When the claim moved.
   */
  async finish(request: HookFinishRequest): Promise<HookStepResponse> {
    return await this.#transport.request(
      "POST",
      ROUTES.hookFinish,
      request,
      "write",
    ) as HookStepResponse;
  }

  /**
   * For webhook workers: the replay reached its end; the side cursor is
   * dropped.
   *
   * @throws {ClaimLostError} When the claim moved.
   */
  async replayDone(request: HookReplayDoneRequest): Promise<void> {
    await this.#transport.request(
      "POST",
      ROUTES.hookReplayDone,
      request,
      "write",
    );
  }

  /**
   * For webhook workers: one page of the events history
   * (`POST /v1/events/list`) with wire selectors, as a claim carries them.
   *
   * @throws {AspenError} `compacted` (410) below the window.
   */
  async listEvents(request: EventsListRequest): Promise<EventsListResponse> {
    return await this.#transport.request(
      "POST",
      ROUTES.eventsList,
      request,
      "idempotent",
    ) as EventsListResponse;
  }

  /** The answering node's history window and head (`GET /v1/events/status`). */
  async status(): Promise<EventsStatusResponse> {
    return await this.#transport.request(
      "GET",
      ROUTES.eventsStatus,
      undefined,
      "idempotent",
    ) as EventsStatusResponse;
  }
}
