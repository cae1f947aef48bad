/**
 * {@linkcode AspenKv}: the `Deno.Kv`-shaped part of the client, over the
 * HTTP API.
 *
 * @module
 */
import { encodeKey } from "../model/key_codec.ts";
import {
  encodeCursor,
  type ResolvedSelector,
  resolveSelector,
} from "../model/range.ts";
import {
  type AtomicRequest,
  type CommitResponse,
  CONSISTENCY_PARAMETER,
  type GetManyResponse,
  type GetResponse,
  HTTP_API_LIMITS,
  type ListResponse,
  ROUTES,
  type WireCheck,
  type WireEnqueue,
  type WireEntry,
  type WireMutation,
} from "../protocol/http_api.ts";
import type { WireCoordinationCheck } from "../protocol/http_api_leases.ts";
import { keyFromWire, keyToWire } from "../protocol/http_api_codec.ts";
import type { HttpTransport } from "./_transport.ts";
import { valueFromWire, valueToWire } from "./_values.ts";
import { CheckFailedError } from "./errors.ts";
import { checkLeaseId } from "./leases.ts";
import { checkName, checkToken } from "./locks.ts";
import { KvU64 } from "./kv_u64.ts";
import { enqueueToWire, listenLoop, peekQueue, queueInfo } from "./_queue.ts";
import { watchStream } from "./_watch.ts";
import type {
  WireAtomicAck,
  WireAtomicPublish,
} from "../protocol/http_api_pubsub.ts";
import { checkPubsubName, publishMessageToWire } from "./_pubsub_wire.ts";
import type { PublishOptions } from "./_pubsub_types.ts";

/** What an atomic operation's `ack` needs of a delivered message (a consumer's message has it). */
export interface AtomicAckRef {
  /** The topic the message was published to. */
  readonly topic: string;
  /** The consumer group that received it. */
  readonly group: string;
  /** The member (a lease id) the message was delivered to. */
  readonly memberId: string;
  /** The group generation of the delivery; a stale generation is fenced. */
  readonly generation: number;
  /** The partition holding the message. */
  readonly partition: number;
  /** The message's offset within its partition. */
  readonly offset: number;
}
import type {
  AtomicCheck,
  KvCommitError,
  KvCommitResult,
  KvConsistencyLevel,
  KvEnqueueOptions,
  KvEntry,
  KvEntryMaybe,
  KvGetOptions,
  KvKey,
  KvListenQueueOptions,
  KvListOptions,
  KvListSelector,
  KvQueueInfo,
  KvQueueMessage,
  KvSetOptions,
  KvWatchOptions,
} from "./types.ts";

/**
 * The placeholder `kv.commitVersionstamp()` returns: as a key's last part,
 * it is replaced by the commit's versionstamp.
 */
export const KV_COMMIT_VERSIONSTAMP: unique symbol = Symbol(
  "AspenKv.commitVersionstamp",
);

/** What `kv.commitVersionstamp()` returns. */
export type KvCommitVersionstamp = typeof KV_COMMIT_VERSIONSTAMP;

/** A key that may end in `kv.commitVersionstamp()`. */
export type KvKeyWithVersionstamp =
  readonly (KvKey[number] | KvCommitVersionstamp)[];

/**
 * The key without its final commit-versionstamp placeholder, or null when it
 * has none.
 *
 * @throws {TypeError} When the placeholder is not the last part.
 */
function versionstampedPrefix(key: KvKeyWithVersionstamp): KvKey | null {
  const at = key.indexOf(KV_COMMIT_VERSIONSTAMP);
  if (at === -1) return null;
  if (at !== key.length - 1) {
    throw new TypeError(
      "Invalid key: commitVersionstamp() may only be its last part",
    );
  }
  return key.slice(0, -1) as KvKey;
}

/** The lease id of a set's options, checked. */
function leaseOf(options: KvSetOptions): string | undefined {
  if (options.lease === undefined) return undefined;
  const id = typeof options.lease === "string"
    ? options.lease
    : options.lease.id;
  checkLeaseId(id);
  return id;
}

function readPath(
  route: string,
  consistency: KvConsistencyLevel | undefined,
): string {
  if (consistency === undefined || consistency === "strong") return route;
  if (consistency !== "eventual") {
    throw new TypeError(
      `Invalid consistency: expected 'strong' or 'eventual', received '${consistency}'`,
    );
  }
  return `${route}?${CONSISTENCY_PARAMETER}=eventual`;
}

function entryFromWire<T>(wire: WireEntry): KvEntryMaybe<T> {
  const key = keyFromWire(wire.key);
  if (wire.value === null || wire.versionstamp === null) {
    return { key, value: null, versionstamp: null };
  }
  return {
    key,
    value: valueFromWire(wire.value) as T,
    versionstamp: wire.versionstamp,
  };
}

/**
 * Builds an atomic operation, as `Deno.AtomicOperation`: all checks pass
 * and every mutation applies, or nothing does.
 *
 * @example
 * ```ts ignore
 * const current = await client.kv.get(["balance"]);
 * const result = await client.kv.atomic()
 *   .check(current)
 *   .set(["balance"], new KvU64(10n))
 *   .commit();
 * if (!result.ok) console.log("someone else changed it");
 * ```
 */
export class AtomicOperation {
  readonly #transport: HttpTransport;
  readonly #checks: (WireCheck | WireCoordinationCheck)[] = [];
  readonly #mutations: WireMutation[] = [];
  readonly #enqueues: WireEnqueue[] = [];
  readonly #publishes: WireAtomicPublish[] = [];
  readonly #acks: WireAtomicAck[] = [];

  /** Used by {@linkcode AspenKv.atomic}. */
  constructor(transport: HttpTransport) {
    this.#transport = transport;
  }

  /** Adds checks: each key's versionstamp must equal the given one (null: absent). */
  check(...checks: AtomicCheck[]): this {
    for (const check of checks) {
      this.#checks.push({
        key: keyToWire(check.key),
        versionstamp: check.versionstamp,
      });
    }
    return this;
  }

  /**
   * Passes only while `token` is a current holder of the lock or election
   * `name` (an Aspen extension): a write fenced by a token that stopped
   * holding (the lock moved) fails like any failed check, decided at the
   * write's revision whatever the holder's clock says.
   *
   * @throws {TypeError} For a malformed name or token.
   */
  checkFence(name: string, token: string): this {
    checkName(name);
    checkToken(token);
    this.#checks.push({ fence: { name, token } });
    return this;
  }

  /**
   * Passes only while the lease exists (an Aspen extension).
   *
   * @throws {TypeError} For a malformed lease id.
   */
  checkLease(lease: string | { readonly id: string }): this {
    const id = typeof lease === "string" ? lease : lease.id;
    checkLeaseId(id);
    this.#checks.push({ lease: id });
    return this;
  }

  /**
   * Sets `key` to `value`. A key ending in `kv.commitVersionstamp()` gets
   * the commit's versionstamp as its last part. With `lease`, the key is
   * attached to it and deleted when it ends.
   *
   * @throws {TypeError} For a malformed lease id, or a lease on a versionstamped key.
   */
  set(
    key: KvKeyWithVersionstamp,
    value: unknown,
    options: KvSetOptions = {},
  ): this {
    const expireIn = options.expireIn === undefined
      ? {}
      : { expireIn: options.expireIn };
    const lease = leaseOf(options);
    const prefix = versionstampedPrefix(key);
    if (prefix !== null) {
      if (lease !== undefined) {
        throw new TypeError(
          "Cannot attach a key ending in commitVersionstamp() to a lease",
        );
      }
      this.#mutations.push({
        type: "setVersionstamped",
        key: keyToWire(prefix),
        value: valueToWire(value),
        ...expireIn,
      });
      return this;
    }
    this.#mutations.push({
      type: "set",
      key: keyToWire(key as KvKey),
      value: valueToWire(value),
      ...expireIn,
      ...(lease === undefined ? {} : { lease }),
    });
    return this;
  }

  /** Deletes `key`. */
  delete(key: KvKey): this {
    this.#mutations.push({ type: "delete", key: keyToWire(key) });
    return this;
  }

  /** Adds `n` to the u64 at `key` (wrapping; absent counts as 0). */
  sum(key: KvKey, n: bigint): this {
    return this.#arithmetic("sum", key, n);
  }

  /** Sets the u64 at `key` to the smaller of it and `n`. */
  min(key: KvKey, n: bigint): this {
    return this.#arithmetic("min", key, n);
  }

  /** Sets the u64 at `key` to the larger of it and `n`. */
  max(key: KvKey, n: bigint): this {
    return this.#arithmetic("max", key, n);
  }

  /**
   * Enqueues `value` (V8-serialized, as Deno KV does) if and only if the
   * operation applies.
   *
   * @throws {TypeError} For values V8 cannot serialize.
   */
  enqueue(value: unknown, options: KvEnqueueOptions = {}): this {
    this.#enqueues.push(enqueueToWire(value, options));
    return this;
  }

  /**
   * Publishes `value` to `topic` if and only if the operation applies (an
   * Aspen extension, pub/sub): the KV writes, the publishes and the acks of
   * one operation are one Raft entry.
   *
   * @throws {TypeError} For a bad topic name, value or options.
   * @throws {RangeError} For a key, header, partition or delay out of range.
   */
  publish(topic: string, value: unknown, options: PublishOptions = {}): this {
    checkPubsubName(topic, "topic");
    const { producerId, ...message } = options;
    if (producerId !== undefined && message.sequence === undefined) {
      throw new TypeError("Invalid publish: a producerId needs a sequence");
    }
    this.#publishes.push({
      topic,
      ...(producerId === undefined ? {} : { producerId }),
      ...publishMessageToWire({ ...message, value }),
    });
    return this;
  }

  /**
   * Acks a delivered message if and only if the operation applies (an
   * Aspen extension, pub/sub), checked against the member's generation at
   * the write's revision: a message already finished (acked, dead-lettered)
   * or a partition that moved refuses the whole operation
   * ({@linkcode MessageFinishedError}, {@linkcode StaleGenerationError}).
   */
  ack(message: AtomicAckRef): this {
    checkPubsubName(message.topic, "topic");
    checkPubsubName(message.group, "group");
    this.#acks.push({
      topic: message.topic,
      group: message.group,
      memberId: message.memberId,
      generation: message.generation,
      partition: message.partition,
      offset: message.offset,
    });
    return this;
  }

  #arithmetic(type: "sum" | "min" | "max", key: KvKey, n: bigint): this {
    this.#mutations.push({
      type,
      key: keyToWire(key),
      value: valueToWire(new KvU64(n)),
    });
    return this;
  }

  /**
   * Commits. A failed check resolves `{ ok: false }`, as Deno KV does;
   * every other refusal throws.
   */
  async commit(): Promise<KvCommitResult | KvCommitError> {
    try {
      return await this.commitOrThrow();
    } catch (error) {
      if (error instanceof CheckFailedError) return { ok: false };
      throw error;
    }
  }

  /**
   * Commits, throwing {@linkcode CheckFailedError} (with the failing check
   * indexes) when a check fails.
   */
  async commitOrThrow(): Promise<KvCommitResult> {
    const request: AtomicRequest = {
      checks: this.#checks,
      mutations: this.#mutations,
      ...(this.#enqueues.length === 0 ? {} : { enqueues: this.#enqueues }),
      ...(this.#publishes.length === 0 ? {} : { publishes: this.#publishes }),
      ...(this.#acks.length === 0 ? {} : { acks: this.#acks }),
    };
    const reply = await this.#transport.request(
      "POST",
      ROUTES.kvAtomic,
      request,
      "write",
    ) as CommitResponse;
    return { ok: true, versionstamp: reply.versionstamp };
  }
}

/**
 * The entries of a list, as `Deno.KvListIterator`: fetched page by page,
 * with `cursor` naming the position after the last entry returned.
 */
export class KvListIterator<T> implements AsyncIterableIterator<KvEntry<T>> {
  readonly #transport: HttpTransport;
  readonly #selector: KvListSelector;
  readonly #resolved: ResolvedSelector;
  readonly #options: KvListOptions;
  readonly #batchSize: number;
  #remaining: number;
  #buffer: KvEntry<T>[] = [];
  #pageCursor: string | undefined;
  #done = false;
  #cursor: string | undefined;

  /** Used by {@linkcode AspenKv.list}. */
  constructor(
    transport: HttpTransport,
    selector: KvListSelector,
    options: KvListOptions,
  ) {
    this.#transport = transport;
    this.#selector = selector;
    this.#options = options;
    this.#resolved = resolveSelector({
      prefix: "prefix" in selector ? encodeKey(selector.prefix) : undefined,
      start: "start" in selector ? encodeKey(selector.start) : undefined,
      end: "end" in selector ? encodeKey(selector.end) : undefined,
    });
    const limit = options.limit ?? Infinity;
    if (!(limit > 0)) {
      throw new RangeError(
        `Invalid limit: must be greater than 0: received ${limit}`,
      );
    }
    this.#remaining = limit;
    this.#batchSize = options.batchSize ??
      Math.min(limit, HTTP_API_LIMITS.listLimitDefault);
    if (this.#batchSize > HTTP_API_LIMITS.listLimitMax) {
      // Deno's own type and wording.
      throw new TypeError(
        `Too many entries (max ${HTTP_API_LIMITS.listLimitMax})`,
      );
    }
    if (!Number.isSafeInteger(this.#batchSize) || this.#batchSize < 1) {
      throw new RangeError(
        `Invalid batchSize: must be 1 to ${HTTP_API_LIMITS.listLimitMax}: received ${this.#batchSize}`,
      );
    }
    this.#pageCursor = options.cursor;
  }

  /**
   * The cursor after the last entry returned, to resume a later list.
   *
   * @throws {Error} Before the first entry was returned.
   */
  get cursor(): string {
    if (this.#cursor === undefined) {
      throw new Error("Cannot get cursor before first iteration");
    }
    return this.#cursor;
  }

  /** The next entry. */
  async next(): Promise<IteratorResult<KvEntry<T>, undefined>> {
    if (this.#buffer.length === 0 && !this.#done && this.#remaining > 0) {
      await this.#fetchPage();
    }
    const entry = this.#buffer.shift();
    if (entry === undefined || this.#remaining <= 0) {
      return { done: true, value: undefined };
    }
    this.#remaining--;
    this.#cursor = encodeCursor(this.#resolved, encodeKey(entry.key));
    return { done: false, value: entry };
  }

  async #fetchPage(): Promise<void> {
    const selector = this.#selector;
    const reply = await this.#transport.request(
      "POST",
      readPath(ROUTES.kvList, this.#options.consistency),
      {
        selector: {
          ...("prefix" in selector
            ? { prefix: keyToWire(selector.prefix) }
            : {}),
          ...("start" in selector ? { start: keyToWire(selector.start) } : {}),
          ...("end" in selector ? { end: keyToWire(selector.end) } : {}),
        },
        limit: Math.min(this.#batchSize, this.#remaining),
        reverse: this.#options.reverse ?? false,
        ...(this.#pageCursor === undefined ? {} : { cursor: this.#pageCursor }),
      },
      "idempotent",
    ) as ListResponse;
    for (const wire of reply.entries) {
      this.#buffer.push(entryFromWire<T>(wire) as KvEntry<T>);
    }
    if (reply.cursor === null) this.#done = true;
    else this.#pageCursor = reply.cursor;
  }

  /** This iterator. */
  [Symbol.asyncIterator](): AsyncIterableIterator<KvEntry<T>> {
    return this;
  }
}

/**
 * A key-value store with the shape of `Deno.Kv`, served by an Aspen
 * cluster. Obtain it from `connect(...).kv`.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@aspen/aspen";
 * using client = connect("http://127.0.0.1:8080", { token: "secret" });
 * await client.kv.set(["users", 1], new TextEncoder().encode("alice"));
 * const entry = await client.kv.get<Uint8Array>(["users", 1]);
 * for await (const e of client.kv.list({ prefix: ["users"] })) console.log(e.key);
 * ```
 */
export class AspenKv {
  readonly #transport: HttpTransport;

  /** Used by `connect`. */
  constructor(transport: HttpTransport) {
    this.#transport = transport;
  }

  /** Reads one key (strong by default). */
  async get<T = unknown>(
    key: KvKey,
    options: KvGetOptions = {},
  ): Promise<KvEntryMaybe<T>> {
    const reply = await this.#transport.request(
      "POST",
      readPath(ROUTES.kvGet, options.consistency),
      { key: keyToWire(key) },
      "idempotent",
    ) as GetResponse;
    return entryFromWire<T>(reply.entry);
  }

  /** Reads up to 10 keys from one consistent view, in order. */
  async getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: KvKey }],
    options: KvGetOptions = {},
  ): Promise<{ [K in keyof T]: KvEntryMaybe<T[K]> }> {
    const reply = await this.#transport.request(
      "POST",
      readPath(ROUTES.kvGetMany, options.consistency),
      { keys: keys.map((key) => keyToWire(key as KvKey)) },
      "idempotent",
    ) as GetManyResponse;
    return reply.entries.map((entry) => entryFromWire(entry)) as {
      [K in keyof T]: KvEntryMaybe<T[K]>;
    };
  }

  /**
   * A placeholder for a key's last part that becomes the commit's
   * versionstamp, as `Deno.Kv.commitVersionstamp()`.
   */
  commitVersionstamp(): KvCommitVersionstamp {
    return KV_COMMIT_VERSIONSTAMP;
  }

  /**
   * Sets `key` to `value` (Uint8Array → bytes, KvU64 → le64). With
   * `lease`, the key is attached to it and deleted when it ends (a later
   * set without `lease` detaches it).
   *
   * @throws {LeaseNotFoundError} When `lease` names no lease: nothing applied.
   */
  async set(
    key: KvKeyWithVersionstamp,
    value: unknown,
    options: KvSetOptions = {},
  ): Promise<KvCommitResult> {
    // No checks: the atomic commit either applies or throws. The set route
    // has no lease field: a leased set goes as a one-mutation atomic.
    if (versionstampedPrefix(key) !== null || options.lease !== undefined) {
      return await this.atomic().set(key, value, options).commitOrThrow();
    }
    const reply = await this.#transport.request("POST", ROUTES.kvSet, {
      key: keyToWire(key as KvKey),
      value: valueToWire(value),
      ...(options.expireIn === undefined ? {} : { expireIn: options.expireIn }),
    }, "write") as CommitResponse;
    return { ok: true, versionstamp: reply.versionstamp };
  }

  /** Deletes `key` (absent keys too). */
  async delete(key: KvKey): Promise<void> {
    await this.#transport.request("POST", ROUTES.kvDelete, {
      key: keyToWire(key),
    }, "write");
  }

  /** Lists entries by prefix or range, as `Deno.Kv.list`. */
  list<T = unknown>(
    selector: KvListSelector,
    options: KvListOptions = {},
  ): KvListIterator<T> {
    return new KvListIterator<T>(this.#transport, selector, options);
  }

  /** Starts an atomic operation. */
  atomic(): AtomicOperation {
    return new AtomicOperation(this.#transport);
  }

  /**
   * Enqueues `value` for `listenQueue` handlers, as `Deno.Kv.enqueue`:
   * delivered at least once after `delay`, retried after each step of
   * `backoffSchedule` while the handler throws, then written to every key
   * of `keysIfUndelivered`.
   *
   * @example
   * ```ts ignore
   * await client.kv.enqueue({ to: "a@example.com" }, {
   *   delay: 1000,
   *   keysIfUndelivered: [["failed_mail"]],
   *   backoffSchedule: [100, 1000],
   * });
   * ```
   */
  enqueue(
    value: unknown,
    options: KvEnqueueOptions = {},
  ): Promise<KvCommitResult> {
    return this.atomic().enqueue(value, options).commitOrThrow();
  }

  /**
   * Delivers queued messages to `handler` until the client closes (then the
   * promise resolves), as `Deno.Kv.listenQueue`: the message is acked when
   * the handler resolves and retried with backoff when it throws. A handler
   * still running when its lease ends (a crashed consumer) is delivered
   * again elsewhere: at least once.
   */
  listenQueue(
    // deno-lint-ignore no-explicit-any
    handler: (value: any) => Promise<void> | void,
    options: KvListenQueueOptions = {},
  ): Promise<void> {
    return listenLoop(
      this.#transport,
      handler,
      options,
      this.#transport.timeoutMs,
    );
  }

  /**
   * The entries of up to 10 keys, now and after every change, as
   * `Deno.Kv.watch`. Cancel the stream (or close the client) to stop.
   */
  watch<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: KvKey }],
    options: KvWatchOptions = {},
  ): ReadableStream<{ [K in keyof T]: KvEntryMaybe<T[K]> }> {
    return watchStream<T>(
      this.#transport,
      keys as readonly KvKey[],
      options.raw ?? false,
      (wire) => entryFromWire(wire),
    );
  }

  /**
   * Closes the connection, as `Deno.Kv.close`: in-flight requests abort,
   * `listenQueue` resolves, watch streams end. Same as closing the client.
   */
  close(): void {
    this.#transport.close();
  }

  /** Same as {@linkcode AspenKv.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** A queue's length, leased count and concurrency limit (an Aspen extension). */
  queueInfo(queue?: string): Promise<KvQueueInfo> {
    return queueInfo(this.#transport, queue);
  }

  /** Waiting messages of a queue, soonest first, without leasing them (an Aspen extension). */
  peekQueue<T = unknown>(
    options: { queue?: string; limit?: number } = {},
  ): Promise<KvQueueMessage<T>[]> {
    return peekQueue<T>(this.#transport, options.queue, options.limit);
  }

  /** Sets how many messages of a queue may be leased at once; null for no limit (an Aspen extension). */
  async configureQueue(
    options: { queue?: string; concurrencyMax: number | null },
  ): Promise<void> {
    await this.#transport.request("POST", ROUTES.queueConfigure, {
      ...(options.queue === undefined ? {} : { queue: options.queue }),
      concurrencyMax: options.concurrencyMax,
    }, "write");
  }
}
