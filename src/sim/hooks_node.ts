/**
 * The hooks of the events service on one simulated node incarnation
 * (`--services hooks`, issue 17): what the simulated webhook workers call.
 * Commands are proposed through the node's runner without a session (as
 * the events port's `compact`): a request whose proposal has no answer is
 * resent by the worker, which the delivery protocol makes safe (a begin of
 * the open attempt and a finish of a closed one change nothing). Reads
 * (a hook's record, its delivery log, the next event after a cursor) come
 * from the replica's applied state. `SimNode` passes every call through
 * its process's input gate.
 *
 * @module
 */
import {
  type DeliveryRecord,
  encodeEventsCommand,
  EventsCompactedError,
  EventsReads,
  type EventsResult,
  type HistoryEvent,
  type HookCommand,
  type HookCursor,
  hookMatches,
  HookReads,
  type HookRecord,
} from "../services/events/api.ts";
import {
  decodeProposalResult,
  type KvStateResult,
} from "../services/replicated_state.ts";
import { SERVICE_IDS } from "../services/table.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import type { StateStore } from "../state/state_store.ts";
import type { RaftRunner } from "../node/raft_runner.ts";

/** Delivery records one read returns at most (the service keeps 10,000). */
export const DELIVERIES_READ_MAX = 10_000;

/** The next event of a hook after a cursor, as one replica sees it. */
export type NextEvent =
  | { readonly kind: "event"; readonly event: HistoryEvent }
  | { readonly kind: "none" }
  | { readonly kind: "compacted" };

/** A hook's record as one replica holds it. */
export interface HookRead {
  readonly record: HookRecord | null;
  /** The replica's applied index (a worker ignores a read behind what it knows). */
  readonly applied: number;
}

/** The hooks of one node, as the simulated workers call them. */
export interface SimHooksPort {
  /** Proposes a hook command; rejects when no answer came. */
  propose(command: HookCommand): Promise<EventsResult>;
  /** The hook's record and the replica's applied index it was read at. */
  hook(id: string): Promise<HookRead>;
  /** The first event after `cursor` that goes to `hook` on this replica. */
  next(hook: HookRecord, cursor: HookCursor): Promise<NextEvent>;
}

/** Reads of a replica's hooks for the properties (ungated). */
export function hookState(
  store: StateStore,
  id: string,
): { hook: HookRecord; deliveries: DeliveryRecord[] } | null {
  const reads = new HookReads(store);
  const hook = reads.get(id);
  if (hook === null) return null;
  const { records } = reads.deliveries(hook, { limit: DELIVERIES_READ_MAX });
  return { hook, deliveries: records.reverse() };
}

/** The ungated port of one incarnation. */
export function attachHooks(
  runner: RaftRunner<KvStateResult>,
  store: StateStore,
): SimHooksPort {
  const reads = new HookReads(store);
  const events = new EventsReads(store);
  return {
    async propose(command) {
      const data = encodeEnvelope({
        serviceId: SERVICE_IDS.events,
        payload: encodeEventsCommand(command),
      });
      return decodeProposalResult(await runner.propose(data)) as EventsResult;
    },
    hook: (id) =>
      Promise.resolve({
        record: reads.get(id),
        applied: Number(store.appliedIndex()),
      }),
    next(hook, cursor) {
      const position = cursor.i < 0
        ? { from: BigInt(cursor.r) }
        : { after: { revision: BigInt(cursor.r), index: cursor.i } };
      try {
        const page = events.page(position, {
          limit: 1,
          keep: (event) => hookMatches(hook, event),
        });
        const event = page.events[0];
        return Promise.resolve(
          event === undefined ? { kind: "none" } : { kind: "event", event },
        );
      } catch (error) {
        if (!(error instanceof EventsCompactedError)) throw error;
        return Promise.resolve({ kind: "compacted" });
      }
    },
  };
}
