/**
 * The example service's reads (tests only).
 *
 * @module
 */
import { decode } from "@msgpack/msgpack";
import type { StateStore } from "../../../src/state/state_store.ts";
import { counterKey } from "./apply.ts";

/** Counter `name` as applied (0 when never added to). */
export function readCounter(store: StateStore, name: string): number {
  const row = store.get(counterKey(name));
  return row === null ? 0 : decode(row.value) as number;
}
