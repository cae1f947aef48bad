/**
 * The example service's commands (tests only): a named counter. Payload:
 * MessagePack `[name, amount]`, or `["!escape", 0]`, a planted bug that
 * writes outside the service's keyspace.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { KvInvalidError } from "../../../src/model/errors.ts";

/** Adds `amount` (1..100) to counter `name`. */
export interface AddCommand {
  readonly name: string;
  readonly amount: number;
}

/** Encodes a command. */
export function encodeAdd(command: AddCommand): Uint8Array {
  return encode([command.name, command.amount]);
}

/** Decodes and validates a command. @throws {KvInvalidError} When invalid. */
export function decodeAdd(payload: Uint8Array): AddCommand {
  const raw = decode(payload);
  if (
    !Array.isArray(raw) || raw.length !== 2 || typeof raw[0] !== "string" ||
    typeof raw[1] !== "number"
  ) {
    throw new KvInvalidError("Cannot decode example command");
  }
  const [name, amount] = raw as [string, number];
  if (name !== "!escape" && !(amount >= 1 && amount <= 100)) {
    throw new KvInvalidError(`Invalid amount: expected 1 to 100: ${amount}`);
  }
  return { name, amount };
}
