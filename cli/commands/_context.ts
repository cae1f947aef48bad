/**
 * What every CLI command shares: the client built from the global options,
 * output (tables for people, JSON for scripts), exit codes, and the one
 * readable error line.
 *
 * @module
 */
import {
  type AspenClient,
  AspenError,
  AuthError,
  CheckFailedError,
  connect,
  InvalidRequestError,
  KvU64,
  LimitExceededError,
  MembershipError,
  NotLeaderError,
  TimeoutError,
  TypeMismatchError,
  UnavailableError,
} from "../../mod.ts";
import type { KvKey } from "../../mod.ts";
import { errorFromWire } from "../../src/client/errors.ts";
import {
  matchNodeId,
  NODE_ID_PREFIX_MIN,
  nodeIdMatchMessage,
} from "../../src/protocol/node_id.ts";
import { ticketClusterId, ticketUrls } from "../../src/client/_ticket.ts";
import { CLUSTER_ID_HEADER } from "../../src/client/_transport.ts";
import {
  keyFromWire,
  keyToWire,
  toBase64,
  WireFormatError,
} from "../../src/protocol/http_api_codec.ts";

/** Exit codes of `aspen`. */
export const EXIT = {
  ok: 0,
  /** The operation was refused: a check failed, a type mismatch, a membership rule. */
  failed: 1,
  /** Bad usage or input: unknown option, malformed key or value, limit exceeded. */
  usage: 2,
  /** No node answered, or a write's outcome is unknown. */
  unavailable: 3,
  /** Missing or wrong token. */
  auth: 4,
} as const;

/** A usage error raised by a command (exit 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The global options. */
export interface GlobalOptions {
  readonly url?: string;
  readonly ticket?: string;
  readonly token?: string;
  /** Admin-scope token (membership, backups, join tickets); falls back to `token`. */
  readonly adminToken?: string;
  readonly json?: boolean;
  readonly timeout?: number;
}

const NO_CLUSTER =
  "No cluster given: pass --url URL (or ASPEN_URL) or --ticket TICKET";

/** Default deadline of one request made outside the client (backup, join ticket). */
const FETCH_TIMEOUT_MS = 120_000;

/** The token of a scope: admin calls send `adminToken` when given. */
export function tokenOf(
  options: GlobalOptions,
  scope: "data" | "admin" = "data",
): string | undefined {
  return scope === "admin"
    ? options.adminToken ?? options.token
    : options.token;
}

/** The client the global options name (admin commands pass `"admin"`). */
export function clientOf(
  options: GlobalOptions,
  scope: "data" | "admin" = "data",
): AspenClient {
  const target = options.ticket ??
    options.url?.split(",").map((u) => u.trim()).filter((u) => u !== "");
  if (target === undefined || target.length === 0) {
    throw new UsageError(NO_CLUSTER);
  }
  return connect(target, {
    token: tokenOf(options, scope),
    timeoutMs: options.timeout,
  });
}

/**
 * The node URLs the global options name: `--ticket`'s nodes, else `--url`'s list.
 *
 * @throws {UsageError} When neither is given or the ticket cannot be read.
 */
export function urlsOf(options: GlobalOptions): string[] {
  let urls: string[];
  if (options.ticket !== undefined) {
    try {
      urls = ticketUrls(options.ticket);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  } else {
    urls = options.url?.split(",").map((u) =>
      u.trim()
    ).filter((u) => u !== "") ?? [];
  }
  if (urls.length === 0) throw new UsageError(NO_CLUSTER);
  return urls.map((u) => u.replace(/\/+$/, ""));
}

/**
 * A GET on the first node of the global options that answers (routes the
 * client does not cover: the backup, the join ticket), with the token and
 * the `--timeout` deadline. A refusal becomes the client's typed error, so
 * every command exits through {@linkcode describeFailure}.
 *
 * @throws {UnavailableError} When no node answers.
 * @throws {AuthError} When the token is missing or wrong.
 * @throws {AspenError} The typed error of any other refusal.
 */
export async function nodeGet(
  options: GlobalOptions,
  path: string,
): Promise<{ response: Response; url: string }> {
  const failures: string[] = [];
  const headers: Record<string, string> = {};
  // The routes outside the client (backup, join ticket) are admin routes.
  const token = tokenOf(options, "admin");
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  // A ticket names its cluster: a node of another cluster refuses the call.
  const clusterId = clusterIdOf(options);
  if (clusterId !== undefined) headers[CLUSTER_ID_HEADER] = clusterId;
  for (const url of urlsOf(options)) {
    let response: Response;
    // The deadline covers the answer's start; a body (a backup) then
    // streams for as long as it takes.
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new Error("no answer in time")),
      options.timeout ?? FETCH_TIMEOUT_MS,
    );
    try {
      response = await fetch(url + path, { headers, signal: abort.signal });
    } catch (error) {
      failures.push(`Cannot reach ${url}: ${(error as Error).message}`);
      continue;
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) return { response, url };
    let body: unknown = null;
    try {
      body = await response.json();
    } catch {
      // Not a typed error body: the status alone names the refusal.
    }
    const error = errorFromWire(response.status, body, url);
    if (response.status === 401 && !(error instanceof AuthError)) {
      throw new AuthError("unauthorized", error.message, { status: 401, url });
    }
    if (error instanceof UnavailableError) {
      failures.push(`${url}: ${error.message}`);
      continue;
    }
    throw error;
  }
  throw new UnavailableError("unavailable", failures.join("; "));
}

/** The cluster id the ticket in the global options names, if any. */
function clusterIdOf(options: GlobalOptions): string | undefined {
  if (options.ticket === undefined) return undefined;
  try {
    return ticketClusterId(options.ticket);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export { NODE_ID_PREFIX_MIN };

/**
 * The member id `text` names: the id itself, or a unique prefix of at least
 * {@linkcode NODE_ID_PREFIX_MIN} characters (the short id the logs print).
 *
 * @throws {UsageError} When the prefix is too short or names several members.
 * @throws {MembershipError} When it names no member.
 */
export function resolveNodeId(
  text: string,
  members: readonly string[],
): string {
  const match = matchNodeId(text, members);
  if (match.kind === "found") return match.id;
  const message = nodeIdMatchMessage(text, match, members);
  if (match.kind === "unknown") {
    throw new MembershipError("unknownNode", message);
  }
  throw new UsageError(message);
}

const KEY_PART_TYPES = ["string", "number", "bigint", "boolean", "bytes"];

/** Why a wire key part cannot be read, before the codec's terser message. */
function checkTaggedParts(wire: unknown): void {
  if (!Array.isArray(wire)) return;
  for (const [index, part] of wire.entries()) {
    if (typeof part !== "object" || part === null || Array.isArray(part)) {
      continue;
    }
    const { type } = part as { type?: unknown };
    // A named type the codec reports itself (unknown type 'date', bad value).
    if (typeof type === "string") continue;
    const why = type === undefined
      ? `an object part needs a 'type' (${
        KEY_PART_TYPES.join(", ")
      }) and a 'value'`
      : `its 'type' must be one of ${KEY_PART_TYPES.join(", ")}`;
    throw new UsageError(
      `Invalid key part 'key[${index}]' ${
        JSON.stringify(part)
      }: ${why}, e.g. {"type":"bigint","value":"5"} or {"type":"bytes","value":"aGk="}; plain strings, numbers and booleans need no tag`,
    );
  }
}

/** Reads a key argument: a JSON list in wire form (`'["users", 1]'`), or a bare word as a one-part key. */
export function parseKey(text: string): KvKey {
  if (!text.trimStart().startsWith("[")) return [text];
  let wire: unknown;
  try {
    wire = JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `Invalid key '${text}': not valid JSON: ${(error as Error).message}`,
    );
  }
  checkTaggedParts(wire);
  try {
    return keyFromWire(wire);
  } catch (error) {
    if (error instanceof WireFormatError) throw new UsageError(error.message);
    throw error;
  }
}

/** A key as people read it: its wire JSON. */
export function showKey(key: KvKey): string {
  return JSON.stringify(
    keyToWire(key),
    (_k, v) => v instanceof Uint8Array ? toBase64(v) : v,
  );
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

function toJsonable(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) =>
      typeof v === "bigint"
        ? `${v}n`
        : v instanceof Map
        ? Object.fromEntries(v)
        : v instanceof Set
        ? [...v]
        : v,
  );
}

/** A value as people read it: strings as they are, bytes marked, others as JSON. */
export function showValue(value: unknown): string {
  if (value === null) return "(absent)";
  if (typeof value === "string") return value;
  if (value instanceof KvU64) return `${value.value} (u64)`;
  if (value instanceof Uint8Array) {
    try {
      const text = fatalDecoder.decode(value);
      // deno-lint-ignore no-control-regex
      if (!/[\x00-\x08\x0e-\x1f\x7f]/.test(text)) return `bytes:${text}`;
    } catch {
      // Not UTF-8: shown as base64 below.
    }
    return `base64:${toBase64(value)}`;
  }
  if (typeof value === "bigint") return `${value}n`;
  return toJsonable(value) ?? String(value);
}

/** A value as scripts read it: `{ encoding, … }` as the HTTP API shows it, V8 values decoded. */
export function jsonValue(value: unknown): unknown {
  if (value === null) return null;
  if (value instanceof KvU64) {
    return { encoding: "le64", u64: value.value.toString() };
  }
  if (value instanceof Uint8Array) {
    return { encoding: "bytes", data: toBase64(value) };
  }
  return { encoding: "v8", value: JSON.parse(toJsonable(value) ?? "null") };
}

/** Prints a table with a header row. */
export function printTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): void {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i]!))
      .join("  ");
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

/** Prints JSON for scripts (bigints as strings, bytes as base64). */
export function printJson(value: unknown): void {
  console.log(
    JSON.stringify(
      value,
      (_k, v) =>
        typeof v === "bigint"
          ? v.toString()
          : v instanceof Uint8Array
          ? toBase64(v)
          : v,
      2,
    ),
  );
}

/** The exit code and one-line message of an error. */
export function describeFailure(
  error: unknown,
): { code: number; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof UsageError) return { code: EXIT.usage, message };
  if (error instanceof AuthError) return { code: EXIT.auth, message };
  if (error instanceof TimeoutError || error instanceof UnavailableError) {
    return { code: EXIT.unavailable, message };
  }
  if (
    error instanceof InvalidRequestError || error instanceof LimitExceededError
  ) {
    return { code: EXIT.usage, message };
  }
  if (
    error instanceof CheckFailedError || error instanceof TypeMismatchError ||
    error instanceof MembershipError || error instanceof NotLeaderError ||
    error instanceof AspenError
  ) {
    return { code: EXIT.failed, message };
  }
  if (
    error instanceof DOMException &&
    (error.name === "TimeoutError" || error.name === "AbortError")
  ) {
    return { code: EXIT.unavailable, message: `Timed out: ${message}` };
  }
  if (
    error instanceof TypeError || error instanceof RangeError ||
    error instanceof Deno.errors.NotFound
  ) {
    return { code: EXIT.usage, message };
  }
  return { code: EXIT.failed, message };
}
