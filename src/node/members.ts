/**
 * Keeps everything that needs member addresses in step with the node's
 * {@linkcode MemberDirectory}: the replicated members (state → directory),
 * the transport's peer book and `cluster.json` (directory → both), and this
 * node's own entry in the log (announced when it differs from what peers
 * were told, e.g. after a certificate rotation or a port change).
 *
 * @module
 */
import type { Scheduler } from "../base/clock.ts";
import type { MemberDirectory } from "../cluster/member_directory.ts";
import type { NodeAddress } from "../protocol/cluster.ts";
import { nodeId } from "../raft/types.ts";
import {
  encodeMemberCommand,
  type KvReplicatedState,
} from "../services/replicated_state.ts";
import type { QuicPeerAddress } from "../transport/quic_peer_link.ts";
import type { PeerRequest } from "../protocol/envelope.ts";
import type { NodeId } from "../raft/types.ts";
import { decodeBase64Url } from "../base/base64.ts";
import { type ClusterFile, writeClusterFile } from "./data_dir.ts";

/** Attempts of the self-announcement (1 s apart) before it gives up. */
const ANNOUNCE_ATTEMPTS_MAX = 120;

/** The transport's side of the peer book. */
export interface PeerBook {
  setPeer(address: QuicPeerAddress): void;
  request(
    to: NodeId,
    request: PeerRequest,
    options: { timeoutMs: number },
  ): Promise<Uint8Array>;
}

/** What the announcement needs of the runner. */
export interface AnnounceRunner {
  status(): { readonly leader: string | null };
  propose(data: Uint8Array): Promise<unknown>;
}

/** Options of {@linkcode NodeMembers}. */
export interface NodeMembersOptions {
  readonly directory: MemberDirectory;
  readonly transport: PeerBook;
  readonly state: KvReplicatedState;
  readonly dataDir: string;
  /** The cluster file as written at start (its members are rewritten from the directory). */
  readonly file: ClusterFile;
  /** Timers of the announcement's retries. */
  readonly scheduler: Scheduler;
  readonly log: (line: string) => void;
}

/** The transport's view of a member. */
export function peerAddress(member: NodeAddress): QuicPeerAddress {
  return {
    nodeId: nodeId(member.nodeId),
    hostname: member.quicHost,
    port: member.quicPort,
    nodeKey: decodeBase64Url(member.nodeKey),
    certificateHash: decodeBase64Url(member.certificateHash),
  };
}

/** Follows the replicated members and writes the directory out to the transport and the cluster file. */
export class NodeMembers {
  readonly #options: NodeMembersOptions;
  #file: ClusterFile;
  #writing: Promise<void> = Promise.resolve();
  #unsubscribe: () => void;
  #stopped = false;

  constructor(options: NodeMembersOptions) {
    this.#options = options;
    this.#file = options.file;
    const { directory, transport } = options;
    for (const peer of directory.peers()) transport.setPeer(peerAddress(peer));
    this.#unsubscribe = directory.subscribe(({ changed }) => {
      for (const member of changed) {
        if (member.nodeId !== directory.self.nodeId) {
          transport.setPeer(peerAddress(member));
        }
      }
      void this.flush().catch((error) =>
        options.log(
          `warning: cannot write cluster.json: ${(error as Error).message}`,
        )
      );
    });
    options.state.onMembers((members) => {
      if (!this.#stopped) directory.merge(members);
    });
  }

  /** The cluster file's ids (cluster, database) as written. */
  get file(): ClusterFile {
    return this.#file;
  }

  /** Writes the directory to `cluster.json` (writes are ordered); resolves when this one landed. */
  flush(): Promise<void> {
    const write = this.#writing.catch(() => {}).then(() => {
      this.#file = {
        ...this.#file,
        members: this.#options.directory.list(),
      };
      return writeClusterFile(this.#options.dataDir, this.#file);
    });
    this.#writing = write;
    return write;
  }

  /** Stops following; pending writes finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe();
    await this.#writing.catch(() => {});
  }

  /**
   * Publishes this node's address (with its current certificate hash)
   * through the log when the replicated one differs, so peers re-pin after a
   * certificate renewal or a port change. Retries until it lands or the node stops.
   *
   * @param previousSelf What peers were told before (the cluster file's entry), if anything.
   */
  async announceSelf(
    previousSelf: NodeAddress | null,
    runner: AnnounceRunner,
  ): Promise<void> {
    const { directory, state, transport } = this.#options;
    for (
      let attempt = 0;
      attempt < ANNOUNCE_ATTEMPTS_MAX && !this.#stopped;
      attempt++
    ) {
      const self = directory.self;
      // Peers know the replicated entry if there is one, else the cluster
      // file's (provisioned or joined with it): announce only a difference.
      const known = state.members().find((m) => m.nodeId === self.nodeId) ??
        previousSelf;
      if (known === null || JSON.stringify(known) === JSON.stringify(self)) {
        return;
      }
      const data = encodeMemberCommand(self);
      try {
        if (runner.status().leader !== null) {
          await runner.propose(data);
          return;
        }
        // No leader known: it may not reach us while peers hold our old
        // address. Ask each peer in turn; a follower passes it to the leader.
        for (const peer of directory.peers()) {
          if (this.#stopped) return;
          try {
            await transport.request(nodeId(peer.nodeId), {
              method: "forwardProposal",
              data,
            }, { timeoutMs: 3000 });
            return;
          } catch {
            // Try the next peer.
          }
        }
      } catch {
        // Retry below.
      }
      await new Promise<void>((resolve) =>
        this.#options.scheduler.after(1000, resolve)
      );
    }
  }
}
