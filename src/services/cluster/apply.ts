/**
 * The cluster service as the state host runs it: cluster bookkeeping
 * (member addresses, revocations, join tokens) kept in store metadata.
 * Listeners on this node hear of changes after the entry's transaction.
 *
 * @module
 */
import type { ApplyContext } from "../../state/write_context.ts";
import type { ServiceDefinition } from "../../state/registry.ts";
import type { StateStore } from "../../state/state_store.ts";
import { KvInvalidError } from "../../model/errors.ts";
import type { NodeAddress } from "../../protocol/cluster.ts";
import { type ClusterCommand, decodeClusterCommand } from "./commands.ts";
import {
  JOIN_TOKENS_META,
  members,
  MEMBERS_META,
  metaList,
  revoked,
  REVOKED_META,
  type UsedToken,
} from "./reads.ts";

/** Most revoked node ids kept; more revocations are refused (a bound, not expected). */
export const REVOKED_MAX = 10_000;
/** Most unexpired join tokens recorded as used; a join beyond it is refused until some expire. */
export const JOIN_TOKENS_MAX = 10_000;
/** Apply output of a join token's first use. */
export const JOIN_TOKEN_FRESH = 1;
/** Apply output of a join token used before. */
export const JOIN_TOKEN_USED = 2;
/** Apply output when too many unexpired tokens are recorded. */
export const JOIN_TOKEN_FULL = 3;

/** The cluster's replicated bookkeeping on one node, with change listeners. */
export class ClusterState {
  readonly #store: StateStore;
  readonly #memberListeners = new Set<(members: NodeAddress[]) => void>();
  readonly #revokedListeners = new Set<(revoked: string[]) => void>();

  constructor(store: StateStore) {
    this.#store = store;
  }

  /** The members' addresses as replicated so far. */
  members(): NodeAddress[] {
    return members(this.#store);
  }

  /** Node ids whose credentials are revoked (removed members). */
  revoked(): string[] {
    return revoked(this.#store);
  }

  /** Calls `listener` whenever the replicated member list changes. */
  onMembers(listener: (members: NodeAddress[]) => void): void {
    this.#memberListeners.add(listener);
  }

  /** Calls `listener` whenever the revoked set changes (or a snapshot is installed). */
  onRevoked(listener: (revoked: string[]) => void): void {
    this.#revokedListeners.add(listener);
  }

  /** Tells the listeners of the state after a snapshot install. */
  installed(): void {
    const list = this.members();
    if (list.length > 0) {
      for (const listener of this.#memberListeners) listener(list);
    }
    const ids = this.revoked();
    for (const listener of this.#revokedListeners) listener(ids);
  }

  /** Applies one command into `context`; the result is a `JOIN_TOKEN_*` for joinToken, else null. */
  apply(command: ClusterCommand, context: ApplyContext): number | null {
    const json = (value: unknown) =>
      new TextEncoder().encode(JSON.stringify(value));
    switch (command.type) {
      case "revoke": {
        const ids = this.revoked();
        if (ids.includes(command.nodeId) || ids.length >= REVOKED_MAX) {
          return null;
        }
        context.meta.set(REVOKED_META, json([...ids, command.nodeId]));
        context.after(() => {
          const now = this.revoked();
          for (const listener of this.#revokedListeners) listener(now);
        });
        return null;
      }
      case "joinToken": {
        const { nonce, expiresAtMs, nowMs } = command;
        const live = metaList<UsedToken>(context.store, JOIN_TOKENS_META)
          .filter((t) => t.expiresAtMs > nowMs);
        let outcome = JOIN_TOKEN_FRESH;
        if (live.some((t) => t.nonce === nonce)) outcome = JOIN_TOKEN_USED;
        else if (live.length >= JOIN_TOKENS_MAX) outcome = JOIN_TOKEN_FULL;
        else live.push({ nonce, expiresAtMs });
        context.meta.set(JOIN_TOKENS_META, json(live));
        return outcome;
      }
      case "member": {
        const address = command.address;
        const list = [
          ...this.members().filter((m) => m.nodeId !== address.nodeId),
          address,
        ];
        context.meta.set(MEMBERS_META, json(list));
        context.after(() => {
          for (const listener of this.#memberListeners) listener(list);
        });
        return null;
      }
    }
  }
}

/** The cluster service's registration over `state` (see `services/table.ts`). */
export function clusterService(
  state: ClusterState,
): ServiceDefinition<ClusterCommand, number | null> {
  return {
    name: "cluster",
    keyspaces: [],
    meta: ["cluster."],
    decode: decodeClusterCommand,
    apply: (command, context) => state.apply(command, context),
    failure(error) {
      // A malformed cluster command changes nothing, identically everywhere.
      if (error instanceof KvInvalidError) return null;
      throw error;
    },
    installed: () => state.installed(),
  };
}
