/**
 * Reading request bodies into Deno KV operations: every field checked, every
 * unknown field refused, messages naming the field.
 *
 * @module
 */
import { encodeKey, type KvKeyPart } from "../../model/key_codec.ts";
import { validateReadKey } from "../../model/limits.ts";
import type {
  KvCheck,
  KvCoordinationCheck,
  KvEnqueue,
  KvMutation,
  KvSession,
} from "../../model/types.ts";
import { versionstampFromString } from "../../model/versionstamp.ts";
import { HTTP_API_LIMITS } from "../../protocol/http_api.ts";
import type { NodeAddress } from "../../protocol/cluster.ts";
import {
  bytesFromWire,
  describe,
  keyFromWire,
  valueFromWire,
  WireFormatError,
} from "../../protocol/http_api_codec.ts";

type Fields = Record<string, unknown>;

function bad(message: string): WireFormatError {
  return new WireFormatError("badRequest", message);
}

/** Checks that `body` is an object holding only `allowed` fields. */
export function fields(body: unknown, allowed: readonly string[]): Fields {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw bad(`Invalid body: expected an object, received ${describe(body)}`);
  }
  for (const name of Object.keys(body)) {
    if (!allowed.includes(name)) {
      throw bad(
        `Invalid body: unknown field '${name}' (expected ${
          allowed.map((a) => `'${a}'`).join(", ")
        })`,
      );
    }
  }
  return body as Fields;
}

/**
 * The optional `session` of a write (exactly-once retries): a client id of 1
 * to 64 characters and a non-negative integer sequence number.
 */
export function parseSession(body: unknown): KvSession | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const session = (body as Fields).session;
  if (session === undefined) return undefined;
  const { clientId, seq } = fields(session, ["clientId", "seq"]);
  if (
    typeof clientId !== "string" || clientId.length === 0 ||
    clientId.length > 64
  ) {
    throw bad(
      `Invalid 'session.clientId': expected 1 to 64 characters, received ${
        describe(clientId)
      }`,
    );
  }
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
    throw bad(
      `Invalid 'session.seq': expected a non-negative integer, received ${
        describe(seq)
      }`,
    );
  }
  return { clientId, seq };
}

/** Encodes a wire key to Deno KV bytes. */
export function keyBytes(wire: unknown, field: string): Uint8Array {
  const key: KvKeyPart[] = keyFromWire(wire, field);
  try {
    return encodeKey(key);
  } catch (error) {
    throw new WireFormatError(
      "invalidKey",
      `Invalid '${field}': ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** A non-empty key, as gets and writes need. */
export function requiredKeyBytes(wire: unknown, field: string): Uint8Array {
  if (wire === undefined) throw bad(`Invalid body: missing '${field}'`);
  const bytes = keyBytes(wire, field);
  if (bytes.length === 0) {
    throw new WireFormatError(
      "invalidKey",
      `Invalid '${field}': key cannot be empty`,
    );
  }
  return bytes;
}

/** An integer field within `[min, max]`, or undefined when absent. */
export function optionalInteger(
  value: unknown,
  field: string,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < min ||
    value > max
  ) {
    throw bad(
      `Invalid '${field}': expected an integer from ${min} to ${max}, received ${
        describe(value)
      }`,
    );
  }
  return value;
}

function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw bad(
    `Invalid '${field}': expected a boolean, received ${describe(value)}`,
  );
}

function requiredString(value: unknown, field: string): string {
  if (typeof value === "string" && value.length > 0 && value.length <= 1024) {
    return value;
  }
  throw bad(
    `Invalid '${field}': expected a non-empty string, received ${
      describe(value)
    }`,
  );
}

/** Absolute deadline of an `expireIn`, from the proposer's clock. */
function expireAt(value: unknown, field: string, nowMs: number): number | null {
  const expireIn = optionalInteger(
    value,
    field,
    0,
    Number.MAX_SAFE_INTEGER - nowMs,
  );
  return expireIn === undefined ? null : nowMs + expireIn;
}

/** `GetRequest` → key bytes. */
export function parseGet(body: unknown): Uint8Array {
  return requiredKeyBytes(fields(body, ["key"]).key, "key");
}

/** `GetManyRequest` → key bytes, at most 10. */
export function parseGetMany(body: unknown): Uint8Array[] {
  const { keys } = fields(body, ["keys"]);
  if (!Array.isArray(keys)) {
    throw bad(
      `Invalid 'keys': expected a list of keys, received ${describe(keys)}`,
    );
  }
  if (keys.length > HTTP_API_LIMITS.getManyKeysMax) {
    throw new WireFormatError(
      "badRequest",
      // Deno's own wording: a getMany is one range per key.
      `Too many ranges (max ${HTTP_API_LIMITS.getManyKeysMax})`,
    );
  }
  return keys.map((key: unknown, i: number) =>
    requiredKeyBytes(key, `keys[${i}]`)
  );
}

const LEASE_ID = /^[0-9a-f]{16}$/;

function leaseOf(value: unknown, field: string): string {
  if (typeof value !== "string" || !LEASE_ID.test(value)) {
    throw new WireFormatError(
      "invalid",
      `Invalid '${field}': expected 16 lowercase hex digits, received ${
        describe(value)
      }`,
    );
  }
  return value;
}

function setMutation(body: Fields, field: string, nowMs: number): KvMutation {
  const value = body.value;
  if (value === undefined) throw bad(`Invalid body: missing '${field}value'`);
  const mutation = {
    type: "set" as const,
    key: requiredKeyBytes(body.key, `${field}key`),
    value: valueFromWire(value, `${field}value`),
    expireAtMs: expireAt(body.expireIn, `${field}expireIn`, nowMs),
  };
  return body.lease === undefined
    ? mutation
    : { ...mutation, lease: leaseOf(body.lease, `${field}lease`) };
}

/** `SetRequest` → one set mutation. */
export function parseSet(body: unknown, nowMs: number): KvMutation {
  return setMutation(
    fields(body, ["key", "value", "expireIn", "lease", "session"]),
    "",
    nowMs,
  );
}

/** `DeleteRequest` → one delete mutation. */
export function parseDelete(body: unknown): KvMutation {
  return {
    type: "delete",
    key: requiredKeyBytes(fields(body, ["key", "session"]).key, "key"),
  };
}

/** A list request: selector bytes, limit, direction and cursor. */
export interface ParsedList {
  readonly selector: {
    prefix?: Uint8Array;
    start?: Uint8Array;
    end?: Uint8Array;
  };
  readonly limit: number;
  readonly reverse: boolean;
  readonly cursor: string | undefined;
}

/** `ListRequest` → selector bytes and paging. */
export function parseList(body: unknown): ParsedList {
  const f = fields(body, ["selector", "limit", "reverse", "cursor"]);
  const wire = fields(f.selector ?? {}, ["prefix", "start", "end"]);
  const selector: ParsedList["selector"] = {};
  for (const name of ["prefix", "start", "end"] as const) {
    if (wire[name] !== undefined) {
      selector[name] = keyBytes(wire[name], `selector.${name}`);
    }
  }
  if (f.cursor !== undefined && typeof f.cursor !== "string") {
    throw bad(
      `Invalid 'cursor': expected a string, received ${describe(f.cursor)}`,
    );
  }
  return {
    selector,
    limit: optionalInteger(f.limit, "limit", 1, HTTP_API_LIMITS.listLimitMax) ??
      HTTP_API_LIMITS.listLimitDefault,
    reverse: optionalBoolean(f.reverse, "reverse") ?? false,
    cursor: f.cursor as string | undefined,
  };
}

function parseCoordinationCheck(
  wire: Fields,
  index: number,
): KvCoordinationCheck {
  const field = `checks[${index}]`;
  if (wire.lease !== undefined) {
    const f = fields(wire, ["lease"]);
    return {
      kind: "lease",
      lease: leaseOf(f.lease, `${field}.lease`),
      position: index,
    };
  }
  const fence = fields(fields(wire, ["fence"]).fence, ["name", "token"]);
  if (typeof fence.name !== "string" || fence.name.length === 0) {
    throw new WireFormatError(
      "invalid",
      `Invalid '${field}.fence.name': expected a non-empty string`,
    );
  }
  if (typeof fence.token !== "string" || !/^[0-9a-f]{20}$/.test(fence.token)) {
    throw new WireFormatError(
      "invalid",
      `Invalid '${field}.fence.token': expected 20 lowercase hex digits`,
    );
  }
  return {
    kind: "fence",
    name: fence.name,
    token: fence.token,
    position: index,
  };
}

function isCoordinationCheck(wire: unknown): wire is Fields {
  return typeof wire === "object" && wire !== null &&
    ("lease" in wire || "fence" in wire);
}

function parseCheck(wire: unknown, index: number): KvCheck {
  const field = `checks[${index}]`;
  const f = fields(wire, ["key", "versionstamp"]);
  const { versionstamp } = f;
  if (versionstamp !== null && typeof versionstamp !== "string") {
    throw new WireFormatError(
      "invalid",
      `Invalid '${field}.versionstamp': expected 20 hex characters or null, received ${
        describe(versionstamp)
      }`,
    );
  }
  let stamp = null;
  if (typeof versionstamp === "string") {
    try {
      stamp = versionstampFromString(versionstamp);
    } catch (error) {
      throw new WireFormatError(
        "invalid",
        `Invalid '${field}.versionstamp': ${(error as Error).message}`,
      );
    }
  }
  return { key: requiredKeyBytes(f.key, `${field}.key`), versionstamp: stamp };
}

function parseMutation(
  wire: unknown,
  index: number,
  nowMs: number,
): KvMutation {
  const field = `mutations[${index}].`;
  const type = (wire as Fields | null)?.type;
  switch (type) {
    case "set":
      return setMutation(
        fields(wire, ["type", "key", "value", "expireIn", "lease"]),
        field,
        nowMs,
      );
    case "delete":
      return {
        type,
        key: requiredKeyBytes(fields(wire, ["type", "key"]).key, `${field}key`),
      };
    case "setVersionstamped": {
      // The key is a prefix (possibly empty): the versionstamp is appended.
      const f = fields(wire, ["type", "key", "value", "expireIn"]);
      if (f.value === undefined) {
        throw bad(`Invalid body: missing '${field}value'`);
      }
      return {
        type: "setSuffixVersionstampedKey",
        key: keyBytes(f.key ?? [], `${field}key`),
        value: valueFromWire(f.value, `${field}value`),
        expireAtMs: expireAt(f.expireIn, `${field}expireIn`, nowMs),
      };
    }
    case "sum":
    case "min":
    case "max": {
      const f = fields(wire, ["type", "key", "value"]);
      return {
        type,
        key: requiredKeyBytes(f.key, `${field}key`),
        value: valueFromWire(f.value, `${field}value`),
      };
    }
    default:
      throw bad(
        `Invalid '${field}type': expected 'set', 'setVersionstamped', 'delete', 'sum', 'min' or 'max', received ${
          describe(type)
        }`,
      );
  }
}

function list(value: unknown, field: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw bad(
      `Invalid '${field}': expected a list, received ${describe(value)}`,
    );
  }
  return value;
}

function parseEnqueue(wire: unknown, index: number, nowMs: number): KvEnqueue {
  const field = `enqueues[${index}]`;
  const f = fields(wire, [
    "payload",
    "delay",
    "keysIfUndelivered",
    "backoffSchedule",
    "queue",
  ]);
  if (f.payload === undefined) {
    throw bad(`Invalid body: missing '${field}.payload'`);
  }
  const delay = optionalInteger(
    f.delay,
    `${field}.delay`,
    0,
    Number.MAX_SAFE_INTEGER - nowMs,
  ) ?? 0;
  const schedule = f.backoffSchedule === undefined
    ? null
    : list(f.backoffSchedule, `${field}.backoffSchedule`).map((ms, i) =>
      optionalInteger(
        ms,
        `${field}.backoffSchedule[${i}]`,
        0,
        Number.MAX_SAFE_INTEGER,
      )!
    );
  if (f.queue !== undefined && typeof f.queue !== "string") {
    throw bad(
      `Invalid '${field}.queue': expected a string, received ${
        describe(f.queue)
      }`,
    );
  }
  return {
    payload: bytesFromWire(f.payload, `${field}.payload`),
    deadlineMs: nowMs + delay,
    keysIfUndelivered: list(f.keysIfUndelivered, `${field}.keysIfUndelivered`)
      .map((key, i) =>
        requiredKeyBytes(key, `${field}.keysIfUndelivered[${i}]`)
      ),
    backoffSchedule: schedule,
    ...(f.queue === undefined ? {} : { queue: f.queue as string }),
  };
}

/** `AtomicRequest` → checks, mutations and enqueues (deadlines from the proposer's clock). */
export function parseAtomic(
  body: unknown,
  nowMs: number,
): {
  checks: KvCheck[];
  mutations: KvMutation[];
  enqueues: KvEnqueue[];
  coordinationChecks?: KvCoordinationCheck[];
  checkPositions?: number[];
} {
  const f = fields(body, [
    "checks",
    "mutations",
    "enqueues",
    "session",
    "publishes",
    "acks",
  ]);
  const checks = f.checks ?? [];
  if (!Array.isArray(checks)) {
    throw bad(
      `Invalid 'checks': expected a list, received ${describe(checks)}`,
    );
  }
  if (!Array.isArray(f.mutations)) {
    throw bad(
      `Invalid 'mutations': expected a list, received ${describe(f.mutations)}`,
    );
  }
  const versionstampChecks: KvCheck[] = [];
  const positions: number[] = [];
  const coordinationChecks: KvCoordinationCheck[] = [];
  checks.forEach((wire: unknown, i: number) => {
    if (isCoordinationCheck(wire)) {
      coordinationChecks.push(parseCoordinationCheck(wire, i));
    } else {
      versionstampChecks.push(parseCheck(wire, i));
      positions.push(i);
    }
  });
  return {
    checks: versionstampChecks,
    ...(coordinationChecks.length === 0
      ? {}
      : { coordinationChecks, checkPositions: positions }),
    mutations: f.mutations.map((m: unknown, i: number) =>
      parseMutation(m, i, nowMs)
    ),
    enqueues: list(f.enqueues, "enqueues").map((e, i) =>
      parseEnqueue(e, i, nowMs)
    ),
  };
}

/** `WatchRequest` → 1 to 10 key bytes. */
export function parseWatch(body: unknown): Uint8Array[] {
  const keys = list(fields(body, ["keys"]).keys, "keys");
  if (keys.length > HTTP_API_LIMITS.watchKeysMax) {
    throw new WireFormatError(
      "badRequest",
      `Too many keys (max ${HTTP_API_LIMITS.watchKeysMax})`,
    );
  }
  if (keys.length === 0) {
    throw bad(
      `Invalid 'keys': expected 1 to ${HTTP_API_LIMITS.watchKeysMax} keys, received ${keys.length}`,
    );
  }
  return keys.map((key, i) => {
    const bytes = requiredKeyBytes(key, `keys[${i}]`);
    validateReadKey(bytes);
    return bytes;
  });
}

/** `NodeIdRequest` → node id. */
export function parseNodeId(body: unknown): string {
  return requiredString(fields(body, ["nodeId"]).nodeId, "nodeId");
}

/** `AddLearnerRequest` → node address. */
export function parseAddLearner(body: unknown): NodeAddress {
  const f = fields(body, [
    "nodeId",
    "httpUrl",
    "quicHost",
    "quicPort",
    "nodeKey",
    "certificateHash",
  ]);
  return {
    nodeId: requiredString(f.nodeId, "nodeId"),
    httpUrl: requiredString(f.httpUrl, "httpUrl"),
    quicHost: requiredString(f.quicHost, "quicHost"),
    quicPort: optionalInteger(f.quicPort, "quicPort", 1, 65535) ??
      (() => {
        throw bad("Invalid body: missing 'quicPort'");
      })(),
    nodeKey: requiredString(f.nodeKey, "nodeKey"),
    certificateHash: requiredString(f.certificateHash, "certificateHash"),
  };
}

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

function base64UrlString(value: unknown, field: string): string {
  const text = requiredString(value, field);
  if (!BASE64URL.test(text)) {
    throw bad(`Invalid '${field}': expected base64url text`);
  }
  return text;
}

/** `JoinRequest` (`POST /v1/cluster/join`) → the join token and the node's address. */
export function parseJoin(
  body: unknown,
): { token: string; address: NodeAddress } {
  const f = fields(body, ["token", "address"]);
  const token = base64UrlString(f.token, "token");
  if (f.address === undefined) throw bad("Invalid body: missing 'address'");
  const address = parseAddLearner(f.address);
  base64UrlString(address.nodeKey, "address.nodeKey");
  base64UrlString(address.certificateHash, "address.certificateHash");
  return { token, address };
}
