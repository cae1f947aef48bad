/**
 * The cluster service's state, read from store metadata (carried by
 * snapshots): the members' addresses, the revoked node ids and the join
 * tokens used and not yet expired.
 *
 * @module
 */
import type { StateStore } from "../../state/state_store.ts";
import type { NodeAddress } from "../../protocol/cluster.ts";

/** Metadata holding the members' addresses (JSON). */
export const MEMBERS_META = "cluster.members";
/** Metadata holding the revoked node ids (JSON). */
export const REVOKED_META = "cluster.revoked";
/** Metadata holding the join tokens used and not yet expired (JSON). */
export const JOIN_TOKENS_META = "cluster.joinTokens";

/** A join token recorded as used. */
export interface UsedToken {
  readonly nonce: string;
  readonly expiresAtMs: number;
}

/** A JSON list kept in metadata `name` (empty when absent). */
export function metaList<T>(store: StateStore, name: string): T[] {
  const raw = store.meta(name);
  return raw === null ? [] : JSON.parse(new TextDecoder().decode(raw)) as T[];
}

/** The members' addresses as replicated so far. */
export function members(store: StateStore): NodeAddress[] {
  return metaList<NodeAddress>(store, MEMBERS_META);
}

/** Node ids whose credentials are revoked, as replicated so far. */
export function revoked(store: StateStore): string[] {
  return metaList<string>(store, REVOKED_META);
}
