/**
 * The events service as the state host runs it. Its `observe` sees every
 * applied entry's changes with the rows before them and records one history
 * event per KV change (`kv.set`, `kv.delete` with its cause) in the same
 * transaction; configuration entries yield `member.added|promoted|removed`.
 * Its commands record leader and cluster facts and compact the window.
 * Every replica and every snapshot holds the same records: the window moves
 * only by a `compact` entry.
 *
 * @module
 */
import type { LogIndex } from "../../raft/types.ts";
import { toHex } from "../../base/bytes.ts";
import type { KvRow } from "../../model/types.ts";
import type {
  ObservedChange,
  ServiceDefinition,
} from "../../state/registry.ts";
import type { ApplyContext } from "../../state/write_context.ts";
import type { LeaseDependent } from "../leases/api.ts";
import type { HookCommand } from "./hook_commands.ts";
import {
  HOOK_OUTCOMES,
  type HookKnobs,
  type HookOutcome,
  HookWriter,
} from "./hooks.ts";
import {
  decodeU64,
  encodeU64,
  EVENTS_KEYSPACE,
  EVENTS_META,
  historyKey,
  historyRange,
  parseHistoryKey,
} from "./keys.ts";
import {
  type DeleteCause,
  encodeRecord,
  type EventRow,
  type HistoryEvent,
} from "./records.ts";
import {
  decodeEventsCommand,
  type EventsCommand,
  EventsError,
  type EventsResult,
} from "./commands.ts";
import { decode, encode } from "@msgpack/msgpack";

/** The service's name. */
export const EVENTS_SERVICE = "events";

/** Bytes a record counts for in the window (its key, its value, a fixed cost). */
export function recordBytes(key: Uint8Array, value: Uint8Array): number {
  return key.byteLength + value.byteLength + 32;
}

/** A KV change's cause, as events name it. */
function causeOf(cause: string | undefined): DeleteCause {
  if (cause === "expire") return "expired";
  if (cause === "lease" || cause === "leaseExpired") return "lease";
  return "write";
}

function rowOf(row: KvRow | null): EventRow | null {
  if (row === null) return null;
  return row.expireAtMs === null
    ? {
      value: row.value,
      encoding: row.encoding,
      versionstamp: row.versionstamp,
    }
    : {
      value: row.value,
      encoding: row.encoding,
      versionstamp: row.versionstamp,
      expireAtMs: row.expireAtMs,
    };
}

/** The staged value of metadata `name` in this entry, else the store's. */
function metaOf(context: ApplyContext, name: string): Uint8Array | null {
  return context.meta.get(name) ?? context.store.meta(name);
}

/**
 * Where an entry's next event goes. Several writers may append in one
 * entry (a service's apply, a lease dependent, then `observe` at the
 * flush, which sees the entry's metadata but not its rows): each but the
 * last records `(entry, next index)` in `events.next`, and the next one
 * continues there, so no two events share an id. A value of another entry
 * is stale: the entry starts at 0.
 */
function nextIndexOf(context: ApplyContext): number {
  const raw = metaOf(context, EVENTS_META.next);
  if (raw === null || raw.byteLength !== 12) return 0;
  const view = new DataView(raw.buffer, raw.byteOffset, 12);
  return view.getBigUint64(0) === BigInt(context.index) ? view.getUint32(8) : 0;
}

/** Appends events to an entry: records, counts and bytes. */
class HistoryWriter {
  readonly #context: ApplyContext;
  #next: number;
  #count: bigint;
  #bytes: bigint;
  #dirty = false;
  readonly #last: boolean;

  /** `last`: no writer appends after this one in the entry (`observe`'s). */
  constructor(context: ApplyContext, last = false) {
    this.#context = context;
    this.#last = last;
    this.#next = nextIndexOf(context);
    this.#count = decodeU64(metaOf(context, EVENTS_META.count));
    this.#bytes = decodeU64(metaOf(context, EVENTS_META.bytes));
  }

  append(event: Omit<HistoryEvent, "revision" | "index">): void {
    const revision = BigInt(this.#context.index);
    const key = historyKey(revision, this.#next);
    const value = encodeRecord({ ...event, revision, index: this.#next });
    this.#next++;
    this.#context.overlay.set(toHex(key), {
      key,
      row: {
        key,
        value,
        encoding: "bytes",
        versionstamp: this.#context.versionstamp,
        expireAtMs: null,
      },
    });
    this.#count++;
    this.#bytes += BigInt(recordBytes(key, value));
    this.#dirty = true;
  }

  /** Deletes every record below `below`; returns how many. */
  compact(below: bigint): number {
    const { store, meta } = this.#context;
    const floor = decodeU64(metaOf(this.#context, EVENTS_META.floor));
    if (below <= floor) return 0;
    const limit = Number(this.#count) + 1;
    const rows = store.scan({ ...historyRange(0n, below), limit });
    for (const row of rows) {
      this.#context.overlay.set(toHex(row.key), {
        key: row.key,
        row: null,
      });
      this.#count--;
      this.#bytes -= BigInt(recordBytes(row.key, row.value));
    }
    meta.set(EVENTS_META.floor, encodeU64(below));
    this.#dirty = true;
    return rows.length;
  }

  finish(): void {
    if (!this.#dirty) return;
    this.#context.meta.set(EVENTS_META.count, encodeU64(this.#count));
    this.#context.meta.set(EVENTS_META.bytes, encodeU64(this.#bytes));
    if (!this.#last) {
      const next = new Uint8Array(12);
      const view = new DataView(next.buffer);
      view.setBigUint64(0, BigInt(this.#context.index));
      view.setUint32(8, this.#next);
      this.#context.meta.set(EVENTS_META.next, next);
    }
  }
}

const confDecoder = new TextDecoder();

/**
 * The voters and learners of a configuration entry's data (Raft's
 * `ConfState` as JSON). Read here rather than with `raft/confchange.ts`'s
 * decoder, which is the consensus core a service may not import; only the
 * two member lists are read, and malformed data yields no members (the
 * entry was validated when it was proposed).
 */
function membersOf(
  data: Uint8Array,
): {
  voters: readonly string[];
  votersOutgoing: readonly string[];
  learners: readonly string[];
} {
  let value: unknown;
  try {
    value = JSON.parse(confDecoder.decode(data));
  } catch {
    return { voters: [], votersOutgoing: [], learners: [] };
  }
  const list = (x: unknown): string[] =>
    Array.isArray(x) ? x.filter((id) => typeof id === "string") : [];
  const conf = (value ?? {}) as {
    voters?: unknown;
    votersOutgoing?: unknown;
    learners?: unknown;
  };
  return {
    voters: list(conf.voters),
    votersOutgoing: list(conf.votersOutgoing),
    learners: list(conf.learners),
  };
}

/** Member events of a configuration entry, from the configuration before. */
function memberEvents(
  before: Uint8Array | null,
  after: Uint8Array,
): Omit<HistoryEvent, "revision" | "index">[] {
  const next = membersOf(after);
  // The first configuration entry of a provisioned cluster has no earlier
  // one recorded: its outgoing voters (a joint entry) or its voters (a
  // learner added) were the members before.
  const previous = before !== null ? membersOf(before) : {
    voters: next.votersOutgoing.length > 0 ? next.votersOutgoing : next.voters,
    learners: [],
  };
  const roleIn = (
    conf: { voters: readonly string[]; learners: readonly string[] } | null,
    id: string,
  ) =>
    conf === null
      ? null
      : conf.voters.includes(id)
      ? "voter"
      : conf.learners.includes(id)
      ? "learner"
      : null;
  const events: Omit<HistoryEvent, "revision" | "index">[] = [];
  const ids = new Set([
    ...next.voters,
    ...next.learners,
    ...(previous?.voters ?? []),
    ...(previous?.learners ?? []),
  ]);
  for (const id of [...ids].sort()) {
    const was = roleIn(previous, id);
    const now = roleIn(next, id);
    if (was === now) continue;
    if (now === null) {
      events.push({ type: "member.removed", data: { node: id, role: was } });
    } else if (was === null) {
      events.push({ type: "member.added", data: { node: id, role: now } });
    } else if (now === "voter") {
      events.push({ type: "member.promoted", data: { node: id, role: now } });
    }
  }
  return events;
}

function observe(
  changes: readonly ObservedChange[],
  context: ApplyContext,
  conf: Uint8Array | undefined,
): void {
  if (changes.length === 0 && conf === undefined) return;
  const writer = new HistoryWriter(context, true);
  for (const { change, before } of changes) {
    if (change.service !== "kv") continue;
    const after = change.after === undefined ? null : {
      value: change.after.value,
      encoding: change.after.encoding as EventRow["encoding"],
      versionstamp: change.after.versionstamp,
      ...(change.after.expireAtMs === undefined
        ? {}
        : { expireAtMs: change.after.expireAtMs }),
    };
    writer.append(
      after === null
        ? {
          type: "kv.delete",
          key: change.key,
          after: null,
          before: rowOf(before),
          cause: causeOf(change.cause),
        }
        : { type: "kv.set", key: change.key, after, before: rowOf(before) },
    );
  }
  if (conf !== undefined) {
    let events: Omit<HistoryEvent, "revision" | "index">[] = [];
    try {
      events = memberEvents(context.store.meta("raft.conf"), conf);
    } catch {
      // Not a configuration this node can read: no member events (the same everywhere).
    }
    for (const event of events) writer.append(event);
  }
  writer.finish();
}

interface LeaderMeta {
  readonly term: number;
  readonly leader: string;
}

function applyEvents(
  command: EventsCommand,
  context: ApplyContext,
  knobs: HookKnobs = {},
): EventsResult {
  const index = Number(context.index);
  const writer = new HistoryWriter(context);
  switch (command.type) {
    case "leader": {
      const raw = metaOf(context, EVENTS_META.leader);
      const last = raw === null ? null : decode(raw) as LeaderMeta;
      if (last !== null && command.term <= last.term) {
        return { ok: true, index, recorded: false };
      }
      writer.append({
        type: "leader.changed",
        data: {
          term: command.term,
          leader: command.leader,
          previous: last?.leader ?? null,
        },
      });
      context.meta.set(
        EVENTS_META.leader,
        encode({ term: command.term, leader: command.leader }),
      );
      writer.finish();
      return { ok: true, index, recorded: true };
    }
    case "fact":
      writer.append({ type: command.event, data: command.data });
      writer.finish();
      return { ok: true, index, recorded: true };
    case "compact": {
      const below = BigInt(Math.min(command.belowRevision, index));
      const before = Number(decodeU64(metaOf(context, EVENTS_META.floor)));
      const deleted = writer.compact(below);
      const floor = Number(decodeU64(metaOf(context, EVENTS_META.floor)));
      // The floor may pass a hook's cursor over revisions without records
      // (nothing deleted): that hook continues at the floor all the same.
      if (floor > before) new HookWriter(context, writer).compacted(floor);
      writer.finish();
      return { ok: true, index, floor, deleted };
    }
    default: {
      const result = applyHook(
        command,
        new HookWriter(context, writer, knobs),
      );
      writer.finish();
      return { ok: true, index, ...result };
    }
  }
}

function applyHook(
  command: HookCommand,
  hooks: HookWriter,
): { hooks?: string[]; enqueued?: number } {
  switch (command.type) {
    case "hookCreate":
      hooks.create({
        id: command.id,
        name: command.name,
        selector: command.selector,
        types: command.types,
        target: command.target,
        secrets: [command.secret],
        previousUntilMs: null,
        state: "active",
        disabledReason: null,
        cursor: command.cursor,
        timeoutMs: command.timeoutMs,
        retryWindowMs: command.retryWindowMs,
        retrySchedule: command.retrySchedule,
        createdAtMs: command.nowMs,
        claim: null,
        tokens: 0,
        retrying: null,
        open: [],
        replay: null,
        logNext: 0,
        logFirst: 0,
        counts: Object.fromEntries(
          HOOK_OUTCOMES.map((o) => [o, 0]),
        ) as Record<HookOutcome, number>,
      });
      return {};
    case "hookDelete":
      hooks.delete(command.id);
      return {};
    case "hookSetState":
      hooks.setState(command.id, command.enabled);
      return {};
    case "hookRotate":
      hooks.rotate(command.id, command.secret, command.nowMs);
      return {};
    case "hookClaim":
      return { hooks: hooks.claim(command.worker, command.lease, command.max) };
    case "hookBegin":
      hooks.begin(
        command.id,
        command.token,
        command.attempts,
        command.replay,
        command.nowMs,
      );
      return {};
    case "hookFinish":
      hooks.finish(
        command.id,
        command.token,
        command.results,
        command.cancel,
        command.nowMs,
      );
      return {};
    case "hookReplay":
      hooks.replay(command.id, command.fromRevision, command.toRevision);
      return {};
    case "hookReplayDone":
      hooks.replayDone(command.id, command.token, command.seq);
      return {};
    case "hookTrigger":
      hooks.trigger(command.id, command.data);
      return {};
    case "hookAdvance":
      return {
        enqueued: hooks.advance(command.id, command.toRevision, command.nowMs),
      };
  }
}

/** Ends the claims of ended leases (the leases service calls it in the entry that ends them). */
export function hooksLeaseDependent(): LeaseDependent {
  return {
    service: EVENTS_SERVICE,
    onLeaseEnded(ids, context) {
      const writer = new HistoryWriter(context);
      new HookWriter(context, writer).leasesEnded(ids);
      writer.finish();
    },
  };
}

/**
 * Records other services' facts (`topic.gap`, …) as history events of the
 * entry being applied, after any it already holds. The caller's service
 * must `reach` `events`.
 */
export function appendEvents(
  context: ApplyContext,
  events: readonly {
    readonly type: string;
    readonly data: Readonly<Record<string, unknown>>;
  }[],
): void {
  if (events.length === 0) return;
  const writer = new HistoryWriter(context);
  for (const event of events) {
    writer.append({ type: event.type, data: event.data });
  }
  writer.finish();
}

/**
 * The events service's registration (see `services/table.ts`).
 *
 * @param knobs Planted bugs of the simulator (never set in production).
 */
export function eventsService(knobs: HookKnobs = {}): ServiceDefinition<
  EventsCommand,
  EventsResult
> {
  return {
    name: EVENTS_SERVICE,
    keyspaces: [EVENTS_KEYSPACE],
    // A queue hook's advance enqueues into the named queue in its entry.
    reaches: ["queues"],
    meta: ["events."],
    decode: decodeEventsCommand,
    apply: (command, context) => applyEvents(command, context, knobs),
    observe,
    // Hook commands come with the proposing node's session: a retried
    // proposal applies once and answers its first result.
    sessionRefusal: (reason, message, index) => ({
      ok: false,
      index: Number(index),
      reason,
      message,
    }),
    failure(error: unknown, index: LogIndex): EventsResult {
      if (!(error instanceof EventsError)) throw error;
      return {
        ok: false,
        index: Number(index),
        reason: error.code,
        message: error.message,
      };
    },
  };
}

export { parseHistoryKey };
