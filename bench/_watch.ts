/**
 * The events workloads of `bench:compare` (issue 17, "Performance"): prefix
 * watches under concurrent writers, against Aspen's events watch
 * (`GET /v1/events/watch`, SSE, `src/protocol/http_api_events.ts`) and
 * etcd's watch through its HTTP/JSON gateway (`POST /v3/watch`, one JSON
 * message per line, etcd 3.4 paths); and puts with and without webhook
 * hooks on the written prefix (Aspen only: etcd has no hooks).
 *
 * Workload `watch` runs one cell, `watch`: {@linkcode WATCH_PREFIXES}
 * prefixes, one watcher each, opened (and confirmed: Aspen's `synced`
 * frame, etcd's `created` message) before the writers start; `clients`
 * closed-loop writers (64 by default), writer i writing fresh keys under
 * prefix i % 16 (Aspen: `POST /v1/kv/set`, as the put workload's raw
 * driver; etcd: `POST /v3/kv/put`). Every request goes to the leader,
 * watchers included. Measured:
 *
 * - events/s delivered to the watchers (sum of the distinct events of this
 *   cell's writes, over the time from the first write to the last event);
 * - writes/s acknowledged;
 * - delivery latency p50/p99: a write's acknowledgement → its event's
 *   arrival at the watcher, matched by key (and the value checked); an
 *   event that arrives before its write's reply counts 0 (how many did is
 *   reported).
 *
 * Correctness, checked without slowing the loop: once the writers stopped,
 * the watchers get {@linkcode DRAIN_TIMEOUT_MS} to receive the rest; each
 * acknowledged write whose event did not arrive, each event delivered
 * twice, out of its writer's order, with another value or to another
 * prefix's watcher counts as a violation.
 *
 * Workload `hooks` runs two cells on Aspen: `put-plain` (the put workload's
 * closed loop, `POST /v1/kv/set` at the leader, keys under a prefix no hook
 * follows, no hook existing) and `put-hooks` (the same under a prefix that
 * {@linkcode HOOKS_PER_PREFIX} webhook hooks follow, their target a local
 * receiver answering 200), in {@linkcode HOOK_ROUNDS} rounds in ABBA order,
 * each cell's duration split over them. When the checkout has the webhook
 * worker (`src/workers/webhooks/worker.ts`), an `aspen worker start`
 * process delivers during each hooked part (both cells then run at most
 * {@linkcode HOOK_WRITERS_WITH_WORKER_MAX} writers); the webhook requests
 * received and due are reported with the cell (`hooks`).
 *
 * @module
 */
import {
  CONTENT_TYPE_JSON,
  ROUTES,
  type SetRequest,
} from "../src/protocol/http_api.ts";
import type { WireEvent } from "../src/protocol/http_api_events.ts";
import type {
  HookCreateRequest,
  HookCreateResponse,
  HookRefRequest,
  WireHook,
} from "../src/protocol/http_api_hooks.ts";
import {
  base64Of,
  BENCH_ASPEN_ADMIN_TOKEN,
  BENCH_ASPEN_TOKEN,
  postJson,
  REQUEST_TIMEOUT_MS,
  UnexpectedStatusError,
} from "./_drivers.ts";
import { spawnChild, stopChild } from "./_processes.ts";
import {
  type CellMeasurement,
  type ClosedLoopOutcome,
  describeError,
  OPERATIONS_PER_CELL_MAX,
  pause,
  runClosedLoop,
  summarize,
} from "./_load.ts";

/** Events workloads (`--workload watch`, `--workload hooks`). */
export const EVENT_WORKLOADS = ["watch", "hooks"] as const;
/** An events workload. */
export type EventWorkload = typeof EVENT_WORKLOADS[number];

/** The cells each events workload runs, in order. */
export const EVENT_CELLS = {
  watch: ["watch"],
  hooks: ["put-plain", "put-hooks"],
} as const satisfies Record<EventWorkload, readonly string[]>;
/** One events cell. */
export type EventCell = typeof EVENT_CELLS[EventWorkload][number];

/** Writers of the events cells unless `--clients` says otherwise. */
export const EVENT_WRITERS_DEFAULT = 64;
/** Prefixes of the watch cell, one watcher each. */
export const WATCH_PREFIXES = 16;
/** Webhook hooks on the prefix the `put-hooks` cell writes. */
export const HOOKS_PER_PREFIX = 10;
/**
 * Writers of the hooks cells at most when a webhook worker runs: a node
 * takes 64 connections from one address (`httpConnectionsPerAddressMax`),
 * and the worker (on the same address) needs some of them at the leader.
 */
export const HOOK_WRITERS_WITH_WORKER_MAX = 48;
/**
 * Ms of untimed warm-up `bench:compare` runs before each events cell (the
 * same loop, discarded): Aspen's nodes are JIT-compiled, etcd's are not.
 */
export const EVENT_WARMUP_MS = 2_000;
/** Ms the watchers get, once the writers stopped, to receive the rest. */
export const DRAIN_TIMEOUT_MS = 10_000;
/** Ms opening (and confirming) all watchers may take. */
const WATCH_OPEN_TIMEOUT_MS = 30_000;
/** Bytes a watcher keeps buffered while waiting for a frame's end. */
const STREAM_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/** Poll interval while draining, ms. */
const DRAIN_POLL_MS = 20;

/** What one operation of each cell is. */
export const EVENT_CELL_UNITS: Record<EventCell, string> = {
  watch:
    `events delivered to ${WATCH_PREFIXES} prefix watchers (sum); calls = writes acknowledged; latency = write ack -> event arrival`,
  "put-plain": "puts acknowledged (no hook on the prefix)",
  "put-hooks":
    `puts acknowledged (${HOOKS_PER_PREFIX} webhook hooks on the prefix)`,
};

/** The watch cell's details beyond the table's columns. */
export interface WatchDetails {
  readonly writes: number;
  readonly writeLatencyMs: CellMeasurement["latencyMs"];
  /** Acknowledged writes whose event never arrived (violations). */
  readonly missing: number;
  /** Events delivered more than once (violations). */
  readonly duplicates: number;
  /** Events behind a later write of the same writer (violations). */
  readonly outOfOrder: number;
  /** Events whose value is not the written one (violations). */
  readonly wrongValues: number;
  /** Events at a watcher of another prefix (violations). */
  readonly misrouted: number;
  /** Events that arrived before their write's reply (latency counted 0). */
  readonly beforeAck: number;
  /** Events of writes that got no reply (errors, not violations). */
  readonly unacknowledgedEvents: number;
  /** Ms from the writers' end until the last event arrived (or the drain gave up). */
  readonly drainMs: number;
  /** Where the watchers listened. */
  readonly watchedAt: string;
}

/** The put-hooks cells' details. */
export interface HookDetails {
  /** Hooks that followed the written prefix. */
  readonly hooks: number;
  /** Webhook requests the local receiver got during the hooked parts. */
  readonly deliveriesReceived: number;
  /** Whether a webhook worker ran (without one, hooks only record history and lag). */
  readonly worker: boolean;
  /** Deliveries the hooked parts' puts called for (hooks × puts). */
  readonly deliveriesDue: number;
}

/** A measured events cell: a coordination-style cell and its details. */
export interface EventMeasurement extends CellMeasurement {
  readonly watch?: WatchDetails;
  readonly hooks?: HookDetails;
  /** The put cells: each round's puts/s, in order. */
  readonly rounds?: readonly number[];
}

/** One event a watcher received: its write's id (`writer.seq`) and whether its value is the written one. */
export type OnEvent = (id: string, valueMatches: boolean) => void;

/** An open watch. */
export interface OpenWatch {
  /** Resolves when the stream ended: null when closed by us, else why it ended. */
  readonly ended: Promise<string | null>;
  close(): void;
}

/** What a target must offer the watch cell. Errors are thrown. */
export interface WatchDriver {
  /** Where the watchers listen and the writers write. */
  readonly description: string;
  /**
   * Opens a watch on `prefix` of the cell `tag`; resolves once the target
   * confirmed it. `valueBase64` is the value every write carries.
   */
  watch(
    tag: string,
    prefix: number,
    valueBase64: string,
    onEvent: OnEvent,
  ): Promise<OpenWatch>;
  /** Writes `value` for write `id` under `prefix`; resolves on the acknowledgement. */
  put(
    tag: string,
    prefix: number,
    id: string,
    value: Uint8Array,
  ): Promise<void>;
}

/**
 * Reads `reader` as text, calling `onRecord` for each record ended by
 * `separator`, until the body ends (or `reader` is cancelled).
 *
 * @throws {RangeError} When a record exceeds {@linkcode STREAM_BUFFER_BYTES_MAX}.
 */
async function readRecords(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  separator: string,
  onRecord: (record: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const step = await reader.read();
    if (step.done) return;
    buffer += decoder.decode(step.value, { stream: true });
    if (!buffer.includes(separator)) {
      if (buffer.length > STREAM_BUFFER_BYTES_MAX) {
        throw new RangeError(
          `Cannot read a stream record over ${STREAM_BUFFER_BYTES_MAX} characters`,
        );
      }
      continue;
    }
    const parts = buffer.split(separator);
    buffer = parts.pop()!;
    for (const part of parts) onRecord(part);
  }
}

/**
 * Opens a streaming request and keeps reading it in the background; resolves
 * once `onRecord` called `ready` (the target confirmed the watch).
 *
 * @throws {Error} When the reply is not 200 or no confirmation came in time.
 */
async function openStream(
  request: (signal: AbortSignal) => Promise<Response>,
  separator: string,
  onRecord: (record: string, ready: () => void) => void,
): Promise<OpenWatch> {
  const abort = new AbortController();
  const response = await request(abort.signal);
  if (response.status !== 200 || response.body === null) {
    const text = await response.text();
    throw new UnexpectedStatusError(response.status, text, response.url);
  }
  let markReady!: () => void;
  const confirmed = new Promise<"ready">((resolve) => {
    markReady = () => resolve("ready");
  });
  const reader = response.body.getReader();
  // Aborting the request alone does not end a body already being read:
  // closing cancels the reader as well.
  const close = () => {
    abort.abort();
    reader.cancel().catch(() => {});
  };
  const ended = readRecords(
    reader,
    separator,
    (record) => onRecord(record, markReady),
  ).then(
    () => abort.signal.aborted ? null : "the stream ended early",
    (error) => abort.signal.aborted ? null : describeError(error),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), WATCH_OPEN_TIMEOUT_MS);
  });
  const first = await Promise.race([confirmed, ended, late]);
  clearTimeout(timer);
  if (first !== "ready") {
    close();
    throw new Error(
      `Cannot open a watch: ${
        first === "late"
          ? `no confirmation within ${WATCH_OPEN_TIMEOUT_MS} ms`
          : first ?? "it ended"
      }`,
    );
  }
  return { ended, close };
}

/** The text of a wire key part (strings stand for themselves or come tagged). */
function partText(part: unknown): string {
  if (typeof part === "object" && part !== null && "value" in part) {
    return String((part as { value: unknown }).value);
  }
  return String(part);
}

/**
 * Aspen: watchers on `GET /v1/events/watch?prefix=…&types=kv.set` at `url`
 * (the leader), writes by `POST /v1/kv/set` there (as the put workload's
 * raw driver). Keys are `["w-<tag>", prefix, "writer.seq"]`.
 */
export class AspenWatchDriver implements WatchDriver {
  readonly description =
    "Aspen: writers POST /v1/kv/set at the leader, watchers GET /v1/events/watch (SSE) at the followers";

  /**
   * @param url The leader's base URL (the writers').
   * @param watchUrls Where the watchers go, in turn (the followers).
   */
  constructor(readonly url: string, readonly watchUrls: readonly string[]) {
    if (watchUrls.length === 0) {
      throw new RangeError("Cannot watch Aspen without a watcher URL");
    }
  }

  watch(
    tag: string,
    prefix: number,
    valueBase64: string,
    onEvent: OnEvent,
  ): Promise<OpenWatch> {
    const query = new URLSearchParams({
      prefix: JSON.stringify([`w-${tag}`, prefix]),
      types: "kv.set",
    });
    return openStream(
      (signal) =>
        fetch(
          `${watchUrlOf(this.watchUrls, prefix)}${ROUTES.eventsWatch}?${query}`,
          {
            headers: { authorization: `Bearer ${BENCH_ASPEN_TOKEN}` },
            signal,
          },
        ),
      "\n\n",
      (record, ready) => {
        // Frames: `id: R.I\nevent: <type>\ndata: <json>`; comments start with ':'.
        if (record.startsWith(":")) return;
        const eventAt = record.indexOf("event: ");
        const dataAt = record.indexOf("\ndata: ");
        if (eventAt < 0 || dataAt < 0) return;
        const type = record.slice(eventAt + 7, record.indexOf("\n", eventAt));
        if (type === "synced") ready();
        if (type === "compacted") {
          throw new Error(`The watch fell below the window: ${record}`);
        }
        if (type !== "kv.set") return;
        const event = JSON.parse(record.slice(dataAt + 7)) as WireEvent;
        const key = event.key ?? [];
        onEvent(partText(key[2]), event.value?.data === valueBase64);
      },
    );
  }

  async put(
    tag: string,
    prefix: number,
    id: string,
    value: Uint8Array,
  ): Promise<void> {
    const request: SetRequest = {
      key: [`w-${tag}`, prefix, id],
      value: { encoding: "bytes", data: base64Of(value) },
    };
    await aspenPost(this.url, ROUTES.kvSet, request);
  }
}

/** The URL of the watcher of `prefix`: the watcher URLs in turn. */
function watchUrlOf(urls: readonly string[], prefix: number): string {
  return urls[prefix % urls.length]!;
}

/** POSTs `body` to Aspen at `url` + `route` with the bench token; the reply's JSON. */
async function aspenPost(
  url: string,
  route: string,
  body: unknown,
): Promise<unknown> {
  const reply = await postJson(
    url + route,
    body,
    REQUEST_TIMEOUT_MS,
    BENCH_ASPEN_TOKEN,
  );
  if (reply.status !== 200) {
    throw new UnexpectedStatusError(reply.status, reply.text, url + route);
  }
  return reply.json;
}

/** etcd's key prefix of prefix `prefix` of the cell `tag`. */
function etcdPrefix(tag: string, prefix: number): string {
  return `w-${tag}/${String(prefix).padStart(2, "0")}/`;
}

const encoder = new TextEncoder();

/**
 * etcd v3 through its HTTP/JSON gateway at `url` (the leader): watchers on
 * `POST /v3/watch` (body `{create_request: {key, range_end}}`, the reply a
 * stream of one JSON message per line), writes by `POST /v3/kv/put`. Keys
 * are `w-<tag>/<prefix, 2 digits>/<writer.seq>`.
 */
export class EtcdWatchDriver implements WatchDriver {
  readonly description =
    "etcd HTTP/JSON gateway: writers POST /v3/kv/put at the leader, watchers POST /v3/watch (JSON lines) at the followers";

  /**
   * @param url The leader's client URL (the writers').
   * @param watchUrls Where the watchers go, in turn (the followers).
   */
  constructor(readonly url: string, readonly watchUrls: readonly string[]) {
    if (watchUrls.length === 0) {
      throw new RangeError("Cannot watch etcd without a watcher URL");
    }
  }

  watch(
    tag: string,
    prefix: number,
    valueBase64: string,
    onEvent: OnEvent,
  ): Promise<OpenWatch> {
    const text = etcdPrefix(tag, prefix);
    // The range end is the prefix with its last byte ('/') plus one ('0').
    const body = {
      create_request: {
        key: base64Of(encoder.encode(text)),
        range_end: base64Of(encoder.encode(`${text.slice(0, -1)}0`)),
      },
    };
    return openStream(
      (signal) =>
        fetch(`${watchUrlOf(this.watchUrls, prefix)}/v3/watch`, {
          method: "POST",
          headers: { "content-type": CONTENT_TYPE_JSON },
          body: JSON.stringify(body),
          signal,
        }),
      "\n",
      (record, ready) => {
        if (record.trim() === "") return;
        const message = JSON.parse(record) as {
          result?: {
            created?: boolean;
            canceled?: boolean;
            events?: {
              type?: string;
              kv?: { key?: string; value?: string };
            }[];
          };
          error?: unknown;
        };
        const result = message.result;
        if (message.error !== undefined || result === undefined) {
          throw new Error(`etcd's watch failed: ${record.slice(0, 200)}`);
        }
        if (result.created === true) ready();
        if (result.canceled === true) {
          throw new Error(`etcd canceled the watch: ${record.slice(0, 200)}`);
        }
        for (const event of result.events ?? []) {
          // A put has no type (PUT is the zero value, omitted).
          if (event.type !== undefined && event.type !== "PUT") continue;
          const key = atob(event.kv?.key ?? "");
          onEvent(key.slice(text.length), event.kv?.value === valueBase64);
        }
      },
    );
  }

  async put(
    tag: string,
    prefix: number,
    id: string,
    value: Uint8Array,
  ): Promise<void> {
    const path = "/v3/kv/put";
    const reply = await postJson(this.url + path, {
      key: base64Of(encoder.encode(etcdPrefix(tag, prefix) + id)),
      value: base64Of(value),
    });
    if (reply.status !== 200) {
      throw new UnexpectedStatusError(
        reply.status,
        reply.text,
        this.url + path,
      );
    }
  }
}

/** Options of {@linkcode runWatchCell}. */
export interface WatchCellOptions {
  /** Writers (writer i writes under prefix i % {@linkcode WATCH_PREFIXES}). */
  readonly clients: number;
  readonly durationMs: number;
  readonly value: Uint8Array;
  /** Ms the watchers get after the writers stopped; default {@linkcode DRAIN_TIMEOUT_MS}. */
  readonly drainTimeoutMs?: number;
  /** Ms of an untimed cell run first and discarded (default none). */
  readonly warmupMs?: number;
}

/** A random tag of 8 lowercase hex digits, so cells never share keys. */
function randomTag(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/**
 * Runs the watch cell: opens the watchers, runs the writers for the
 * duration, drains, and checks every acknowledged write's event.
 *
 * @throws {Error} When the watchers cannot be opened.
 */
export async function runWatchCell(
  driver: WatchDriver,
  options: WatchCellOptions,
): Promise<EventMeasurement> {
  if ((options.warmupMs ?? 0) > 0) {
    await runWatchCell(driver, {
      ...options,
      durationMs: options.warmupMs!,
      warmupMs: 0,
    });
  }
  const tag = randomTag();
  const valueBase64 = base64Of(options.value);
  const acknowledged = new Map<string, number>();
  const arrived = new Map<string, number>();
  const lastSeq = new Map<number, number>();
  let duplicates = 0;
  let outOfOrder = 0;
  let wrongValues = 0;
  let misrouted = 0;
  let lastArrival = 0;
  const onEvent = (prefix: number, id: string, valueMatches: boolean) => {
    const dot = id.indexOf(".");
    const writer = Number(id.slice(0, dot));
    // Another prefix's event (or a stranger's key) at this watcher.
    if (!(writer >= 0 && writer % WATCH_PREFIXES === prefix)) {
      misrouted++;
      return;
    }
    if (arrived.has(id)) {
      duplicates++;
      return;
    }
    const now = performance.now();
    arrived.set(id, now);
    lastArrival = now;
    if (!valueMatches) wrongValues++;
    const seq = Number(id.slice(dot + 1));
    const last = lastSeq.get(writer);
    if (last !== undefined && seq < last) outOfOrder++;
    else lastSeq.set(writer, seq);
  };
  const watches = await openWatches(driver, tag, valueBase64, onEvent);
  const watchErrors: string[] = [];
  for (const w of watches) {
    w.ended.then((error) => {
      if (error !== null) watchErrors.push(error);
    });
  }
  const seqs = new Array<number>(options.clients).fill(0);
  const start = performance.now();
  let loop;
  try {
    loop = await runClosedLoop(
      {
        clients: options.clients,
        durationMs: options.durationMs,
        operationsMax: OPERATIONS_PER_CELL_MAX,
      },
      async (client) => {
        const id = `${client}.${seqs[client]!++}`;
        await driver.put(tag, client % WATCH_PREFIXES, id, options.value);
        acknowledged.set(id, performance.now());
        return true;
      },
    );
  } catch (error) {
    for (const w of watches) w.close();
    throw error;
  }
  const writersEnd = performance.now();
  const drainTimeoutMs = options.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
  const missingNow = () => {
    let missing = 0;
    for (const id of acknowledged.keys()) if (!arrived.has(id)) missing++;
    return missing;
  };
  while (
    performance.now() - writersEnd < drainTimeoutMs &&
    watchErrors.length === 0 && missingNow() > 0
  ) {
    await pause(DRAIN_POLL_MS);
  }
  for (const w of watches) w.close();
  await Promise.all(watches.map((w) => w.ended));
  return watchMeasurement({
    options,
    driver,
    acknowledged,
    arrived,
    loop,
    start,
    writersEnd,
    lastArrival,
    duplicates,
    outOfOrder,
    wrongValues,
    misrouted,
    watchErrors,
  });
}

/** Opens the {@linkcode WATCH_PREFIXES} watchers, closing them all when one fails. */
async function openWatches(
  driver: WatchDriver,
  tag: string,
  valueBase64: string,
  onEvent: (prefix: number, id: string, valueMatches: boolean) => void,
): Promise<OpenWatch[]> {
  const opened = await Promise.allSettled(
    Array.from(
      { length: WATCH_PREFIXES },
      (_, p) =>
        driver.watch(tag, p, valueBase64, (id, ok) => onEvent(p, id, ok)),
    ),
  );
  const failed = opened.find((o) => o.status === "rejected");
  if (failed !== undefined) {
    for (const o of opened) if (o.status === "fulfilled") o.value.close();
    throw (failed as PromiseRejectedResult).reason;
  }
  return opened.map((o) => (o as PromiseFulfilledResult<OpenWatch>).value);
}

/** The watch cell's measurement from what its writers and watchers saw. */
function watchMeasurement(seen: {
  readonly options: WatchCellOptions;
  readonly driver: WatchDriver;
  readonly acknowledged: ReadonlyMap<string, number>;
  readonly arrived: ReadonlyMap<string, number>;
  readonly loop: Awaited<ReturnType<typeof runClosedLoop>>;
  readonly start: number;
  readonly writersEnd: number;
  readonly lastArrival: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  readonly wrongValues: number;
  readonly misrouted: number;
  readonly watchErrors: readonly string[];
}): EventMeasurement {
  const { acknowledged, arrived, loop } = seen;
  const latencies: number[] = [];
  let missing = 0;
  let beforeAck = 0;
  for (const [id, ackAt] of acknowledged) {
    const at = arrived.get(id);
    if (at === undefined) {
      missing++;
      continue;
    }
    if (at < ackAt) beforeAck++;
    latencies.push(Math.max(0, at - ackAt));
  }
  const delivered = arrived.size;
  const unacknowledgedEvents = delivered - latencies.length;
  // Events/s over the first write to the last event (or the writers' end).
  const eventsMs = Math.max(loop.elapsedMs, seen.lastArrival - seen.start);
  const writeSeconds = loop.elapsedMs / 1000;
  const violations = missing + seen.duplicates + seen.outOfOrder +
    seen.wrongValues + seen.misrouted;
  return {
    workload: "watch",
    clients: seen.options.clients,
    elapsedMs: loop.elapsedMs,
    operations: delivered,
    errors: loop.errors + seen.watchErrors.length,
    conflicts: 0,
    throughputPerSecond: delivered / (eventsMs / 1000),
    latencyMs: summarize(latencies),
    firstError: seen.watchErrors[0] ?? loop.firstError,
    unit: EVENT_CELL_UNITS.watch,
    calls: acknowledged.size,
    callsPerSecond: acknowledged.size / writeSeconds,
    violations,
    watch: {
      writes: acknowledged.size,
      writeLatencyMs: summarize(loop.latencies),
      missing,
      duplicates: seen.duplicates,
      outOfOrder: seen.outOfOrder,
      wrongValues: seen.wrongValues,
      misrouted: seen.misrouted,
      beforeAck,
      unacknowledgedEvents,
      drainMs: Math.max(0, seen.lastArrival - seen.writersEnd),
      watchedAt: seen.driver.description,
    },
  };
}

/** A webhook worker process the hooked parts run with. */
export interface StartedWorker {
  /** Its last stderr lines, for an error report. */
  stderrTail(): string;
  stop(): Promise<void>;
}

/** Options of {@linkcode runHookCells}. */
export interface HookCellsOptions {
  readonly clients: number;
  /** Ms of each cell, split over {@linkcode HOOK_ROUNDS} rounds. */
  readonly durationMs: number;
  readonly value: Uint8Array;
  /**
   * Starts a webhook worker delivering the cluster's hooks (allowed to
   * reach 127.0.0.1), or absent when there is none: the hooks then only
   * record history and lag. Resolves how to stop it.
   */
  readonly startWorker?: () => Promise<StartedWorker>;
  /** Ms of untimed plain puts first (default none). */
  readonly warmupMs?: number;
}

/**
 * Rounds of the hooks cells, each a plain and a hooked part, in ABBA order
 * (plain, hooked, hooked, plain), so that the machine's drift (other load
 * coming and going, warm-up) weighs on both alike.
 */
export const HOOK_ROUNDS = 2;

/**
 * Runs `put-plain` and `put-hooks` on the Aspen leader at `url` in
 * {@linkcode HOOK_ROUNDS} rounds (ABBA): a plain part writes under a
 * prefix no hook follows while no hook exists; before each hooked part
 * {@linkcode HOOKS_PER_PREFIX} webhook hooks are created on its prefix
 * (their target a local receiver answering 200), and deleted after it.
 *
 * @throws {Error} When a hook cannot be created or deleted.
 */
export async function runHookCells(
  url: string,
  options: HookCellsOptions,
): Promise<EventMeasurement[]> {
  let received = 0;
  const receiver = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, async (request) => {
    await request.body?.cancel();
    received++;
    return new Response("ok");
  });
  // Both cells run with the same writers, fewer when a worker runs.
  const clients = options.startWorker === undefined
    ? options.clients
    : Math.min(options.clients, HOOK_WRITERS_WITH_WORKER_MAX);
  options = { ...options, clients };
  try {
    const tag = randomTag();
    const roundMs = options.durationMs / HOOK_ROUNDS;
    if ((options.warmupMs ?? 0) > 0) {
      await putLoop(url, [`h-${tag}`, "warmup"], options, options.warmupMs!);
    }
    const plain: ClosedLoopOutcome[] = [];
    const hooked: ClosedLoopOutcome[] = [];
    let worker = false;
    let delivered = 0;
    for (let round = 0; round < HOOK_ROUNDS; round++) {
      // ABBA: plain first in even rounds, hooked first in odd ones.
      const hookedFirst = round % 2 === 1;
      if (!hookedFirst) {
        plain.push(
          await putLoop(url, plainPrefix(tag, round), options, roundMs),
        );
      }
      const prefix = [`h-${tag}`, `hooks-${round}`];
      const names = await createHooks(
        url,
        `bench-${tag}-${round}`,
        prefix,
        receiver.addr.port,
      );
      const started = await options.startWorker?.();
      worker ||= started !== undefined;
      try {
        if (started !== undefined) await waitForClaims(url, names, started);
        const before = received;
        hooked.push(await putLoop(url, prefix, options, roundMs));
        delivered += received - before;
      } finally {
        await started?.stop();
      }
      for (const name of names) {
        const request: HookRefRequest = { hook: name };
        await aspenPost(url, ROUTES.hookDelete, request);
      }
      if (hookedFirst) {
        plain.push(
          await putLoop(url, plainPrefix(tag, round), options, roundMs),
        );
      }
    }
    return [
      putMeasurement("put-plain", clients, plain, {
        hooks: 0,
        deliveriesReceived: 0,
        worker: false,
        deliveriesDue: 0,
      }),
      putMeasurement("put-hooks", clients, hooked, {
        hooks: HOOKS_PER_PREFIX,
        deliveriesReceived: delivered,
        worker,
        deliveriesDue: HOOKS_PER_PREFIX *
          hooked.reduce((n, r) => n + r.latencies.length, 0),
      }),
    ];
  } finally {
    await receiver.shutdown();
  }
}

const repoRoot = new URL("..", import.meta.url).pathname;
/** Ms a started webhook worker gets to claim the hooks. */
const WORKER_CLAIM_TIMEOUT_MS = 20_000;

/**
 * How to start `aspen worker start` (a webhook worker process allowed to
 * reach 127.0.0.1, the bench token as data and admin token) against
 * `urls`, or undefined when this checkout has no webhook worker
 * (`src/workers/webhooks/worker.ts`).
 */
export async function webhookWorkerStarter(
  urls: readonly string[],
): Promise<(() => Promise<StartedWorker>) | undefined> {
  try {
    await Deno.stat(`${repoRoot}src/workers/webhooks/worker.ts`);
  } catch {
    return undefined;
  }
  return () => {
    const child = spawnChild("webhook worker", Deno.execPath(), [
      "run",
      "--quiet",
      "--config",
      `${repoRoot}deno.json`,
      "--allow-net=127.0.0.1",
      "--allow-env",
      `${repoRoot}cli/aspen.ts`,
      "worker",
      "start",
      "--name",
      "bench-worker",
      "--allow-targets",
      "127.0.0.1/32",
    ], {
      ASPEN_URL: urls.join(","),
      ASPEN_TOKEN: BENCH_ASPEN_TOKEN,
      ASPEN_ADMIN_TOKEN: BENCH_ASPEN_ADMIN_TOKEN,
      NO_COLOR: "1",
    });
    return Promise.resolve({
      stderrTail: () => child.stderrTail(),
      stop: () => stopChild(child),
    });
  };
}

/**
 * Waits until a worker claimed every hook of `names` (`hooks/list` shows
 * its name).
 *
 * @throws {Error} When they are not all claimed within {@linkcode WORKER_CLAIM_TIMEOUT_MS}.
 */
async function waitForClaims(
  url: string,
  names: readonly string[],
  worker: StartedWorker,
): Promise<void> {
  const deadline = performance.now() + WORKER_CLAIM_TIMEOUT_MS;
  let claimed = 0;
  while (performance.now() < deadline) {
    const listed = await aspenPost(url, ROUTES.hookList, {}) as {
      hooks: readonly WireHook[];
    };
    claimed = listed.hooks.filter((h) =>
      names.includes(h.name) && h.worker !== null
    ).length;
    if (claimed === names.length) return;
    await pause(100);
  }
  throw new Error(
    `Cannot measure with a webhook worker: it claimed ${claimed} of ${names.length} hooks within ${WORKER_CLAIM_TIMEOUT_MS} ms: ${worker.stderrTail()}`,
  );
}

/** The prefix of the plain round `round`: no hook follows it. */
function plainPrefix(tag: string, round: number): string[] {
  return [`h-${tag}`, `plain-${round}`];
}

/** Creates {@linkcode HOOKS_PER_PREFIX} webhook hooks on `prefix`; resolves their names. */
async function createHooks(
  url: string,
  namePrefix: string,
  prefix: readonly string[],
  receiverPort: number,
): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < HOOKS_PER_PREFIX; i++) {
    const request: HookCreateRequest = {
      name: `${namePrefix}-${i}`,
      selector: { prefix },
      types: ["kv.*"],
      target: {
        webhook: { url: `http://127.0.0.1:${receiverPort}/hook/${i}` },
      },
    };
    const created = await aspenPost(url, ROUTES.hookCreate, request);
    names.push((created as HookCreateResponse).name);
  }
  return names;
}

/** `clients` closed-loop writers of fresh keys under `prefix` for `durationMs`. */
function putLoop(
  url: string,
  prefix: readonly string[],
  options: HookCellsOptions,
  durationMs: number,
): Promise<ClosedLoopOutcome> {
  const value = { encoding: "bytes" as const, data: base64Of(options.value) };
  const seqs = new Array<number>(options.clients).fill(0);
  return runClosedLoop(
    { clients: options.clients, durationMs },
    async (client) => {
      const request: SetRequest = {
        key: [...prefix, `${client}.${seqs[client]!++}`],
        value,
      };
      await aspenPost(url, ROUTES.kvSet, request);
      return true;
    },
  );
}

/** One put cell from its rounds. */
function putMeasurement(
  cell: "put-plain" | "put-hooks",
  clients: number,
  rounds: readonly ClosedLoopOutcome[],
  hooks: HookDetails,
): EventMeasurement {
  const latencies = rounds.flatMap((r) => r.latencies);
  const elapsedMs = rounds.reduce((ms, r) => ms + r.elapsedMs, 0);
  const seconds = elapsedMs / 1000;
  return {
    workload: cell,
    clients,
    elapsedMs,
    operations: latencies.length,
    errors: rounds.reduce((n, r) => n + r.errors, 0),
    conflicts: 0,
    throughputPerSecond: latencies.length / seconds,
    latencyMs: summarize(latencies),
    firstError: rounds.find((r) => r.firstError !== null)?.firstError ?? null,
    unit: EVENT_CELL_UNITS[cell],
    calls: latencies.length,
    callsPerSecond: latencies.length / seconds,
    violations: 0,
    hooks,
    rounds: rounds.map((r) => r.latencies.length / (r.elapsedMs / 1000)),
  };
}

/**
 * Lines describing the events cells of `targets` beyond the table: the
 * watch cell's writes, checks and drain; the put-hooks ratio to put-plain
 * (the issue's aim is ≥ 0.8×). Empty when none ran.
 */
export function eventLines(
  targets: readonly {
    readonly target: string;
    readonly cells: readonly CellMeasurement[];
  }[],
): string[] {
  const lines: string[] = [];
  for (const t of targets) {
    const cells = t.cells as readonly EventMeasurement[];
    for (const c of cells) {
      const w = c.watch;
      if (w === undefined) continue;
      lines.push(
        `${t.target} watch x${c.clients}: ${w.writes} writes acknowledged (${
          fixed(c.callsPerSecond ?? NaN, 0)
        }/s, write p50 ${fixed(w.writeLatencyMs.p50, 2)} ms, p99 ${
          fixed(w.writeLatencyMs.p99, 2)
        } ms), ${c.operations} events delivered; ${w.missing} missing, ${w.duplicates} duplicated, ${w.outOfOrder} out of order, ${w.wrongValues} with another value, ${w.misrouted} at another prefix's watcher; ${w.beforeAck} arrived before their write's reply; ${w.unacknowledgedEvents} events of unacknowledged writes; last event ${
          w.drainMs.toFixed(0)
        } ms after the writers stopped (${w.watchedAt})`,
      );
    }
    const plain = cells.find((c) => c.workload === "put-plain");
    const hooked = cells.find((c) => c.workload === "put-hooks");
    if (plain === undefined || hooked === undefined) continue;
    const h = hooked.hooks!;
    lines.push(
      `${t.target} put-hooks x${hooked.clients}: ${
        fixed(hooked.throughputPerSecond, 0)
      } / put-plain ${fixed(plain.throughputPerSecond, 0)} puts/s = ${
        plain.throughputPerSecond > 0
          ? (hooked.throughputPerSecond / plain.throughputPerSecond).toFixed(2)
          : "-"
      }x (p99 ${fixed(hooked.latencyMs.p99, 2)} vs ${
        fixed(plain.latencyMs.p99, 2)
      } ms); rounds (puts/s, ABBA order) plain ${roundsText(plain)}, hooked ${
        roundsText(hooked)
      }; ${h.hooks} webhook hooks, ${
        h.worker ? "a webhook worker delivering" : "no webhook worker running"
      }, ${h.deliveriesReceived} webhook requests received during the hooked parts of ${h.deliveriesDue} due`,
    );
  }
  return lines;
}

function roundsText(cell: EventMeasurement): string {
  return (cell.rounds ?? []).map((r) => r.toFixed(0)).join(", ");
}

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "-";
}
