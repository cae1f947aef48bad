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
    throw new UsageError(
      "No cluster given: pass --url URL (or ASPEN_URL) or --ticket TICKET",
    );
  }
  return connect(target, {
    token: tokenOf(options, scope),
    timeoutMs: options.timeout,
  });
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
  if (error instanceof TypeError || error instanceof RangeError) {
    return { code: EXIT.usage, message };
  }
  return { code: EXIT.failed, message };
}
