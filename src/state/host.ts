/**
 * The replicated state-machine host: applies committed log entries, in
 * order, to one {@linkcode StateStore}. Every normal entry is an envelope
 * (`envelope.ts`) naming a registered service (`registry.ts`); the host
 *
 * 1. decodes the envelope (a malformed one, or an unknown service, is an
 *    invariant violation: the node stops loudly);
 * 2. lets the service decode and validate its command (a bad command is the
 *    service's typed failure result, identical on every replica);
 * 3. answers a retried session command with its first result, for every
 *    service (`sessions.ts`), before the service sees it;
 * 4. calls the service's apply with an {@linkcode ApplyContext}, checks that
 *    it wrote only inside its keyspaces (an invariant), records the session
 *    result, and applies everything in one store batch;
 * 5. hands the entry's change events to the {@linkcode ChangeSink} once its
 *    store transaction is done (after the whole batch under `batch()`).
 *
 * It implements the runner's state-machine port: `apply(entry)` returns the
 * service's structured result (undefined for blank and configuration
 * entries); `encodeResult`/`decodeResult` are used only for forwarded
 * proposals. Nothing here reads a clock or randomness: times come from the
 * proposer inside the command.
 *
 * @module
 */
import { decode, Decoder, encode, Encoder } from "@msgpack/msgpack";
import { sha256 } from "@noble/hashes/sha2.js";
import { assert, AssertionError } from "../base/assert.ts";
import type { Entry, LogIndex, Snapshot } from "../raft/types.ts";
import { KvInvalidError } from "../model/errors.ts";
import { makeVersionstamp } from "../model/versionstamp.ts";
import type { KvRow } from "../model/types.ts";
import type { StateStore } from "./state_store.ts";
import type { SnapshotChunk } from "./state_store.ts";
import { decodeEnvelope, type EnvelopeSession } from "./envelope.ts";
import type {
  ObservedChange,
  ServiceDefinition,
  ServiceRegistry,
} from "./registry.ts";
import {
  SESSION_DIGEST_BYTES,
  type SessionKnobs,
  SessionTable,
} from "./sessions.ts";
import type { ChangeEvent, ChangeSink, ChangeValue } from "./changes.ts";
import { type ApplyContext, newApplyContext } from "./write_context.ts";

// Results are small: one encoder and decoder serve them all (msgpack's
// encode() and decode() build a new one per call). Snapshots, large, use
// those functions, so this encoder's buffer never grows to a snapshot's size.
const resultEncoder = new Encoder();
const resultDecoder = new Decoder();

/** Longest session client id, in characters. */
export const SESSION_CLIENT_ID_MAX = 64;

/** Options of {@linkcode StateHost}. */
export interface StateHostOptions {
  /** Where each applied entry's changes go. Default: nowhere. */
  readonly changes?: ChangeSink;
  /** Testing knobs of the session table (planted bugs of the simulator). */
  readonly knobs?: SessionKnobs;
}

interface PendingChanges {
  readonly revision: bigint;
  readonly changes: ChangeEvent[];
}

function validSession(session: EnvelopeSession): EnvelopeSession {
  const { clientId, seq } = session;
  if (clientId.length === 0 || clientId.length > SESSION_CLIENT_ID_MAX) {
    throw new KvInvalidError(
      `Cannot decode command: session client id must be 1 to ${SESSION_CLIENT_ID_MAX} characters`,
    );
  }
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new KvInvalidError(
      "Cannot decode command: session seq must be a non-negative integer",
    );
  }
  return session;
}

/**
 * The change event of one staged row (literals, not spreads: this runs for
 * every change): `after` only for a set, `cause` only when given.
 */
function changeOf(
  revision: bigint,
  index: number,
  service: string,
  key: Uint8Array,
  row: KvRow | null,
  cause: string | undefined,
): ChangeEvent {
  if (row === null) {
    return cause === undefined
      ? { revision, index, service, kind: "delete", key }
      : { revision, index, service, kind: "delete", key, cause };
  }
  const after: ChangeValue = row.expireAtMs === null
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
  return cause === undefined
    ? { revision, index, service, kind: "set", key, after }
    : { revision, index, service, kind: "set", key, after, cause };
}

/** Applies entries to a store through the registered services. */
export class StateHost {
  readonly store: StateStore;
  readonly registry: ServiceRegistry;
  readonly #sessions: SessionTable;
  readonly #sink: ChangeSink | undefined;
  /** Services that see every entry's changes (the events history). */
  readonly #observers: readonly ServiceDefinition[];
  /** Changes of entries applied inside `batch()`, delivered after it commits. */
  #pending: PendingChanges[] | null = null;

  constructor(
    store: StateStore,
    registry: ServiceRegistry,
    options: StateHostOptions = {},
  ) {
    this.store = store;
    this.registry = registry;
    this.#sessions = new SessionTable(store, options.knobs ?? {});
    this.#sink = options.changes;
    this.#observers = registry.services().filter((service) =>
      service.observe !== undefined
    );
  }

  /** The index of the last applied entry. */
  appliedIndex(): LogIndex {
    return this.store.appliedIndex();
  }

  /**
   * Applies one committed entry of any type.
   *
   * @returns The service's result; undefined for blank and configuration entries.
   * @throws {AssertionError} For an undecodable envelope, an unknown service or a write outside a keyspace.
   */
  apply(entry: Entry): unknown {
    if (entry.type === "normal" && entry.data.byteLength > 0) {
      return this.applyData(entry.index, entry.data);
    }
    // Blank and configuration entries change no key; the membership they
    // carry lives in the Raft log and snapshot metadata.
    const meta = entry.type === "confChange"
      ? new Map([["raft.conf", entry.data]])
      : undefined;
    if (this.#observers.length === 0) {
      this.#commit(entry.index, [], [], meta ?? new Map(), []);
      return undefined;
    }
    const effects: (() => void)[] = [];
    const context = newApplyContext(
      entry.index,
      makeVersionstamp(entry.index),
      this.store,
      effects,
    );
    if (meta !== undefined) context.meta.set("raft.conf", entry.data);
    this.#flush(
      context,
      effects,
      entry.type === "confChange" ? entry.data : undefined,
    );
    return undefined;
  }

  /**
   * Checks, before proposing, that `data` is an envelope of a registered
   * service: what apply would refuse as an invariant must never enter the
   * log (a forwarded proposal comes from another process).
   *
   * @throws {RangeError} When it is not.
   */
  checkProposal(data: Uint8Array): void {
    let envelope: ReturnType<typeof decodeEnvelope>;
    try {
      envelope = decodeEnvelope(data);
    } catch (error) {
      throw new RangeError(`Cannot propose: ${(error as Error).message}`);
    }
    const service = this.registry.byId(envelope.serviceId);
    if (service === undefined) {
      throw new RangeError(
        `Cannot propose: unknown service id ${envelope.serviceId}`,
      );
    }
    if (
      envelope.session !== undefined && service.sessionRefusal === undefined
    ) {
      throw new RangeError(
        `Cannot propose: service '${service.name}' takes no sessions`,
      );
    }
  }

  /**
   * Applies the envelope `data` as log entry `index`.
   *
   * @throws {AssertionError} When `index` does not follow the applied index, or as {@linkcode apply}.
   */
  applyData(index: LogIndex, data: Uint8Array): unknown {
    assert(
      index > this.store.appliedIndex(),
      `apply() needs an index after the applied index: ${index} after ${this.store.appliedIndex()}`,
    );
    const envelope = decodeEnvelope(data);
    const service = this.registry.byId(envelope.serviceId);
    if (service === undefined) {
      throw new AssertionError(
        `Cannot apply entry ${index}: unknown service id ${envelope.serviceId}`,
      );
    }
    const versionstamp = makeVersionstamp(index);
    const effects: (() => void)[] = [];
    let context = newApplyContext(index, versionstamp, this.store, effects);
    let result: unknown;
    try {
      result = this.#dispatch(
        service,
        envelope.session,
        envelope.payload,
        context,
      );
    } catch (error) {
      // A broken invariant (e.g. a write outside the keyspace) stops the node.
      if (error instanceof AssertionError) throw error;
      result = service.failure(error, index);
      effects.length = 0;
      context = newApplyContext(index, versionstamp, this.store, effects);
    }
    this.#flush(context, effects);
    return result;
  }

  #dispatch(
    service: ServiceDefinition,
    rawSession: EnvelopeSession | undefined,
    payload: Uint8Array,
    context: ApplyContext,
  ): unknown {
    const session = rawSession === undefined
      ? undefined
      : validSession(rawSession);
    const command = service.decode(payload);
    const digest = session === undefined
      ? null
      : service.sessionDigest?.(command) ??
        sha256(payload).subarray(0, SESSION_DIGEST_BYTES);
    const known = session === undefined
      ? null
      : this.#sessions.lookup(session, digest!);
    // A retry of a command that applied before: its first result, no change.
    if (known?.kind === "applied") return known.result;
    if (known?.kind === "reused") {
      return this.#refuse(
        service,
        "sessionReused",
        `Session ${session!.clientId} seq ${
          session!.seq
        } already carried a different write`,
        context.index,
      );
    }
    const replayed = service.replay?.(command, context) ?? null;
    if (replayed !== null) return replayed;
    if (known?.kind === "expired") {
      return this.#refuse(
        service,
        "sessionExpired",
        `The result of session ${session!.clientId} seq ${
          session!.seq
        } is no longer kept (eviction horizon ${known.horizon}): it may have been applied; it is not applied again`,
        context.index,
      );
    }
    const result = service.apply(command, context);
    if (context.overlay.size > 0) {
      this.registry.checkWrites(service, context.overlay.values());
    }
    for (const name of context.meta.keys()) {
      this.registry.checkMeta(service, name);
    }
    // The result is recorded with the command itself, so a retry finds it.
    if (session !== undefined) {
      this.#sessions.record(
        context.overlay,
        session,
        digest!,
        context.index,
        result,
        context.versionstamp,
      );
    }
    return result;
  }

  #refuse(
    service: ServiceDefinition,
    reason: "sessionReused" | "sessionExpired",
    message: string,
    index: LogIndex,
  ): unknown {
    assert(
      service.sessionRefusal !== undefined,
      `Service '${service.name}' received a session command but defines no session refusal`,
    );
    return service.sessionRefusal(reason, message, index);
  }

  #flush(
    context: ApplyContext,
    effects: readonly (() => void)[],
    conf?: Uint8Array,
  ): void {
    const puts: KvRow[] = [];
    const deletes: Uint8Array[] = [];
    const changes: ChangeEvent[] = [];
    if (this.#observers.length > 0) {
      this.#observe(context, changes, conf);
      for (const { key, row } of context.overlay.values()) {
        if (row === null) deletes.push(key);
        else puts.push(row);
      }
    } else if (this.#sink === undefined) {
      for (const { key, row } of context.overlay.values()) {
        if (row === null) deletes.push(key);
        else puts.push(row);
      }
    } else {
      const revision = BigInt(context.index);
      for (const [id, { key, row }] of context.overlay) {
        if (row === null) deletes.push(key);
        else puts.push(row);
        const owner = this.registry.ownerOf(key);
        if (owner === null || owner.range.changes !== true) continue;
        changes.push(
          changeOf(
            revision,
            changes.length,
            owner.owner,
            key,
            row,
            context.causes.size === 0 ? undefined : context.causes.get(id),
          ),
        );
      }
    }
    this.#commit(context.index, puts, deletes, context.meta, changes);
    for (const effect of effects) effect();
  }

  /**
   * Collects the entry's change events (with the rows before them) into
   * `changes`, then lets each observing service stage its rows for them in
   * the same transaction (checked against its keyspaces).
   */
  #observe(
    context: ApplyContext,
    changes: ChangeEvent[],
    conf: Uint8Array | undefined,
  ): void {
    const revision = BigInt(context.index);
    const observed: ObservedChange[] = [];
    for (const [id, { key, row }] of context.overlay) {
      const owner = this.registry.ownerOf(key);
      if (owner === null || owner.range.changes !== true) continue;
      const change = changeOf(
        revision,
        changes.length,
        owner.owner,
        key,
        row,
        context.causes.size === 0 ? undefined : context.causes.get(id),
      );
      changes.push(change);
      observed.push({ change, before: this.store.get(key) });
    }
    for (const observer of this.#observers) {
      const staged = newApplyContext(
        context.index,
        context.versionstamp,
        this.store,
        [],
      );
      // It reads the entry's staged metadata through its own (a copy).
      for (const [name, value] of context.meta) staged.meta.set(name, value);
      observer.observe!(observed, staged, conf);
      if (staged.overlay.size > 0) {
        this.registry.checkWrites(observer, staged.overlay.values());
        for (const [id, write] of staged.overlay) {
          context.overlay.set(id, write);
        }
      }
      for (const [name, value] of staged.meta) {
        if (context.meta.get(name) === value) continue;
        this.registry.checkMeta(observer, name);
        context.meta.set(name, value);
      }
    }
  }

  #commit(
    index: LogIndex,
    puts: KvRow[],
    deletes: Uint8Array[],
    meta: ReadonlyMap<string, Uint8Array>,
    changes: ChangeEvent[],
  ): void {
    this.store.apply(
      meta.size > 0
        ? { puts, deletes, appliedIndex: index, meta }
        : { puts, deletes, appliedIndex: index },
    );
    if (this.#sink === undefined) return;
    const revision = BigInt(index);
    if (this.#pending !== null) this.#pending.push({ revision, changes });
    else this.#sink.applied(revision, changes);
  }

  /** Encodes a result for a forwarded proposal (MessagePack). */
  encodeResult(result: unknown): Uint8Array {
    return resultEncoder.encode(result === undefined ? null : result);
  }

  /**
   * Decodes a forwarded proposal's result.
   *
   * @throws {RangeError} When the bytes are not MessagePack.
   */
  decodeResult(bytes: Uint8Array): unknown {
    return bytes.length === 0 ? undefined : resultDecoder.decode(bytes);
  }

  /** The whole state at the applied index, as the store's snapshot chunks. */
  exportChunks(): SnapshotChunk[] {
    const chunks: SnapshotChunk[] = [];
    const iterator = this.store.exportSnapshot();
    for (let next = iterator.next(); !next.done; next = iterator.next()) {
      chunks.push(next.value);
    }
    return chunks;
  }

  /** The whole state, as MessagePack of the store's snapshot chunks. */
  snapshotData(): Uint8Array {
    // A copy of exactly its bytes: `encode` answers a view into a buffer it
    // grew to up to twice the size, which the Raft core would keep.
    return encode(this.exportChunks()).slice();
  }

  /**
   * Replaces the whole state with a snapshot's, then resets the change sink.
   *
   * @throws {TypeError} When the data is not a list of chunks.
   */
  installSnapshot(snapshot: Snapshot): void {
    const chunks = decode(snapshot.data) as SnapshotChunk[];
    if (!Array.isArray(chunks)) {
      throw new TypeError("Cannot install snapshot: expected a list of chunks");
    }
    const installer = this.store.beginInstall();
    try {
      for (const chunk of chunks) installer.write(chunk);
      installer.commit();
    } catch (error) {
      installer.abort();
      throw error;
    }
    this.#sink?.reset(BigInt(this.store.appliedIndex()));
    for (const service of this.registry.services()) service.installed?.();
  }

  /** Makes everything applied durable. */
  sync(): void {
    this.store.sync();
  }

  /**
   * Applies several entries in one store transaction; their change events
   * are delivered, in order, once it commits.
   */
  batch<T>(work: () => T): T {
    if (this.#pending !== null) return this.store.batch(work);
    const pending: PendingChanges[] = [];
    this.#pending = pending;
    let result: T;
    try {
      result = this.store.batch(work);
    } finally {
      this.#pending = null;
    }
    for (const { revision, changes } of pending) {
      this.#sink!.applied(revision, changes);
    }
    return result;
  }
}
