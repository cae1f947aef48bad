/**
 * The member directory: the one owner, on a node, of where every member is
 * reached ({@linkcode NodeAddress}). It starts from the cluster file's
 * members, follows the addresses replicated through the log (newer than the
 * file's), and holds this node's own address (which changes when its
 * certificate rotates). Everyone else asks it (status pages, tickets,
 * "not leader" redirects, join answers) or subscribes to it: the node keeps
 * the transport's peer book and `cluster.json` in step from its events.
 *
 * Pure bookkeeping: no I/O, no clock.
 *
 * @module
 */
import type { NodeAddress } from "../protocol/cluster.ts";

/** A change the directory reports: the members whose address is new or changed. */
export interface MemberDirectoryChange {
  /** New or changed addresses (this node's own included when it changed). */
  readonly changed: readonly NodeAddress[];
  /** The whole directory after the change (this node first). */
  readonly members: readonly NodeAddress[];
}

/** A listener of directory changes. */
export type MemberDirectoryListener = (change: MemberDirectoryChange) => void;

function sameAddress(a: NodeAddress | undefined, b: NodeAddress): boolean {
  return a !== undefined && a.nodeId === b.nodeId &&
    a.httpUrl === b.httpUrl && a.quicHost === b.quicHost &&
    a.quicPort === b.quicPort && a.nodeKey === b.nodeKey &&
    a.certificateHash === b.certificateHash && a.name === b.name;
}

/** The addresses of this node and every member it knows. */
export class MemberDirectory {
  #self: NodeAddress;
  readonly #members = new Map<string, NodeAddress>();
  readonly #listeners = new Set<MemberDirectoryListener>();

  /**
   * @param self This node's address (wins over any entry of its id in `known`).
   * @param known Members known at start (the cluster file's), in order.
   */
  constructor(self: NodeAddress, known: readonly NodeAddress[] = []) {
    this.#self = self;
    for (const member of known) {
      if (member.nodeId !== self.nodeId) {
        this.#members.set(member.nodeId, member);
      }
    }
  }

  /** This node's address. */
  get self(): NodeAddress {
    return this.#self;
  }

  /** A member's address (this node's own too). */
  get(nodeId: string): NodeAddress | undefined {
    return nodeId === this.#self.nodeId
      ? this.#self
      : this.#members.get(nodeId);
  }

  /** A member's HTTP URL, or null when unknown (for redirects). */
  httpUrl(nodeId: string | null): string | null {
    return nodeId === null ? null : this.get(nodeId)?.httpUrl ?? null;
  }

  /** Every address, this node first. */
  list(): NodeAddress[] {
    return [this.#self, ...this.#members.values()];
  }

  /** The other members' addresses. */
  peers(): NodeAddress[] {
    return [...this.#members.values()];
  }

  /**
   * Takes newer addresses (replicated, or of a node being added). Entries of
   * this node's own id are ignored: the node itself knows best where it
   * listens. Notifies listeners once when something changed.
   *
   * @returns The addresses that were new or changed.
   */
  merge(addresses: readonly NodeAddress[]): NodeAddress[] {
    const changed: NodeAddress[] = [];
    for (const address of addresses) {
      if (address.nodeId === this.#self.nodeId) continue;
      if (sameAddress(this.#members.get(address.nodeId), address)) continue;
      this.#members.set(address.nodeId, address);
      changed.push(address);
    }
    if (changed.length > 0) this.#notify(changed);
    return changed;
  }

  /** Replaces this node's own address (a rotated certificate, a new port). */
  setSelf(address: NodeAddress): void {
    if (address.nodeId !== this.#self.nodeId) {
      throw new RangeError(
        `Cannot change this node's address to another node's id: '${address.nodeId}'`,
      );
    }
    if (sameAddress(this.#self, address)) return;
    this.#self = address;
    this.#notify([address]);
  }

  /** Calls `listener` after each change; returns an unsubscribe function. */
  subscribe(listener: MemberDirectoryListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(changed: readonly NodeAddress[]): void {
    const change = { changed, members: this.list() };
    for (const listener of [...this.#listeners]) listener(change);
  }
}
