/**
 * The service registry: every service the state host can apply commands of,
 * with its envelope id, its command codec and apply function, its keyspace
 * (the key ranges its apply may write; the host enforces it) and its
 * snapshot section (its keyspaces plus the metadata names it owns: the
 * store's snapshot carries them all). The one table of registrations is
 * `src/services/table.ts`.
 *
 * Reserved keyspaces all start with `ff` (no Deno KV key does; user KV
 * reads and writes never reach them). The host itself owns `ff 73` (the
 * session table, {@linkcode HOST_SESSIONS_KEYSPACE}).
 *
 * @module
 */
import { assert, AssertionError } from "../base/assert.ts";
import { compareBytes } from "../base/bytes.ts";
import type { LogIndex } from "../raft/types.ts";
import type { ApplyContext } from "./write_context.ts";
import type { ChangeEvent } from "./changes.ts";
import type { KvRow } from "../model/types.ts";

/** Keys in `[start, end)`. */
export interface KeyRange {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  /** Whether writes here are reported as change events (true for user KV rows). */
  readonly changes?: boolean;
}

/** Why the host refuses a session's command without applying it. */
export type SessionRefusal = "sessionReused" | "sessionExpired";

/**
 * One service as the host sees it. `C` is its decoded command, `R` its
 * structured result (MessagePack-representable: plain objects, arrays,
 * strings, numbers, booleans, null, bytes; that is the result codec, used
 * for the session table and forwarded proposals).
 */
// deno-lint-ignore no-explicit-any
export interface ServiceDefinition<C = any, R = any> {
  /** Its name in change events and errors (`kv`, `queues`, …). */
  readonly name: string;
  /** Key ranges its apply writes (its snapshot section). */
  readonly keyspaces: readonly KeyRange[];
  /** Other services whose keyspaces (and metadata) its apply writes through their `api.ts`. */
  readonly reaches?: readonly string[];
  /** Metadata names (prefixes) it owns in the store and its snapshots. */
  readonly meta?: readonly string[];
  /**
   * Decodes and validates a payload.
   *
   * @throws A typed error that {@linkcode failure} maps to a result.
   */
  decode(payload: Uint8Array): C;
  /** Applies a command; deterministic: sees only the command and the state. */
  apply(command: C, context: ApplyContext): R;
  /**
   * The result of a command that failed to decode or apply (identical on
   * every replica); rethrows what is not a typed failure (a bug).
   */
  failure(error: unknown, index: LogIndex): R;
  /** What a session's digest covers (null or absent: SHA-256 of the payload). */
  sessionDigest?(command: C): Uint8Array | null;
  /** The result of a session command the host refuses. */
  sessionRefusal?(reason: SessionRefusal, message: string, index: LogIndex): R;
  /** A service-specific earlier result answering this command, if any (KV's stock resends). */
  replay?(command: C, context: ApplyContext): R | null;
  /** Called after a snapshot replaced the state (local effects only). */
  installed?(): void;
  /**
   * Sees every entry's changes (of keyspaces marked `changes`), with the
   * rows before them, inside that entry's transaction: what it stages in
   * `context` (only in its own keyspaces, checked) commits with the entry.
   * Called for every applied entry, also blank and configuration ones
   * (`conf` carries a configuration entry's data). Deterministic.
   */
  observe?(
    changes: readonly ObservedChange[],
    context: ApplyContext,
    conf?: Uint8Array,
  ): void;
}

/** A change as {@linkcode ServiceDefinition.observe} sees it. */
export interface ObservedChange {
  readonly change: ChangeEvent;
  /** The row before the change (null: absent). */
  readonly before: KvRow | null;
}

/** A registration: the envelope id a service's entries carry. */
export interface ServiceRegistration {
  /** 1..255, unique, never reused for another service. */
  readonly id: number;
  readonly service: ServiceDefinition;
}

/** The host's own keyspace: the exactly-once session table. */
export const HOST_SESSIONS_KEYSPACE: KeyRange = {
  start: new Uint8Array([0xff, 0x73]),
  end: new Uint8Array([0xff, 0x74]),
};

/** One reserved or owned range, for documentation and backup validation. */
export interface KeyspaceOwner {
  readonly owner: string;
  readonly range: KeyRange;
}

function inRange(range: KeyRange, key: Uint8Array): boolean {
  return compareBytes(key, range.start) >= 0 &&
    compareBytes(key, range.end) < 0;
}

function overlaps(a: KeyRange, b: KeyRange): boolean {
  return compareBytes(a.start, b.end) < 0 && compareBytes(b.start, a.end) < 0;
}

/** The registered services, by id and by name, and their keyspaces. */
export class ServiceRegistry {
  readonly #byId = new Map<number, ServiceDefinition>();
  readonly #idOf = new Map<string, number>();
  readonly #byName = new Map<string, ServiceDefinition>();
  readonly #owners: KeyspaceOwner[] = [
    { owner: "sessions", range: HOST_SESSIONS_KEYSPACE },
  ];
  /** Ranges each service may write: its own plus those of the services it reaches. */
  readonly #writable = new Map<string, KeyRange[]>();
  /** Metadata prefixes each service may set: its own plus those of the services it reaches. */
  readonly #metaWritable = new Map<string, string[]>();

  /**
   * @throws {RangeError} For a duplicate id or name, an id outside 1..255,
   *   overlapping keyspaces or a reach to an unknown service.
   */
  constructor(registrations: readonly ServiceRegistration[]) {
    for (const { id, service } of registrations) {
      if (!Number.isInteger(id) || id < 1 || id > 255) {
        throw new RangeError(
          `Cannot register service '${service.name}': id must be 1 to 255: received ${id}`,
        );
      }
      if (this.#byId.has(id) || this.#byName.has(service.name)) {
        throw new RangeError(
          `Cannot register service '${service.name}' (id ${id}): id or name already registered`,
        );
      }
      for (const range of service.keyspaces) {
        const clash = this.#owners.find((o) => overlaps(o.range, range));
        if (clash !== undefined) {
          throw new RangeError(
            `Cannot register service '${service.name}': its keyspace overlaps that of '${clash.owner}'`,
          );
        }
        this.#owners.push({ owner: service.name, range });
      }
      this.#byId.set(id, service);
      this.#idOf.set(service.name, id);
      this.#byName.set(service.name, service);
    }
    for (const service of this.#byName.values()) {
      const ranges = [...service.keyspaces];
      const meta = [...service.meta ?? []];
      for (const name of service.reaches ?? []) {
        const other = this.#byName.get(name);
        if (other === undefined) {
          throw new RangeError(
            `Cannot register service '${service.name}': it reaches unknown service '${name}'`,
          );
        }
        ranges.push(...other.keyspaces);
        meta.push(...other.meta ?? []);
      }
      this.#writable.set(service.name, ranges);
      this.#metaWritable.set(service.name, meta);
    }
  }

  /** The service of envelope id `id`, or undefined. */
  byId(id: number): ServiceDefinition | undefined {
    return this.#byId.get(id);
  }

  /** The envelope id of service `name`. @throws {RangeError} When it is not registered. */
  idOf(name: string): number {
    const id = this.#idOf.get(name);
    if (id === undefined) {
      throw new RangeError(`Unknown service '${name}'`);
    }
    return id;
  }

  /** Every registered service, in registration order. */
  services(): ServiceDefinition[] {
    return [...this.#byName.values()];
  }

  /** Every owned range (the host's session table first). */
  keyspaces(): readonly KeyspaceOwner[] {
    return this.#owners;
  }

  /** The owner of `key`, or null when no range holds it. */
  ownerOf(key: Uint8Array): KeyspaceOwner | null {
    for (const owner of this.#owners) {
      if (inRange(owner.range, key)) return owner;
    }
    return null;
  }

  /**
   * Checks that `service` may write `key`.
   *
   * @throws {AssertionError} When the key lies outside every range it may write.
   */
  checkWrite(service: ServiceDefinition, key: Uint8Array): void {
    this.checkWrites(service, [{ key }]);
  }

  /**
   * Checks that `service` may write the key of every one of `staged`.
   *
   * @throws {AssertionError} Naming the first key outside every range it may write.
   */
  checkWrites(
    service: ServiceDefinition,
    staged: Iterable<{ readonly key: Uint8Array }>,
  ): void {
    const ranges = this.#writable.get(service.name) ?? [];
    outer: for (const { key } of staged) {
      for (const range of ranges) if (inRange(range, key)) continue outer;
      this.#outside(service, key);
    }
  }

  #outside(service: ServiceDefinition, key: Uint8Array): never {
    // Built only on failure: this runs for every staged key.
    const hex = Array.from(
      key.subarray(0, 8),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    throw new AssertionError(
      `Service '${service.name}' wrote outside its keyspace: key ${hex}…`,
    );
  }

  /**
   * Checks that `service` may set metadata `name` (its own, or of a
   * service it reaches).
   *
   * @throws {AssertionError} When it may not.
   */
  checkMeta(service: ServiceDefinition, name: string): void {
    const prefixes = this.#metaWritable.get(service.name) ?? service.meta ??
      [];
    assert(
      prefixes.some((prefix) => name.startsWith(prefix)),
      `Service '${service.name}' set metadata '${name}' it does not own`,
    );
  }
}
