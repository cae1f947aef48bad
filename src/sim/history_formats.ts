/**
 * Parsers of recorded histories into {@linkcode Operation}s: Jepsen's etcd
 * register logs and Porcupine's key-value logs. The logical time of an event
 * is its line number.
 *
 * @module
 */
import type {
  KvInput,
  KvOutput,
  Operation,
  RegisterInput,
  RegisterOutput,
} from "./lincheck.ts";

/** Thrown for a history file that does not follow its format. */
export class HistoryFormatError extends Error {
  override name = "HistoryFormatError";
  /** 1-based line number of the offending line. */
  readonly line: number;

  constructor(detail: string, line: number, options?: ErrorOptions) {
    super(`Cannot parse line ${line}: ${detail}`, options);
    this.line = line;
  }
}

/** The formats this module reads. */
export type HistoryFormat = "jepsen-etcd" | "porcupine-kv";

/**
 * Guesses the format from the first non-blank line: `INFO  jepsen.util` lines
 * are Jepsen, `{:process …}` maps are Porcupine. An empty history is read as
 * Jepsen (a register history with no operations).
 *
 * @returns The format, or undefined when the first line fits neither.
 */
export function detectHistoryFormat(text: string): HistoryFormat | undefined {
  const first = text.split("\n").find((line) => line.trim() !== "");
  if (first === undefined || first.trimStart().startsWith("INFO")) {
    return "jepsen-etcd";
  }
  if (first.trimStart().startsWith("{")) return "porcupine-kv";
  return undefined;
}

/** An invocation awaiting its completion, per process. */
interface Pending<I> {
  readonly input: I;
  readonly call: number;
  readonly line: number;
  readonly f: string;
}

const jepsenLine =
  /^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(\S+(?:\s+\S+)?)\s*$/;

/**
 * Parses a Jepsen etcd log (`INFO  jepsen.util - P  :TYPE  :F  VALUE`).
 *
 * A `:fail :cas` is an observation, not an operation that did not happen: the
 * register differed from the cas's `from` at its linearization point, so it is
 * kept with output `{ok: false}` (as Porcupine reads these logs). Other
 * `:fail` operations did not happen and are dropped (`:fail :read :timed-out`
 * is an unknown read, dropped as a read has no effect); `:info` writes and cas
 * (and invocations never completed) are unknown.
 *
 * @throws {HistoryFormatError} For a line that does not parse or does not
 * match the process's pending invocation.
 */
export function parseJepsenEtcdLog(
  text: string,
): Operation<RegisterInput, RegisterOutput>[] {
  const ops: Operation<RegisterInput, RegisterOutput>[] = [];
  const pending = new Map<number, Pending<RegisterInput>>();
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === "") return;
    const match = jepsenLine.exec(raw);
    if (match === null) {
      throw new HistoryFormatError(
        `expected a Jepsen line 'INFO  jepsen.util - PROCESS  :TYPE  :F  VALUE', got ${
          JSON.stringify(raw.slice(0, 80))
        }`,
        line,
      );
    }
    const [, processText, type, f, valueText] = match as unknown as [
      string,
      string,
      string,
      string,
      string,
    ];
    const process = Number(processText);
    if (type === "invoke") {
      expectIdle(pending, process, line);
      pending.set(process, {
        input: parseRegisterInput(f, valueText, line),
        call: line,
        line,
        f,
      });
      return;
    }
    const invocation = takePending(pending, process, f, type, line);
    const failedCompare = type === "fail" && f === "cas";
    if (type === "fail" && !failedCompare) return;
    if (type === "info" && f === "read") return;
    if (type === "info") {
      ops.push(unknownOperation(process, invocation));
      return;
    }
    const output: RegisterOutput = f === "read"
      ? { value: parseRegisterValue(valueText, line) }
      : { ok: !failedCompare };
    ops.push({
      clientId: process,
      input: invocation.input,
      output,
      call: invocation.call,
      return: line,
    });
  });
  for (const [process, invocation] of pending) {
    if (invocation.f !== "read") {
      ops.push(unknownOperation(process, invocation));
    }
  }
  return ops;
}

function parseRegisterInput(
  f: string,
  valueText: string,
  line: number,
): RegisterInput {
  if (f === "read") return { op: "read" };
  if (f === "write") {
    const value = parseRegisterValue(valueText, line);
    if (value === null) {
      throw new HistoryFormatError(
        "expected an integer to write, got nil",
        line,
      );
    }
    return { op: "write", value };
  }
  const pair = /^\[(-?\d+)\s+(-?\d+)\]$/.exec(valueText);
  if (pair === null) {
    throw new HistoryFormatError(
      `expected cas arguments '[FROM TO]', got ${JSON.stringify(valueText)}`,
      line,
    );
  }
  return { op: "cas", from: Number(pair[1]), to: Number(pair[2]) };
}

function parseRegisterValue(valueText: string, line: number): number | null {
  if (valueText === "nil") return null;
  if (!/^-?\d+$/.test(valueText)) {
    throw new HistoryFormatError(
      `expected a register value 'nil' or an integer, got ${
        JSON.stringify(valueText)
      }`,
      line,
    );
  }
  return Number(valueText);
}

const kvField = /^\s*:([a-z-]+)\s+("(?:[^"\\]|\\.)*"|nil|-?\d+|:[a-z-]+)\s*$/;

/**
 * Parses a Porcupine key-value log: one `{:process P, :type :invoke|:ok|:fail
 * |:info, :f :get|:put|:append, :key "K", :value V}` map per line.
 *
 * Porcupine's store reads a missing key as "", where kvModel reads null; so a
 * get returning "" becomes a get of an absent key, and a put of "" becomes a
 * delete. Both stores then agree on every history.
 *
 * @throws {HistoryFormatError} For a line that does not parse or does not
 * match the process's pending invocation.
 */
export function parsePorcupineKvLog(
  text: string,
): Operation<KvInput, KvOutput>[] {
  const ops: Operation<KvInput, KvOutput>[] = [];
  const pending = new Map<number, Pending<KvInput>>();
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === "") return;
    const fields = parseKvMap(raw, line);
    const process = Number(requireField(fields, "process", /^-?\d+$/, line));
    const type = requireField(fields, "type", /^:(invoke|ok|fail|info)$/, line)
      .slice(1);
    const f = requireField(fields, "f", /^:(get|put|append)$/, line).slice(1);
    const key = parseKvString(requireField(fields, "key", /^"/, line), line);
    const valueText = requireField(fields, "value", /^("|nil$)/, line);
    const value = valueText === "nil" ? null : parseKvString(valueText, line);
    if (type === "invoke") {
      expectIdle(pending, process, line);
      pending.set(process, {
        input: kvInput(f, key, value, line),
        call: line,
        line,
        f,
      });
      return;
    }
    const invocation = takePending(pending, process, f, type, line);
    if (type === "fail" || (type === "info" && f === "get")) return;
    if (type === "info") {
      ops.push(unknownOperation(process, invocation));
      return;
    }
    const output: KvOutput = f === "get"
      ? { value: value === "" ? null : value }
      : { ok: true };
    ops.push({
      clientId: process,
      input: invocation.input,
      output,
      call: invocation.call,
      return: line,
    });
  });
  for (const [process, invocation] of pending) {
    if (invocation.f !== "get") ops.push(unknownOperation(process, invocation));
  }
  return ops;
}

function parseKvMap(raw: string, line: number): Map<string, string> {
  const body = /^\s*\{(.*)\}\s*$/.exec(raw)?.[1];
  if (body === undefined) {
    throw new HistoryFormatError(
      `expected a key-value map '{:process P, ...}', got ${
        JSON.stringify(raw.slice(0, 80))
      }`,
      line,
    );
  }
  const fields = new Map<string, string>();
  // Split on commas outside strings.
  for (const part of body.match(/(?:"(?:[^"\\]|\\.)*"|[^,"])+/g) ?? []) {
    const field = kvField.exec(part);
    if (field === null) {
      throw new HistoryFormatError(
        `expected a field ':name value', got ${JSON.stringify(part.trim())}`,
        line,
      );
    }
    fields.set(field[1]!, field[2]!);
  }
  return fields;
}

function requireField(
  fields: Map<string, string>,
  name: string,
  shape: RegExp,
  line: number,
): string {
  const value = fields.get(name);
  if (value === undefined || !shape.test(value)) {
    throw new HistoryFormatError(
      `expected field ':${name}' to match ${shape}, got ${
        JSON.stringify(value ?? null)
      }`,
      line,
    );
  }
  return value;
}

function parseKvString(quoted: string, line: number): string {
  try {
    return JSON.parse(quoted) as string;
  } catch (cause) {
    throw new HistoryFormatError(
      `expected a string literal, got ${quoted}`,
      line,
      {
        cause,
      },
    );
  }
}

function kvInput(
  f: string,
  key: string,
  value: string | null,
  line: number,
): KvInput {
  if (f === "get") return { op: "get", key };
  if (value === null) {
    throw new HistoryFormatError(
      `expected a string to ${f}, got nil`,
      line,
    );
  }
  if (f === "put" && value === "") return { op: "delete", key };
  return f === "put" ? { op: "put", key, value } : { op: "append", key, value };
}

function expectIdle<I>(
  pending: Map<number, Pending<I>>,
  process: number,
  line: number,
): void {
  const previous = pending.get(process);
  if (previous !== undefined) {
    throw new HistoryFormatError(
      `process ${process} invokes while its invocation at line ${previous.line} has not completed`,
      line,
    );
  }
}

function takePending<I>(
  pending: Map<number, Pending<I>>,
  process: number,
  f: string,
  type: string,
  line: number,
): Pending<I> {
  const invocation = pending.get(process);
  if (invocation === undefined || invocation.f !== f) {
    throw new HistoryFormatError(
      `':${type} :${f}' on process ${process} completes nothing: expected a pending ':${f}' invocation, found ${
        invocation === undefined ? "none" : `':${invocation.f}'`
      }`,
      line,
    );
  }
  pending.delete(process);
  return invocation;
}

function unknownOperation<I, O>(
  process: number,
  invocation: Pending<I>,
): Operation<I, O> {
  return {
    clientId: process,
    input: invocation.input,
    output: undefined,
    call: invocation.call,
    return: Infinity,
  };
}
