/**
 * Sequential models for {@linkcode checkOperations}: a single register (as in
 * Jepsen's etcd tests) and a key-value map partitioned by key.
 *
 * @module
 */
import type { Model, Operation } from "./lincheck.ts";

/** Operations on one register. */
export type RegisterInput =
  | { op: "read" }
  | { op: "write"; value: number }
  | { op: "cas"; from: number; to: number };

/** read → {value} (null = nil); write → {ok: true}; cas → {ok}. */
export type RegisterOutput = { value: number | null } | { ok: boolean };

/**
 * A register that starts nil. An unknown output is accepted: a cas then takes
 * effect only when it compares equal. A write answered `{ok: false}` had no
 * effect.
 */
export const registerModel: Model<
  number | null,
  RegisterInput,
  RegisterOutput
> = {
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case "read":
        if (output === undefined) return state;
        return "value" in output && output.value === state ? state : undefined;
      case "write":
        if (output === undefined) return input.value;
        if (!("ok" in output)) return undefined;
        return output.ok ? input.value : state;
      case "cas": {
        const equal = state === input.from;
        if (output === undefined) return equal ? input.to : state;
        if (!("ok" in output) || output.ok !== equal) return undefined;
        return equal ? input.to : state;
      }
    }
  },
  key: (state) => (state === null ? "nil" : String(state)),
  describe(input, output) {
    const call = input.op === "read"
      ? "read()"
      : input.op === "write"
      ? `write(${input.value})`
      : `cas(${input.from}, ${input.to})`;
    return `${call} -> ${
      describeOutput(output, (value) => value === null ? "nil" : String(value))
    }`;
  },
};

/** Operations on a key-value map. */
export type KvInput =
  | { op: "get"; key: string }
  | { op: "put"; key: string; value: string }
  | { op: "append"; key: string; value: string }
  /** expected null = key must be absent */
  | { op: "cas"; key: string; expected: string | null; value: string }
  | { op: "delete"; key: string };

/** get → {value} (null = absent); put/append/delete → {ok: true}; cas → {ok}. */
export type KvOutput = { value: string | null } | { ok: boolean };

/** Present keys and their values; an absent key is not in the map. */
export type KvState = ReadonlyMap<string, string>;

/**
 * A key-value map that starts empty and is partitioned by key. A missing key
 * reads as null; appending to it appends to "". A cas answered `{ok: false}`
 * means the compare failed and nothing changed. A put, append or delete
 * answered `{ok: false}` had no effect.
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => new Map(),
  step(state, input, output) {
    const current = state.get(input.key) ?? null;
    switch (input.op) {
      case "get":
        if (output === undefined) return state;
        return "value" in output && output.value === current
          ? state
          : undefined;
      case "put":
        return mutate(state, output, input.key, input.value);
      case "append":
        return mutate(state, output, input.key, (current ?? "") + input.value);
      case "delete":
        return mutate(state, output, input.key, null);
      case "cas": {
        const equal = current === input.expected;
        if (
          output !== undefined && (!("ok" in output) || output.ok !== equal)
        ) {
          return undefined;
        }
        return equal ? withValue(state, input.key, input.value) : state;
      }
    }
  },
  key(state) {
    if (state.size === 0) return "";
    if (state.size === 1) {
      // The common case under partitioning: skip the sort.
      return JSON.stringify(state.entries().next().value);
    }
    return JSON.stringify(
      [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
  },
  partition(ops) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of ops) {
      let group = byKey.get(op.input.key);
      if (group === undefined) {
        group = [];
        byKey.set(op.input.key, group);
      }
      group.push(op);
    }
    return [...byKey.values()];
  },
  describe(input, output) {
    const key = JSON.stringify(input.key);
    const call = input.op === "get" || input.op === "delete"
      ? `${input.op}(${key})`
      : input.op === "cas"
      ? `cas(${key}, ${JSON.stringify(input.expected)}, ${
        JSON.stringify(input.value)
      })`
      : `${input.op}(${key}, ${JSON.stringify(input.value)})`;
    return `${call} -> ${
      describeOutput(output, (value) => JSON.stringify(value))
    }`;
  },
};

/** A put, append or delete: `{ok: false}` or a value output are no effect / illegal. */
function mutate(
  state: KvState,
  output: KvOutput | undefined,
  key: string,
  value: string | null,
): KvState | undefined {
  if (output === undefined) return withValue(state, key, value);
  if (!("ok" in output)) return undefined;
  return output.ok ? withValue(state, key, value) : state;
}

function withValue(state: KvState, key: string, value: string | null): KvState {
  const next = new Map(state);
  if (value === null) next.delete(key);
  else next.set(key, value);
  return next;
}

function describeOutput<V>(
  output: { value: V } | { ok: boolean } | undefined,
  describeValue: (value: V) => string,
): string {
  if (output === undefined) return "unknown";
  if ("ok" in output) return output.ok ? "ok" : "fail";
  return describeValue(output.value);
}
