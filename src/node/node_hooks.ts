/**
 * The hooks as this node serves them ({@linkcode HooksPort}): commands
 * proposed with the node's session (a retried proposal applies once) and
 * answered once this node applied them; reads from its applied state. Ids,
 * secrets and times are decided here, at proposal.
 *
 * @module
 */
import {
  encodeEventsCommand,
  type EventsCommand,
  EventsError,
  type EventsResult,
  HOOK_OUTCOMES,
  type HookCommand,
  type HookCreate,
  type HookCursor,
  hookLag,
  type HookOutcome,
  HookReads,
  type HookRecord,
  type HookReport,
  type HooksPort,
  LATENCY_BOUNDS_MS,
  type OpenRef,
} from "../services/events/api.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import type { StateStore } from "../state/state_store.ts";
import { toHex } from "../base/bytes.ts";
import { appliedThrough, proposeWithSession } from "./_session_proposal.ts";

/** The events service's envelope id (its line in `services/table.ts`). */
export const EVENTS_SERVICE_ID = 6;

/** What {@linkcode NodeHooks} needs of its node. */
export interface NodeHooksOptions {
  readonly propose: (data: Uint8Array) => Promise<unknown>;
  readonly store: StateStore;
}

/** The hooks port over a Raft node. */
export class NodeHooks implements HooksPort {
  readonly #options: NodeHooksOptions;
  readonly #reads: HookReads;
  readonly #sessionId = `hooks-${crypto.randomUUID()}`;
  #sessionSeq = 0;

  constructor(options: NodeHooksOptions) {
    this.#options = options;
    this.#reads = new HookReads(options.store);
  }

  head(): number {
    return Number(this.#options.store.appliedIndex());
  }

  async create(
    request: HookCreate,
  ): Promise<{ hook: HookRecord; secret: Uint8Array }> {
    const id = toHex(crypto.getRandomValues(new Uint8Array(8)));
    const secret = request.secret ??
      crypto.getRandomValues(new Uint8Array(32));
    await this.#propose({
      type: "hookCreate",
      id,
      name: request.name,
      selector: request.selector,
      types: request.types,
      target: request.target,
      secret,
      cursor: request.fromRevision === null
        ? { r: this.head() + 1, i: -1 }
        : { r: request.fromRevision, i: -1 },
      timeoutMs: request.timeoutMs,
      retryWindowMs: request.retryWindowMs,
      retrySchedule: request.retrySchedule,
      nowMs: Date.now(),
    });
    return { hook: this.#required(id), secret };
  }

  list(): HookRecord[] {
    return this.#reads.all();
  }

  get(ref: string): HookRecord | null {
    return this.#reads.find(ref);
  }

  #required(ref: string): HookRecord {
    const hook = this.#reads.find(ref);
    if (hook === null) {
      throw new EventsError("hookNotFound", `No hook '${ref.slice(0, 64)}'`);
    }
    return hook;
  }

  async delete(ref: string): Promise<void> {
    await this.#propose({ type: "hookDelete", id: this.#required(ref).id });
  }

  async setState(ref: string, enabled: boolean): Promise<HookRecord> {
    const id = this.#required(ref).id;
    await this.#propose({ type: "hookSetState", id, enabled });
    return this.#required(id);
  }

  async rotate(
    ref: string,
    secret: Uint8Array | null,
  ): Promise<{ hook: HookRecord; secret: Uint8Array }> {
    const id = this.#required(ref).id;
    const next = secret ?? crypto.getRandomValues(new Uint8Array(32));
    await this.#propose({
      type: "hookRotate",
      id,
      secret: next,
      nowMs: Date.now(),
    });
    return { hook: this.#required(id), secret: next };
  }

  deliveries(
    ref: string,
    options: {
      limit: number;
      before?: number;
      outcome?: HookOutcome;
    },
  ) {
    return this.#reads.deliveries(this.#required(ref), options);
  }

  async replay(
    ref: string,
    fromRevision: number,
    toRevision: number,
  ): Promise<void> {
    await this.#propose({
      type: "hookReplay",
      id: this.#required(ref).id,
      fromRevision,
      toRevision,
    });
  }

  async trigger(
    ref: string,
    data: Readonly<Record<string, unknown>>,
  ): Promise<void> {
    await this.#propose({
      type: "hookTrigger",
      id: this.#required(ref).id,
      data,
    });
  }

  async claim(
    worker: string,
    lease: string,
    max: number,
  ): Promise<HookRecord[]> {
    const result = await this.#propose({
      type: "hookClaim",
      worker,
      lease,
      max,
    });
    return (result.hooks ?? []).flatMap((id) => {
      const hook = this.#reads.get(id);
      return hook === null ? [] : [hook];
    });
  }

  async begin(
    hook: string,
    token: number,
    attempts: readonly OpenRef[],
    replay: boolean,
  ): Promise<HookCursor> {
    const id = this.#required(hook).id;
    await this.#propose({
      type: "hookBegin",
      id,
      token,
      attempts,
      replay,
      nowMs: Date.now(),
    });
    return this.#required(id).cursor;
  }

  async finish(
    hook: string,
    token: number,
    results: readonly HookReport[],
    cancel: readonly OpenRef[],
  ): Promise<HookCursor> {
    const id = this.#required(hook).id;
    await this.#propose({
      type: "hookFinish",
      id,
      token,
      results,
      cancel,
      nowMs: Date.now(),
    });
    return this.#required(id).cursor;
  }

  async replayDone(
    hook: string,
    token: number,
    seq: number | null,
  ): Promise<void> {
    await this.#propose({
      type: "hookReplayDone",
      id: this.#required(hook).id,
      token,
      seq,
    });
  }

  /** Records a cluster fact (`snapshot.taken`, `node.unhealthy`, …) as one event. */
  async fact(
    event: string,
    data: Readonly<Record<string, unknown>>,
  ): Promise<void> {
    await this.#propose({ type: "fact", event, data });
  }

  async #propose(
    command: HookCommand | Extract<EventsCommand, { type: "fact" }>,
  ): Promise<Extract<EventsResult, { ok: true }>> {
    const data = encodeEnvelope({
      serviceId: EVENTS_SERVICE_ID,
      session: { clientId: this.#sessionId, seq: this.#sessionSeq++ },
      payload: encodeEventsCommand(command),
    });
    return await proposeWithSession<EventsResult>({
      propose: this.#options.propose,
      data,
      what: command.type,
      caughtUp: (index) => appliedThrough(this.#options.store, index),
      refused: (reason, message) =>
        new EventsError(reason as EventsError["code"], message),
    });
  }
}

/**
 * Prometheus text of the events history and of every hook, from this
 * node's replicated state (so every node reports the same hook numbers).
 */
export function eventsMetrics(
  hooks: readonly HookRecord[],
  head: number,
  window: { readonly bytes: number } | null,
  streams: number,
): string {
  const lines: string[] = [
    "# HELP aspen_events_history_bytes Bytes of events history this node holds.",
    "# TYPE aspen_events_history_bytes gauge",
    `aspen_events_history_bytes ${window?.bytes ?? 0}`,
    "# HELP aspen_events_streams Event watch streams this node serves.",
    "# TYPE aspen_events_streams gauge",
    `aspen_events_streams ${streams}`,
  ];
  const gauge = (
    name: string,
    help: string,
    value: (h: HookRecord) => number,
  ) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const hook of hooks) {
      lines.push(`${name}{hook="${hook.name}"} ${value(hook)}`);
    }
  };
  gauge(
    "aspen_hook_lag_revisions",
    "Revisions between a hook's cursor and this node's head.",
    (h) => hookLag(h, head),
  );
  gauge(
    "aspen_hook_retrying",
    "1 while a hook retries an event.",
    (h) => (h.retrying === null ? 0 : 1),
  );
  gauge(
    "aspen_hook_disabled",
    "1 while a hook is disabled.",
    (h) => (h.state === "disabled" ? 1 : 0),
  );
  lines.push(
    "# HELP aspen_hook_deliveries_total Delivery attempts of a hook, by outcome.",
    "# TYPE aspen_hook_deliveries_total counter",
  );
  for (const hook of hooks) {
    for (const outcome of HOOK_OUTCOMES) {
      lines.push(
        `aspen_hook_deliveries_total{hook="${hook.name}",outcome="${outcome}"} ${
          hook.counts[outcome] ?? 0
        }`,
      );
    }
  }
  lines.push(
    "# HELP aspen_hook_delivery_seconds Latency of a hook's reported attempts.",
    "# TYPE aspen_hook_delivery_seconds histogram",
  );
  for (const hook of hooks) {
    const latency = hook.latency;
    let cumulative = 0;
    LATENCY_BOUNDS_MS.forEach((bound, i) => {
      cumulative += latency?.buckets[i] ?? 0;
      lines.push(
        `aspen_hook_delivery_seconds_bucket{hook="${hook.name}",le="${
          bound / 1000
        }"} ${cumulative}`,
      );
    });
    lines.push(
      `aspen_hook_delivery_seconds_bucket{hook="${hook.name}",le="+Inf"} ${
        latency?.count ?? 0
      }`,
      `aspen_hook_delivery_seconds_sum{hook="${hook.name}"} ${
        (latency?.sumMs ?? 0) / 1000
      }`,
      `aspen_hook_delivery_seconds_count{hook="${hook.name}"} ${
        latency?.count ?? 0
      }`,
    );
  }
  lines.push("");
  return lines.join("\n");
}
