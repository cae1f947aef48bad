/**
 * Durable hooks of the events service: their records, their delivery logs
 * and the rules that change them at apply. A hook follows the history (a
 * selector and type patterns) from a cursor that moves only in an entry:
 *
 * - a webhook hook is delivered by a worker holding a lease: `hookClaim`
 *   gives it the hook with a fencing token; `hookBegin` opens a batch of
 *   attempts (1 to 100, events strictly increasing, each after the cursor)
 *   and `hookFinish` closes them in one entry: its `results`, in sending
 *   order, are each recorded in the delivery log; the leading `ok` ones move
 *   the cursor; the first non-ok one sets `retrying` (or disables) and
 *   ends the results; its `cancel` list closes the begun attempts the
 *   worker never sent (it stops at a failure) with no record. Both are
 *   fenced (`claimLost` once the claim moved); a begin or finish repeated
 *   after it applied answers as the first did; a lease that ends closes
 *   every open attempt as `unknown` and frees the claim;
 * - a queue hook is advanced by the leader (`hookAdvance`): the entry
 *   enqueues the matching events into the named queue and moves the cursor,
 *   so each event is enqueued exactly once;
 * - `hook.test` (trigger) and `hook.gap` (compaction past the cursor) are
 *   history events carrying `data.hook`: they go to that hook only.
 *
 * Keys (in the events keyspace `ff 65`):
 *
 * | key                               | value                       |
 * | --------------------------------- | --------------------------- |
 * | `ff 65 6b` id (8 bytes)           | the hook record (MessagePack) |
 * | `ff 65 6e` name (UTF-8)           | the hook's id (8 bytes)     |
 * | `ff 65 64` id, seq u64 BE         | one delivery record         |
 *
 * Times come from the command (decided at proposal).
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { fromHex, toHex } from "../../base/bytes.ts";
import { INTERNAL_KEY_BYTE } from "../../model/reserved.ts";
import { decodeKey } from "../../model/key_codec.ts";
import { deserializeV8, serializeV8 } from "../../model/v8_codec.ts";
import type { KvEnqueue } from "../../model/types.ts";
import type { HookDeliveryOutcome } from "../../protocol/hook_targets.ts";
import {
  type ApplyContext,
  internalRowWriter,
  readThrough,
} from "../../state/write_context.ts";
import type { StateStore } from "../../state/state_store.ts";
import { enqueueInto } from "../queues/api.ts";
import { leaseLive } from "../leases/api.ts";
import { EventsError } from "./commands.ts";
import type { HookResult } from "./hook_commands.ts";
import type { HistoryEvent } from "./records.ts";
import { type KeySelector, matches, typeMatcher } from "./selector.ts";
import { EventsCompactedError, EventsReads } from "./reads.ts";

const HOOK_TAG = 0x6b;
const NAME_TAG = 0x6e;
const DELIVERY_TAG = 0x64;

/** Hooks at most. */
export const HOOKS_MAX = 1_000;
/** Delivery records kept per hook. */
export const DELIVERIES_KEPT = 10_000;
/** Delivery records kept at most this long, ms. */
export const DELIVERY_KEEP_MS = 3 * 86_400_000;
/** The previous secret still signs this long after a rotation, ms. */
export const PREVIOUS_SECRET_MS = 86_400_000;
/** Events one queue advance enqueues at most. */
export const ADVANCE_EVENTS_MAX = 1_000;
/** Events one replay covers at most. */
export const REPLAY_EVENTS_MAX = 100_000;

/** Outcome of one attempt (the protocol's `HookDeliveryOutcome`). */
export type HookOutcome = HookDeliveryOutcome;

/** Every outcome, in display order. */
export const HOOK_OUTCOMES: readonly HookOutcome[] = [
  "ok",
  "failed",
  "timeout",
  "error",
  "blocked",
  "gone",
  "unknown",
];

/** Where a hook delivers. */
export type HookTarget =
  | {
    readonly kind: "webhook";
    readonly url: string;
    readonly headers: Readonly<Record<string, string>>;
  }
  | { readonly kind: "queue"; readonly queue: string };

/** A hook's position: strictly after `(r, i)`, or from revision `r` when `i` is -1. */
export interface HookCursor {
  readonly r: number;
  readonly i: number;
}

/** A hook as stored. */
export interface HookRecord {
  readonly id: string;
  readonly name: string;
  readonly selector: KeySelector;
  readonly types: readonly string[];
  readonly target: HookTarget;
  /** Signing secrets: the current one, then the previous one until `previousUntilMs`. */
  readonly secrets: readonly Uint8Array[];
  readonly previousUntilMs: number | null;
  readonly state: "active" | "disabled";
  readonly disabledReason: string | null;
  readonly cursor: HookCursor;
  readonly timeoutMs: number;
  readonly retryWindowMs: number;
  readonly retrySchedule: readonly number[] | null;
  readonly createdAtMs: number;
  readonly claim: {
    readonly worker: string;
    readonly lease: string;
    readonly token: number;
  } | null;
  /** The last fencing token issued. */
  readonly tokens: number;
  readonly retrying: {
    readonly event: string;
    readonly attempt: number;
    readonly firstFailureAtMs: number;
    readonly nextAttemptAtMs: number;
  } | null;
  /** The attempts begun and not yet finished (events increasing). */
  readonly open: readonly OpenAttempt[];
  readonly replay: {
    readonly cursor: HookCursor;
    readonly toRevision: number;
    /** Which replay of this hook (1, 2, …): `replayDone` names it. */
    readonly seq?: number;
  } | null;
  /** Sequence numbers of the delivery log: next to write, oldest kept. */
  readonly logNext: number;
  readonly logFirst: number;
  readonly counts: Readonly<Record<HookOutcome, number>>;
  /** Replays asked for so far. */
  readonly replaySeq?: number;
  /**
   * Planted bug `cursor-apart-from-finish` only: the cursor an ok finish
   * left for the next `hookBegin` to apply (never set in production).
   */
  readonly pendingCursor?: HookCursor;
  /** Attempt latencies reported (a histogram over {@linkcode LATENCY_BOUNDS_MS}). */
  readonly latency?: {
    readonly sumMs: number;
    readonly count: number;
    readonly buckets: readonly number[];
  };
}

/** An attempt named by its event and number. */
export interface OpenRef {
  readonly event: string;
  readonly attempt: number;
}

/** An attempt begun and not yet finished. */
export interface OpenAttempt extends OpenRef {
  readonly startedAtMs: number;
  readonly replay: boolean;
  readonly worker: string;
}

/** Upper bounds of the latency histogram's buckets, ms (the last one is +Inf). */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
  30_000,
];

/** One delivery record. */
export interface DeliveryRecord {
  readonly eventId: string;
  readonly attempt: number;
  readonly startedAtMs: number;
  readonly latencyMs: number;
  readonly status: number | null;
  readonly outcome: HookOutcome;
  readonly error: string | null;
  readonly nextAttemptAtMs: number | null;
  readonly replay: boolean;
  readonly worker: string;
}

/** The record key of hook `id`. */
export function hookKey(id: string): Uint8Array {
  const key = new Uint8Array(11);
  key.set([INTERNAL_KEY_BYTE, 0x65, HOOK_TAG]);
  key.set(fromHex(id), 3);
  return key;
}

/** The name index key of `name`. */
export function hookNameKey(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name);
  const key = new Uint8Array(3 + bytes.length);
  key.set([INTERNAL_KEY_BYTE, 0x65, NAME_TAG]);
  key.set(bytes, 3);
  return key;
}

/** The delivery record key of hook `id` at `seq`. */
export function deliveryKey(id: string, seq: number): Uint8Array {
  const key = new Uint8Array(19);
  key.set([INTERNAL_KEY_BYTE, 0x65, DELIVERY_TAG]);
  key.set(fromHex(id), 3);
  new DataView(key.buffer).setBigUint64(11, BigInt(seq));
  return key;
}

const HOOKS_RANGE = {
  start: new Uint8Array([INTERNAL_KEY_BYTE, 0x65, HOOK_TAG]),
  end: new Uint8Array([INTERNAL_KEY_BYTE, 0x65, HOOK_TAG + 1]),
};

/** Whether `key` is a hook's row (record, name or delivery): restores keep them. */
export function isHookRow(key: Uint8Array): boolean {
  return key[0] === INTERNAL_KEY_BYTE && key[1] === 0x65 &&
    (key[2] === HOOK_TAG || key[2] === NAME_TAG || key[2] === DELIVERY_TAG);
}

/** An event's id `"R.I"`. */
export function eventId(event: { revision: bigint; index: number }): string {
  return `${event.revision}.${event.index}`;
}

/** `"R.I"` → its parts (null when malformed). */
export function parseEventId(
  id: string,
): { revision: number; index: number } | null {
  const match = /^(\d{1,16})\.(\d{1,10})$/.exec(id);
  if (match === null) return null;
  const revision = Number(match[1]);
  const index = Number(match[2]);
  if (!Number.isSafeInteger(revision) || index > 0xffff_ffff) return null;
  return { revision, index };
}

/** The cursor's wire form: `"R.I"` or null (from `fromRevision`). */
export function cursorId(cursor: HookCursor): string | null {
  return cursor.i < 0 ? null : `${cursor.r}.${cursor.i}`;
}

/**
 * The first revision a cursor still needs (its pin on compaction): `r`
 * either way (from `r`, or after an event of `r`, whose later events are at
 * `r` too).
 */
export function cursorRevision(cursor: HookCursor): number {
  return cursor.r;
}

/** Revisions between a hook's cursor and the head `head` (0 when caught up). */
export function hookLag(
  hook: Pick<HookRecord, "cursor">,
  head: number,
): number {
  const done = hook.cursor.i < 0 ? hook.cursor.r - 1 : hook.cursor.r;
  return Math.max(0, head - done);
}

function compareCursor(
  cursor: HookCursor,
  event: { revision: number; index: number },
): number {
  // < 0: the event is after the cursor.
  if (cursor.i < 0) return event.revision >= cursor.r ? -1 : 1;
  return cursor.r - event.revision || cursor.i - event.index || 0;
}

interface StoredSelector {
  k: "all" | "prefix" | "range";
  p?: Uint8Array;
  s?: Uint8Array;
  e?: Uint8Array;
}

function storedSelector(selector: KeySelector): StoredSelector {
  switch (selector.kind) {
    case "all":
      return { k: "all" };
    case "prefix":
      return { k: "prefix", p: selector.prefix };
    case "range":
      return { k: "range", s: selector.start, e: selector.end };
  }
}

function selectorOf(stored: StoredSelector): KeySelector {
  if (stored.k === "prefix") return { kind: "prefix", prefix: stored.p! };
  if (stored.k === "range") {
    return { kind: "range", start: stored.s!, end: stored.e! };
  }
  return { kind: "all" };
}

/** A record's bytes. */
export function encodeHook(record: HookRecord): Uint8Array {
  return encode({ ...record, selector: storedSelector(record.selector) });
}

/** Bytes → a record. */
export function decodeHook(bytes: Uint8Array): HookRecord {
  const value = decode(bytes) as HookRecord & {
    selector: StoredSelector;
    open: readonly OpenAttempt[] | OpenAttempt | null;
  };
  // Records written before batches hold one open attempt or null.
  const open = value.open === null || value.open === undefined
    ? []
    : Array.isArray(value.open)
    ? value.open
    : [value.open as OpenAttempt];
  return { ...value, open, selector: selectorOf(value.selector) };
}

/** Whether `event` goes to `hook` (hook.test and hook.gap go to their own hook only). */
export function hookMatches(hook: HookRecord, event: HistoryEvent): boolean {
  if (event.type === "hook.test" || event.type === "hook.gap") {
    return event.data?.hook === hook.id;
  }
  return matches(hook.selector, typeMatcher(hook.types), event);
}

/** Reads hooks from a store (front ends, the leader). */
export class HookReads {
  readonly #store: Pick<StateStore, "get" | "scan">;

  constructor(store: Pick<StateStore, "get" | "scan">) {
    this.#store = store;
  }

  get(id: string): HookRecord | null {
    if (!/^[0-9a-f]{16}$/.test(id)) return null;
    const row = this.#store.get(hookKey(id));
    return row === null ? null : decodeHook(row.value);
  }

  /** By id or by name. */
  find(ref: string): HookRecord | null {
    const byId = this.get(ref);
    if (byId !== null) return byId;
    const row = this.#store.get(hookNameKey(ref));
    return row === null ? null : this.get(toHex(row.value));
  }

  all(): HookRecord[] {
    return this.#store.scan({ ...HOOKS_RANGE, limit: HOOKS_MAX + 1 }).map((
      row,
    ) => decodeHook(row.value));
  }

  /** Newest first, from `before` (exclusive; default the newest). */
  deliveries(
    hook: HookRecord,
    options: { limit: number; before?: number; outcome?: HookOutcome },
  ): { records: (DeliveryRecord & { seq: number })[]; next: number | null } {
    const records: (DeliveryRecord & { seq: number })[] = [];
    let seq = Math.min(options.before ?? hook.logNext, hook.logNext) - 1;
    let scanned = 0;
    while (
      seq >= hook.logFirst && records.length < options.limit && scanned < 20_000
    ) {
      scanned++;
      const row = this.#store.get(deliveryKey(hook.id, seq));
      if (row !== null) {
        const record = decode(row.value) as DeliveryRecord;
        if (
          options.outcome === undefined || record.outcome === options.outcome
        ) {
          records.push({ ...record, seq });
        }
      }
      seq--;
    }
    return { records, next: seq >= hook.logFirst ? seq + 1 : null };
  }
}

function refuse(
  code: "hookExists" | "hookNotFound" | "claimLost" | "invalid" | "compacted",
  message: string,
): never {
  throw new EventsError(code, message);
}

/** Appends history events in the entry (the service's HistoryWriter). */
export interface HistoryAppender {
  append(event: Omit<HistoryEvent, "revision" | "index">): void;
}

/** Testing knobs of the hooks' apply rules: planted bugs of the simulator. */
export interface HookKnobs {
  /**
   * An ok finish logs the delivery but leaves the cursor; the hook's next
   * `hookBegin` moves it (a worker dying in between lets the next one
   * deliver the event again). Never set in production.
   */
  readonly cursorApartFromFinish?: boolean;
}

/** The apply-side rules of hooks, over one entry's context. */
export class HookWriter {
  readonly #context: ApplyContext;
  readonly #rows: ReturnType<typeof internalRowWriter>;
  readonly #history: HistoryAppender;
  readonly #knobs: HookKnobs;

  constructor(
    context: ApplyContext,
    history: HistoryAppender,
    knobs: HookKnobs = {},
  ) {
    this.#context = context;
    this.#rows = internalRowWriter(context.overlay, context.versionstamp);
    this.#history = history;
    this.#knobs = knobs;
  }

  get(id: string): HookRecord | null {
    if (!/^[0-9a-f]{16}$/.test(id)) return null;
    const row = readThrough(this.#context, hookKey(id));
    return row === null ? null : decodeHook(row.value);
  }

  #required(id: string): HookRecord {
    const hook = this.get(id);
    if (hook === null) refuse("hookNotFound", `No hook has id '${id}'`);
    return hook;
  }

  #put(hook: HookRecord): void {
    this.#rows.put(hookKey(hook.id), encodeHook(hook));
  }

  #ids(): string[] {
    return this.#context.store.scan({ ...HOOKS_RANGE, limit: HOOKS_MAX + 1 })
      .map((row) => toHex(row.key.subarray(3)));
  }

  create(hook: HookRecord): void {
    if (this.get(hook.id) !== null) {
      refuse("hookExists", `A hook with id '${hook.id}' exists already`);
    }
    if (readThrough(this.#context, hookNameKey(hook.name)) !== null) {
      refuse("hookExists", `A hook named '${hook.name}' exists already`);
    }
    if (this.#ids().length >= HOOKS_MAX) {
      throw new EventsError(
        "limitExceeded",
        `Cannot create hook: ${HOOKS_MAX} hooks exist already`,
      );
    }
    let cursor = hook.cursor;
    // A start below the window begins at the window (nothing there to deliver).
    const floor = new EventsReads(this.#context.store).window().floor;
    if (cursorRevision(cursor) < Number(floor)) {
      refuse(
        "compacted",
        `Cannot start hook at revision ${
          cursorRevision(cursor)
        }: the history starts at revision ${floor}`,
      );
    }
    if (cursor.i < 0 && cursor.r > Number(this.#context.index) + 1) {
      cursor = { r: Number(this.#context.index) + 1, i: -1 };
    }
    this.#put({ ...hook, cursor });
    this.#rows.put(hookNameKey(hook.name), fromHex(hook.id));
  }

  delete(id: string): void {
    const hook = this.#required(id);
    this.#rows.remove(hookKey(id));
    this.#rows.remove(hookNameKey(hook.name));
    for (let seq = hook.logFirst; seq < hook.logNext; seq++) {
      this.#rows.remove(deliveryKey(id, seq));
    }
  }

  setState(id: string, enabled: boolean): HookRecord {
    const hook = this.#required(id);
    const next: HookRecord = enabled
      ? { ...hook, state: "active", disabledReason: null, retrying: null }
      : { ...hook, state: "disabled", disabledReason: "disabled" };
    this.#put(next);
    if (!enabled && hook.state === "active") {
      this.#history.append({
        type: "hook.disabled",
        data: { hook: id, name: hook.name, reason: "disabled" },
      });
    }
    return next;
  }

  rotate(id: string, secret: Uint8Array, nowMs: number): void {
    const hook = this.#required(id);
    this.#put({
      ...hook,
      secrets: [secret, hook.secrets[0]!],
      previousUntilMs: nowMs + PREVIOUS_SECRET_MS,
    });
  }

  /** Gives `worker` (under `lease`) every free active webhook hook, up to `max` held. */
  claim(worker: string, lease: string, max: number): string[] {
    if (!leaseLive(this.#context, lease)) {
      refuse("claimLost", `Cannot claim hooks: lease '${lease}' is not live`);
    }
    const held: string[] = [];
    const free: HookRecord[] = [];
    for (const id of this.#ids()) {
      const hook = this.get(id);
      if (hook === null || hook.target.kind !== "webhook") continue;
      if (hook.claim?.lease === lease) {
        if (hook.state === "active") held.push(id);
        else this.#put({ ...this.#closeOpen(hook), claim: null });
      } else if (
        hook.state === "active" &&
        (hook.claim === null || !leaseLive(this.#context, hook.claim.lease))
      ) free.push(hook);
    }
    for (const hook of free) {
      if (held.length >= max) break;
      const token = hook.tokens + 1;
      this.#put(this.#closeOpen({
        ...hook,
        claim: { worker, lease, token },
        tokens: token,
      }));
      held.push(hook.id);
    }
    return held;
  }

  /** The lease of `ids` ended: their claims end, open attempts close as unknown. */
  leasesEnded(ids: readonly string[]): void {
    const ended = new Set(ids);
    for (const id of this.#ids()) {
      const hook = this.get(id);
      if (hook?.claim === null || hook === null) continue;
      if (!ended.has(hook.claim.lease)) continue;
      this.#put({ ...this.#closeOpen(hook), claim: null });
    }
  }

  /** Logs every open attempt as `unknown` (their outcomes were never reported). */
  #closeOpen(hook: HookRecord): HookRecord {
    let next: HookRecord = { ...hook, open: [] };
    for (const open of hook.open) {
      next = this.#log(next, {
        eventId: open.event,
        attempt: open.attempt,
        startedAtMs: open.startedAtMs,
        latencyMs: 0,
        status: null,
        outcome: "unknown",
        error: "the worker's lease ended before it reported the attempt",
        nextAttemptAtMs: null,
        replay: open.replay,
        worker: open.worker,
      }, open.startedAtMs);
    }
    return next;
  }

  #fenced(id: string, token: number): HookRecord {
    const hook = this.#required(id);
    if (
      hook.claim === null || hook.claim.token !== token ||
      !leaseLive(this.#context, hook.claim.lease)
    ) {
      refuse(
        "claimLost",
        `Hook '${hook.name}' is no longer claimed with token ${token}`,
      );
    }
    return hook;
  }

  /**
   * Opens `attempts` (a batch the worker is about to send, in order): the
   * attempts open before close as `unknown`. The same batch begun again
   * (a lost answer) changes nothing.
   *
   * @throws {EventsError} `invalid` (events not strictly increasing),
   *   `compacted` (an event at or before the cursor: compaction moved it).
   */
  begin(
    id: string,
    token: number,
    attempts: readonly OpenRef[],
    replay: boolean,
    nowMs: number,
  ): HookRecord {
    let hook = this.#fenced(id, token);
    if (
      hook.open.length === attempts.length &&
      hook.open.every((open, i) =>
        open.event === attempts[i]!.event &&
        open.attempt === attempts[i]!.attempt && open.replay === replay
      )
    ) return hook;
    let previous: { revision: number; index: number } | null = null;
    for (const attempt of attempts) {
      const at = parseEventId(attempt.event);
      if (at === null) {
        refuse("invalid", `'${attempt.event}' is not an event id`);
      }
      if (
        previous !== null &&
        (at.revision - previous.revision || at.index - previous.index) <= 0
      ) {
        refuse(
          "invalid",
          `Hook '${hook.name}': a batch's events must be strictly increasing (${attempt.event})`,
        );
      }
      const cursor = replay ? hook.replay?.cursor : hook.cursor;
      if (cursor !== undefined && compareCursor(cursor, at) >= 0) {
        refuse(
          "compacted",
          `Hook '${hook.name}' is past event ${attempt.event} already`,
        );
      }
      previous = at;
    }
    hook = this.#closeOpen(hook);
    if (hook.pendingCursor !== undefined) {
      // Planted bug: the cursor of the last ok finish moves only now.
      const { pendingCursor, ...rest } = hook;
      hook = { ...rest, cursor: pendingCursor };
    }
    const worker = hook.claim!.worker;
    const next = {
      ...hook,
      open: attempts.map((a) => ({
        event: a.event,
        attempt: a.attempt,
        startedAtMs: nowMs,
        replay,
        worker,
      })),
    };
    this.#put(next);
    return next;
  }

  /**
   * Closes a batch: `results` in sending order (leading oks, then at most
   * one failure), `cancel` the begun attempts never sent. A finish applied
   * already (a lost answer) changes nothing.
   *
   * @throws {EventsError} `invalid` (a result neither open nor finished, a
   *   result after a failure).
   */
  finish(
    id: string,
    token: number,
    results: readonly HookResult[],
    cancel: readonly OpenRef[],
    nowMs: number,
  ): HookRecord {
    const hook = this.#fenced(id, token);
    const same = (a: OpenRef) => (b: OpenRef) =>
      a.event === b.event && a.attempt === b.attempt;
    // Checked before anything changes: an entry applies whole or not at all.
    const pending: { result: HookResult; open: OpenAttempt }[] = [];
    results.forEach((result, i) => {
      if (i > 0 && results[i - 1]!.outcome !== "ok") {
        refuse(
          "invalid",
          `Hook '${hook.name}': no result may follow a failed one (${result.event})`,
        );
      }
      const open = hook.open.find(same(result));
      if (open !== undefined) pending.push({ result, open });
      else if (
        !this.#finished(hook, result.event, result.attempt, result.replay)
      ) {
        refuse(
          "invalid",
          `Hook '${hook.name}' has no open attempt ${result.attempt} of event ${result.event}`,
        );
      }
    });
    if (pending.length === 0 && !cancel.some((c) => hook.open.some(same(c)))) {
      // A repeated finish (or one of nothing open): answer as before.
      return hook;
    }
    let next: HookRecord = {
      ...hook,
      open: hook.open.filter((open) =>
        !results.some(same(open)) && !cancel.some(same(open))
      ),
    };
    for (const { result, open } of pending) {
      next = this.#applyResult(next, result, open, nowMs);
    }
    this.#put(next);
    return next;
  }

  #applyResult(
    hook: HookRecord,
    report: HookResult,
    open: OpenAttempt,
    nowMs: number,
  ): HookRecord {
    const at = parseEventId(report.event)!;
    let next = this.#log(hook, {
      eventId: report.event,
      attempt: report.attempt,
      startedAtMs: open.startedAtMs,
      latencyMs: report.latencyMs,
      status: report.status,
      outcome: report.outcome,
      error: report.error,
      nextAttemptAtMs: report.nextAttemptAtMs,
      replay: report.replay,
      worker: open.worker,
    }, nowMs);
    if (report.outcome === "ok") {
      const cursor = { r: at.revision, i: at.index };
      // A cursor only moves forward: a compaction (`hook.gap`) may have
      // moved it past the open attempt's event.
      const forward = compareCursor(next.cursor, at) < 0;
      if (report.replay && next.replay !== null) {
        if (compareCursor(next.replay.cursor, at) < 0) {
          next = { ...next, replay: { ...next.replay, cursor } };
        }
      } else if (!report.replay && !forward) {
        next = { ...next, retrying: null };
      } else if (!report.replay && this.#knobs.cursorApartFromFinish) {
        next = { ...next, pendingCursor: cursor, retrying: null };
      } else if (!report.replay) {
        next = { ...next, cursor, retrying: null };
      }
    } else if (report.disable !== null) {
      next = {
        ...next,
        state: "disabled",
        disabledReason: report.disable,
        retrying: null,
      };
      this.#history.append({
        type: "hook.disabled",
        data: { hook: hook.id, name: hook.name, reason: report.disable },
      });
    } else if (!report.replay) {
      next = {
        ...next,
        retrying: {
          event: report.event,
          attempt: report.attempt,
          firstFailureAtMs: hook.retrying?.event === report.event
            ? hook.retrying.firstFailureAtMs
            : open.startedAtMs,
          nextAttemptAtMs: report.nextAttemptAtMs ?? nowMs,
        },
      };
    }
    return next;
  }

  /** Whether attempt `attempt` of `event` was finished already. */
  #finished(
    hook: HookRecord,
    event: string,
    attempt: number,
    replay: boolean,
  ): boolean {
    const at = parseEventId(event);
    if (at === null) return false;
    const cursor = replay ? hook.replay?.cursor : hook.cursor;
    if (cursor !== undefined && compareCursor(cursor, at) >= 0) return true;
    return hook.retrying?.event === event && hook.retrying.attempt >= attempt;
  }

  /** Appends a delivery record and trims the log (count and age). */
  #log(hook: HookRecord, record: DeliveryRecord, nowMs: number): HookRecord {
    this.#rows.put(deliveryKey(hook.id, hook.logNext), encode(record));
    let first = hook.logFirst;
    const next = hook.logNext + 1;
    // Bounded work per record: at most 8 removals by age, one by count.
    for (let i = 0; i < 8 && first < next - 1; i++) {
      const row = readThrough(this.#context, deliveryKey(hook.id, first));
      const old = row === null ? null : decode(row.value) as DeliveryRecord;
      if (old !== null && old.startedAtMs > nowMs - DELIVERY_KEEP_MS) break;
      this.#rows.remove(deliveryKey(hook.id, first));
      first++;
    }
    while (next - first > DELIVERIES_KEPT) {
      this.#rows.remove(deliveryKey(hook.id, first));
      first++;
    }
    const counts = { ...hook.counts };
    counts[record.outcome] = (counts[record.outcome] ?? 0) + 1;
    const latency = hook.latency ??
      { sumMs: 0, count: 0, buckets: LATENCY_BOUNDS_MS.map(() => 0) };
    const bucket = LATENCY_BOUNDS_MS.findIndex((b) => record.latencyMs <= b);
    const buckets = [...latency.buckets];
    if (bucket >= 0) buckets[bucket] = (buckets[bucket] ?? 0) + 1;
    return {
      ...hook,
      logNext: next,
      logFirst: first,
      counts,
      latency: {
        sumMs: latency.sumMs + record.latencyMs,
        count: latency.count + 1,
        buckets,
      },
    };
  }

  replay(id: string, fromRevision: number, toRevision: number): void {
    const hook = this.#required(id);
    const reads = new EventsReads(this.#context.store);
    try {
      reads.check({ from: BigInt(fromRevision) });
    } catch (error) {
      if (error instanceof EventsCompactedError) {
        refuse("compacted", error.message);
      }
      throw error;
    }
    this.#put({
      ...hook,
      replay: {
        cursor: { r: fromRevision, i: -1 },
        toRevision,
        seq: (hook.replay?.seq ?? hook.replaySeq ?? 0) + 1,
      },
      replaySeq: (hook.replay?.seq ?? hook.replaySeq ?? 0) + 1,
    });
  }

  /**
   * Replay `seq` reached its end: drop it. A replay asked for since (a
   * higher seq) stays; without `seq` (older workers) the current one goes.
   */
  replayDone(id: string, token: number, seq: number | null): void {
    const hook = this.#fenced(id, token);
    if (hook.replay === null) return;
    if (seq !== null && (hook.replay.seq ?? 0) !== seq) return;
    this.#put({ ...hook, replay: null });
  }

  trigger(id: string, data: Readonly<Record<string, unknown>>): void {
    const hook = this.#required(id);
    this.#history.append({
      type: "hook.test",
      data: { ...data, hook: id, name: hook.name },
    });
  }

  /**
   * Enqueues the events after a queue hook's cursor up to `toRevision`
   * (at most {@linkcode ADVANCE_EVENTS_MAX}) and moves the cursor past
   * what was read, in this entry.
   */
  advance(id: string, toRevision: number, nowMs: number): number {
    const hook = this.#required(id);
    if (hook.target.kind !== "queue" || hook.state !== "active") return 0;
    const reads = new EventsReads(this.#context.store);
    const to = BigInt(Math.min(toRevision, Number(this.#context.index) - 1));
    const position = hook.cursor.i < 0
      ? { from: BigInt(hook.cursor.r) }
      : { after: { revision: BigInt(hook.cursor.r), index: hook.cursor.i } };
    let page;
    try {
      page = reads.page(position, {
        limit: ADVANCE_EVENTS_MAX,
        to,
        keep: (event) => hookMatches(hook, event),
      });
    } catch (error) {
      if (error instanceof EventsCompactedError) return 0;
      throw error;
    }
    const queue = hook.target.queue;
    const enqueues: KvEnqueue[] = page.events.map((event) => ({
      payload: serializeV8(queuePayload(event)),
      deadlineMs: nowMs,
      keysIfUndelivered: [],
      backoffSchedule: null,
      queue,
    }));
    if (enqueues.length > 0) enqueueInto(this.#context, enqueues);
    const next = page.next;
    const cursor: HookCursor = "from" in next
      ? { r: Number(next.from), i: -1 }
      : { r: Number(next.after.revision), i: next.after.index };
    this.#put({ ...hook, cursor });
    return enqueues.length;
  }

  /**
   * Compaction moved the floor to `floor`: every active hook whose cursor
   * is below it receives `hook.gap` and continues from the floor.
   */
  compacted(floor: number): void {
    for (const id of this.#ids()) {
      const hook = this.get(id);
      if (hook === null || hook.state !== "active") continue;
      if (cursorRevision(hook.cursor) >= floor) continue;
      this.#history.append({
        type: "hook.gap",
        data: {
          hook: id,
          name: hook.name,
          fromRevision: cursorRevision(hook.cursor),
          toRevision: floor - 1,
        },
      });
      // A retried event the floor did not pass keeps its attempt count.
      const retried = hook.retrying === null
        ? null
        : parseEventId(hook.retrying.event);
      const retrying = retried !== null && retried.revision >= floor
        ? hook.retrying
        : null;
      this.#put({ ...hook, cursor: { r: floor, i: -1 }, retrying });
    }
  }
}

function valueOf(row: { value: Uint8Array; encoding: string }): unknown {
  try {
    if (row.encoding === "v8") return deserializeV8(row.value);
    if (row.encoding === "le64" && row.value.byteLength === 8) {
      return new DataView(row.value.buffer, row.value.byteOffset, 8)
        .getBigUint64(0, true);
    }
  } catch {
    // Not decodable here: delivered as bytes.
  }
  return row.value;
}

/** The value a queue hook enqueues for `event`. */
export function queuePayload(event: HistoryEvent): Record<string, unknown> {
  const base: Record<string, unknown> = {
    id: eventId(event),
    revision: Number(event.revision),
    index: event.index,
    type: event.type,
  };
  if (event.key === undefined) {
    if (event.data !== undefined) base.data = event.data;
    return base;
  }
  base.key = decodeKey(event.key);
  base.value = event.after ? valueOf(event.after) : null;
  base.versionstamp = event.after ? toHex(event.after.versionstamp) : null;
  base.prevVersionstamp = event.before
    ? toHex(event.before.versionstamp)
    : null;
  if (event.cause !== undefined) base.cause = event.cause;
  return base;
}
