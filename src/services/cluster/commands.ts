/**
 * The cluster service's commands (cluster bookkeeping the nodes replicate):
 * MessagePack maps as envelope payloads.
 *
 * | command   | fields                              | result                   |
 * | --------- | ----------------------------------- | ------------------------ |
 * | member    | `{type, address}`                   | null                     |
 * | revoke    | `{type, nodeId}`                    | null                     |
 * | joinToken | `{type, nonce, expiresAtMs, nowMs}` | a `JOIN_TOKEN_*` number  |
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { KvInvalidError } from "../../model/errors.ts";
import type { NodeAddress } from "../../protocol/cluster.ts";

/** A command of the cluster service. */
export type ClusterCommand =
  | { readonly type: "member"; readonly address: NodeAddress }
  | { readonly type: "revoke"; readonly nodeId: string }
  | {
    readonly type: "joinToken";
    readonly nonce: string;
    readonly expiresAtMs: number;
    /** The proposing leader's clock: tokens expired by it are forgotten. */
    readonly nowMs: number;
  };

/** Encodes a cluster command into an envelope payload. */
export function encodeClusterCommand(command: ClusterCommand): Uint8Array {
  return encode(command);
}

function invalid(detail: string): never {
  throw new KvInvalidError(`Cannot decode cluster command: ${detail}`);
}

/**
 * Decodes a cluster payload.
 *
 * @throws {KvInvalidError} When it is not a cluster command.
 */
export function decodeClusterCommand(payload: Uint8Array): ClusterCommand {
  let raw: Record<string, unknown>;
  try {
    raw = decode(payload) as Record<string, unknown>;
  } catch (cause) {
    throw new KvInvalidError(
      `Cannot decode cluster command: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (typeof raw !== "object" || raw === null) invalid("not a map");
  switch (raw.type) {
    case "member": {
      const address = raw.address as NodeAddress | undefined;
      if (typeof address?.nodeId !== "string") {
        invalid("member needs an address");
      }
      return { type: "member", address };
    }
    case "revoke":
      if (typeof raw.nodeId !== "string") invalid("revoke needs a node id");
      return { type: "revoke", nodeId: raw.nodeId };
    case "joinToken":
      if (
        typeof raw.nonce !== "string" || typeof raw.expiresAtMs !== "number" ||
        typeof raw.nowMs !== "number"
      ) invalid("joinToken needs nonce, expiresAtMs and nowMs");
      return {
        type: "joinToken",
        nonce: raw.nonce,
        expiresAtMs: raw.expiresAtMs,
        nowMs: raw.nowMs,
      };
    default:
      return invalid(`unknown command ${String(raw.type)}`);
  }
}
