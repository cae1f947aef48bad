/**
 * The events service on one simulated node incarnation (issue 17), as
 * `aspen_node.ts` wires it on a real node: a {@linkcode NodeEvents} over the
 * replica's state store and change feed (with the planted bug's knob), and
 * an {@linkcode EventsLeader} registered with the incarnation's service host
 * (small intervals, `keepMs` 0 and few revisions kept, so compaction really
 * happens during a run). {@linkcode SimEventsPort} is what the simulated
 * watchers and the compaction nemesis call; `SimNode` passes every call
 * through its process's input gate.
 *
 * Watches ask for a `progressMs` far beyond any run, so `NodeEvents`' real
 * quiet timer never fires: a watch wakes only by the change feed (moved by
 * the simulated applies) or by its abort, and a run stays a function of
 * its seed.
 *
 * @module
 */
import type { Clock, Scheduler } from "../base/clock.ts";
import { NodeEvents, type NodeEventsKnobs } from "../node/node_events.ts";
import type { RaftRunner } from "../node/raft_runner.ts";
import type { ServiceHost } from "../node/service_host.ts";
import {
  encodeEventsCommand,
  EventsCompactedError,
  EventsLeader,
  type EventsResult,
  type EventsWindow,
  pinnedRevision,
  type WatchFrame,
  type WatchRequest,
} from "../services/events/api.ts";
import {
  decodeProposalResult,
  type KvStateResult,
} from "../services/replicated_state.ts";
import { SERVICE_IDS } from "../services/table.ts";
import type { ChangeFeed } from "../state/change_feed.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import type { StateStore } from "../state/state_store.ts";

/** How every node of a seed runs the events service. */
export interface EventsSettings {
  /** The planted bug's knob (`watch-skip-on-resume`). */
  readonly knobs: NodeEventsKnobs;
  /** The leader's pause between compaction passes, in the node's ms. */
  readonly compactIntervalMs: number;
  /** Revisions the leader keeps at least. */
  readonly keepRevisions: number;
  /**
   * Hooks run (`--services hooks`): the leader's compaction keeps the
   * lowest active hook cursor, as a real node's does.
   */
  readonly hooks: boolean;
}

/** A watch's quiet time before a progress frame: longer than any run, ms. */
export const WATCH_PROGRESS_MS = 1_000_000_000;

/** One frame read from a watch, with the node's applied revision around it. */
export interface WatchRead {
  /** The frame, or null when the stream ended. */
  readonly frame: WatchFrame | null;
  /** The node's applied revision when the read was asked. */
  readonly appliedLow: bigint;
  /** The node's applied revision when the frame arrived. */
  readonly appliedHigh: bigint;
}

/** An open watch stream. */
export interface SimWatch {
  /** The next frame; rejects when the node went down or the hold is full. */
  next(): Promise<WatchRead>;
  /** Ends the stream (idempotent). */
  close(): void;
}

/** What opening a watch answers. */
export type WatchOpen =
  | { readonly kind: "open"; readonly watch: SimWatch }
  | {
    readonly kind: "compacted";
    readonly fromRevision: bigint;
    readonly compactRevision: bigint;
    /** The node's applied revision when it refused. */
    readonly applied: bigint;
  };

/** The events service of one node, as the simulated clients call it. */
export interface SimEventsPort {
  /** Opens a watch; `compacted` when its position is below the window. */
  open(request: WatchRequest, signal: AbortSignal): Promise<WatchOpen>;
  /** Proposes `compact {belowRevision}` (a follower forwards it). */
  compact(belowRevision: number): Promise<void>;
  /** The node's window now. */
  window(): EventsWindow;
}

/** One incarnation's parts the service runs on. */
export interface EventsHost {
  readonly nodeId: string;
  readonly runner: RaftRunner<KvStateResult>;
  readonly store: StateStore;
  readonly feed: ChangeFeed;
  readonly services: ServiceHost;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /** Aborted when the incarnation dies: its streams end. */
  readonly died: AbortSignal;
}

/**
 * Registers the leader task with `host.services` (before they start) and
 * returns the incarnation's port, ungated.
 */
export function attachEvents(
  host: EventsHost,
  settings: EventsSettings,
): SimEventsPort {
  const runner = host.runner;
  const leader = new EventsLeader({
    store: host.store,
    nodeId: host.nodeId,
    term: () => runner.status().term,
    intervalMs: settings.compactIntervalMs,
    keepMs: 0,
    keepRevisions: settings.keepRevisions,
    ...(settings.hooks ? { pinned: () => pinnedRevision(host.store) } : {}),
  });
  const encode = (command: Parameters<typeof encodeEventsCommand>[0]) =>
    encodeEnvelope({
      serviceId: SERVICE_IDS.events,
      payload: encodeEventsCommand(command),
    });
  host.services.add({
    task: leader,
    encode,
    decode: (result) => decodeProposalResult(result) as EventsResult,
  });
  const events = new NodeEvents({
    store: host.store,
    feed: host.feed,
    bytesMax: Number.MAX_SAFE_INTEGER,
    now: () => host.clock.wallMs(),
    knobs: settings.knobs,
  });
  const applied = () => BigInt(host.store.appliedIndex());
  return {
    open(request, signal) {
      const both = AbortSignal.any([signal, host.died]);
      let frames: AsyncIterator<WatchFrame>;
      try {
        frames = events.watch(request, both)[Symbol.asyncIterator]();
      } catch (error) {
        if (!(error instanceof EventsCompactedError)) throw error;
        return Promise.resolve({
          kind: "compacted",
          fromRevision: error.fromRevision,
          compactRevision: error.compactRevision,
          applied: applied(),
        });
      }
      let closed = false;
      const watch: SimWatch = {
        async next() {
          const appliedLow = applied();
          const result = closed ? null : await frames.next();
          return {
            frame: result === null || result.done === true
              ? null
              : result.value,
            appliedLow,
            appliedHigh: applied(),
          };
        },
        close() {
          if (closed) return;
          closed = true;
          void frames.return?.();
        },
      };
      return Promise.resolve({ kind: "open", watch });
    },
    async compact(belowRevision) {
      await runner.propose(encode({ type: "compact", belowRevision }));
    },
    window: () => events.window(),
  };
}
