/**
 * The `/v1/elections/...` handlers: campaign (waiting up to `waitMs` to be
 * elected; a candidate not elected stays queued), proclaim, leader, resign,
 * and `GET /v1/elections/observe?name=`, a `text/event-stream` of the
 * leader now and then each change in revision order (`id:` the revision,
 * resumable with `Last-Event-ID`; a comment line as a keep-alive when
 * quiet), ended cleanly when the client goes away. A candidate leaves the
 * queue with `/v1/locks/cancel`. {@linkcode electionRoutes} registers them.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import type { NodeApi } from "../../node/node_api.ts";
import { HTTP_API_LIMITS, ROUTES } from "../../protocol/http_api.ts";
import type {
  ElectionCampaignResponse,
  ElectionLeaderResponse,
  ElectionObserveEvent,
} from "../../protocol/http_api_leases.ts";
import type { LockReadConsistency } from "../../services/locks/api.ts";
import { WireFormatError } from "../../protocol/http_api_codec.ts";
import { fields } from "./_parse.ts";
import { reply } from "./_body.ts";
import { sseFrame, sseResponse } from "./_sse.ts";
import {
  consistencyOf,
  type RouteContext,
  streamLease,
} from "./_route_context.ts";
import {
  leaseField,
  lockCall,
  locksOf,
  nameField,
  tokenField,
  valueField,
  waiting,
  waitMsField,
} from "./_locks_common.ts";

export { CONTENT_TYPE_EVENT_STREAM } from "./_sse.ts";

/** A parsed `POST /v1/elections/campaign` body. */
export interface ParsedCampaign {
  /** The election. */
  readonly name: string;
  /** The candidate's lease. */
  readonly lease: string;
  /** The candidate's value. */
  readonly value: string;
  /** How long to wait to be elected, ms (0: answer at once). */
  readonly waitMs: number;
}

/** `ElectionCampaignRequest` → its fields, validated. */
export function parseCampaign(body: unknown): ParsedCampaign {
  const f = fields(body, ["name", "value", "lease", "waitMs"]);
  return {
    name: nameField(f.name),
    value: valueField(f.value),
    lease: leaseField(f.lease),
    waitMs: waitMsField(f.waitMs),
  };
}

/** `POST /v1/elections/proclaim` */
export async function proclaim(
  node: NodeApi,
  body: unknown,
): Promise<ElectionLeaderResponse> {
  const f = fields(body, ["name", "token", "value"]);
  const name = nameField(f.name);
  const token = tokenField(f.token);
  const value = valueField(f.value);
  return await lockCall(() => locksOf(node).proclaim(name, token, value));
}

/** `POST /v1/elections/resign`: answers `{resigned: true}`. */
export async function resign(
  node: NodeApi,
  body: unknown,
): Promise<{ resigned: true }> {
  const f = fields(body, ["name", "token"]);
  const name = nameField(f.name);
  const token = tokenField(f.token);
  await lockCall(() => locksOf(node).resign(name, token));
  return { resigned: true };
}

/** `POST /v1/elections/leader` */
export async function leader(
  node: NodeApi,
  body: unknown,
  consistency: LockReadConsistency,
): Promise<ElectionLeaderResponse> {
  const name = nameField(fields(body, ["name"]).name);
  return await lockCall(() => locksOf(node).leader(name, consistency));
}

/** The revision of a `Last-Event-ID` header, or null without one. */
export function lastEventRevision(header: string | undefined): number | null {
  if (header === undefined || header.trim() === "") return null;
  const text = header.trim();
  if (/^\d{1,15}$/.test(text)) return Number(text);
  throw new WireFormatError(
    "badRequest",
    `Invalid 'Last-Event-ID': expected a revision (a non-negative integer), received '${
      text.slice(0, 40)
    }'`,
  );
}

function eventBytes(event: ElectionObserveEvent): Uint8Array {
  return sseFrame({ id: String(event.revision) }, JSON.stringify(event));
}

function observe(ctx: RouteContext, c: Context): Promise<Response> {
  const name = nameField(c.req.query("name"));
  const after = lastEventRevision(c.req.header("last-event-id"));
  const locks = locksOf(ctx.node);
  const slot = streamLease(ctx.streams, c);
  return sseResponse(
    c.req.raw.signal,
    (signal) => lockCall(() => locks.observe(name, after, signal)),
    eventBytes,
    HTTP_API_LIMITS.watchKeepAliveMs,
    () => slot.release(),
  );
}

/** Registers the `/v1/elections/...` routes on `app`. */
export function electionRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body } = ctx;
  app.post(ROUTES.electionCampaign, async (c) => {
    const request = parseCampaign(await body(c));
    const locks = locksOf(node);
    const answer: ElectionCampaignResponse = await waiting(
      ctx,
      c,
      request.waitMs,
      (signal) => locks.campaign(request, signal),
    );
    return reply(c, answer);
  });
  app.post(
    ROUTES.electionProclaim,
    async (c) => reply(c, await proclaim(node, await body(c))),
  );
  app.post(
    ROUTES.electionLeader,
    async (c) => reply(c, await leader(node, await body(c), consistencyOf(c))),
  );
  app.post(
    ROUTES.electionResign,
    async (c) => reply(c, await resign(node, await body(c))),
  );
  app.get(ROUTES.electionObserve, (c) => observe(ctx, c));
}
