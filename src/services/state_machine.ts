/**
 * The built-in services on one state host, for in-process use (the local
 * backend, the node, the simulator and tests): applies envelope entries and
 * serves the KV and queue reads from the applied state.
 *
 * @module
 */
import type { LogIndex } from "../raft/types.ts";
import type { KvApplyResult, KvEntry } from "../model/types.ts";
import type { StateStore } from "../state/state_store.ts";
import type { ServiceRegistration } from "../state/registry.ts";
import type { ChangeSink } from "../state/changes.ts";
import { StateHost } from "../state/host.ts";
import type { KvListSelector } from "../model/range.ts";
import { ClusterState } from "./cluster/api.ts";
import { type KvListOptions, type KvListPage, KvReads } from "./kv/reads.ts";
import {
  type KvQueueInfo,
  type KvQueuePeek,
  QueueReads,
} from "./queues/api.ts";
import { type ServiceKnobs, serviceRegistry } from "./table.ts";

export type { KvListOptions, KvListPage };
export { EXPIRE_KEYS_MAX } from "./kv/apply.ts";

/** Testing knobs of {@linkcode KvStateMachine}: planted bugs for the simulator. */
export type KvStateMachineKnobs = ServiceKnobs;

/** Options of {@linkcode KvStateMachine} besides the knobs. */
export interface KvStateMachineOptions {
  /** Where each applied entry's change events go. */
  readonly changes?: ChangeSink;
  /** More services to register (tests). */
  readonly extra?: readonly ServiceRegistration[];
}

/** The state host with the built-in services, and their reads. */
export class KvStateMachine {
  readonly store: StateStore;
  readonly host: StateHost;
  readonly cluster: ClusterState;
  readonly reads: KvReads;
  readonly queues: QueueReads;
  /** Where each applied entry's changes go (the node's change feed), if anywhere. */
  readonly changes: ChangeSink | undefined;

  /**
   * @param knobs Testing knobs: planted bugs of the simulator (default none).
   */
  constructor(
    store: StateStore,
    knobs: KvStateMachineKnobs = {},
    options: KvStateMachineOptions = {},
  ) {
    this.store = store;
    this.changes = options.changes;
    this.cluster = new ClusterState(store);
    this.host = new StateHost(
      store,
      serviceRegistry({ store, cluster: this.cluster, knobs }, options.extra),
      { knobs, ...(options.changes ? { changes: options.changes } : {}) },
    );
    this.reads = new KvReads(store);
    this.queues = new QueueReads(store);
  }

  /** The index of the last applied entry. */
  appliedIndex(): LogIndex {
    return this.store.appliedIndex();
  }

  /**
   * Applies the envelope `data` (a KV or queue command, see
   * `services/entries.ts`) as log entry `index`. A bad command yields a
   * failure result, identically on every replica.
   *
   * @throws {AssertionError} When `index` does not follow the applied index, or the envelope is not one.
   */
  apply(index: LogIndex, data: Uint8Array): KvApplyResult {
    return this.host.applyData(index, data) as KvApplyResult;
  }

  /** See {@linkcode KvReads.get}. */
  get(key: Uint8Array): KvEntry | null {
    return this.reads.get(key);
  }

  /** See {@linkcode KvReads.getMany}. */
  getMany(keys: readonly Uint8Array[]): (KvEntry | null)[] {
    return this.reads.getMany(keys);
  }

  /** See {@linkcode KvReads.readRange}. */
  readRange(
    start: Uint8Array,
    end: Uint8Array,
    limit: number,
    reverse = false,
  ): KvEntry[] {
    return this.reads.readRange(start, end, limit, reverse);
  }

  /** See {@linkcode KvReads.list}. */
  list(selector: KvListSelector, options: KvListOptions): KvListPage {
    return this.reads.list(selector, options);
  }

  /** See {@linkcode QueueReads.info}. */
  queueInfo(queue: string): KvQueueInfo {
    return this.queues.info(queue);
  }

  /** See {@linkcode QueueReads.peek}. */
  peekQueue(queue: string, limit: number): KvQueuePeek[] {
    return this.queues.peek(queue, limit);
  }
}
