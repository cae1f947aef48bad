/**
 * The example service's apply (tests only): counters as rows under its
 * keyspace `ff 78` (`ff 65` is the events service's).
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import {
  internalRowWriter,
  readThrough,
} from "../../../src/state/write_context.ts";
import type {
  KeyRange,
  ServiceDefinition,
} from "../../../src/state/registry.ts";
import { type AddCommand, decodeAdd } from "./commands.ts";

/** The example service's keyspace. */
export const EXAMPLE_KEYSPACE: KeyRange = {
  start: new Uint8Array([0xff, 0x78]),
  end: new Uint8Array([0xff, 0x79]),
};

/** The row of counter `name`. */
export function counterKey(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name);
  const key = new Uint8Array(2 + bytes.length);
  key.set(EXAMPLE_KEYSPACE.start);
  key.set(bytes, 2);
  return key;
}

/** The example's result. */
export type ExampleResult =
  | { readonly ok: true; readonly value: number }
  | { readonly ok: false; readonly reason: string; readonly message: string };

/** Counts how often apply ran (to show retries do not re-apply). */
export interface ApplyCounter {
  applies: number;
}

/** The example service's registration. */
export function exampleService(
  counter: ApplyCounter = { applies: 0 },
): ServiceDefinition<AddCommand, ExampleResult> {
  return {
    name: "example",
    keyspaces: [EXAMPLE_KEYSPACE],
    decode: decodeAdd,
    apply(command, context) {
      counter.applies++;
      const writer = internalRowWriter(context.overlay, context.versionstamp);
      if (command.name === "!escape") {
        // A bug: a row in the queues' keyspace.
        writer.put(new Uint8Array([0xff, 0x71, 0x00]), new Uint8Array(0));
        return { ok: true, value: 0 };
      }
      const key = counterKey(command.name);
      const row = readThrough(context, key);
      const value = (row === null ? 0 : decode(row.value) as number) +
        command.amount;
      writer.put(key, encode(value));
      return { ok: true, value };
    },
    failure(error) {
      return {
        ok: false,
        reason: "invalidCommand",
        message: (error as Error).message,
      };
    },
    sessionRefusal: (reason, message) => ({ ok: false, reason, message }),
  };
}
