/**
 * The state a simulated node replicates: Aspen's real KV state
 * (`KvReplicatedState` over `KvStateMachine` on a memory store, with the
 * planted-bug knobs of its exactly-once tables), wrapped for the runner so
 * the invariant checker sees every applied entry and compares replicas by
 * `stateHash`, and so `sync` leaves a durable image on the simulated disk.
 *
 * @module
 */
import { decode } from "@msgpack/msgpack";
import type { Entry, LogIndex, Snapshot } from "../raft/types.ts";
import type { ReplicatedStateMachine } from "../node/raft_runner.ts";
import {
  KvReplicatedState,
  type KvStateResult,
} from "../services/replicated_state.ts";
import {
  KvStateMachine,
  type KvStateMachineKnobs,
} from "../services/state_machine.ts";
import { stateHash } from "../state/state_hash.ts";
import type { ChangeSink } from "../state/changes.ts";
import type { SnapshotChunk } from "../state/state_store.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import { encodeKey } from "../model/key_codec.ts";
import type { KvEntry } from "../model/types.ts";
import type { InvariantChecker } from "./invariants.ts";
import type { SimDisk } from "./sim_disk.ts";

/** Session results the simulator's replicas keep (the real table keeps 10,000). */
export const SIM_SESSION_RESULTS_MAX = 1;
/**
 * Replicas are compared every this many indexes (hashing walks the whole
 * state; a diverged state stays diverged, so a later comparison catches it).
 */
const hashIntervalEntries = 16;
/** Rows per page when listing the applied command ids. */
const listPageRows = 1000;

const decoder = new TextDecoder();

/** One incarnation's state, fed by the runner. */
export class SimKvState implements ReplicatedStateMachine<KvStateResult> {
  readonly #id: string;
  readonly #checker: InvariantChecker;
  readonly #disk: SimDisk;
  readonly #trace: ((line: string) => void) | null;
  readonly kv: KvStateMachine;
  readonly #state: KvReplicatedState;
  /** Snapshots received from a leader and installed, for reports. */
  snapshotsInstalled = 0;
  /**
   * Called after each applied entry (`reset` false) and after the state was
   * replaced by a snapshot (`reset` true); null for none.
   */
  onApplied: ((reset: boolean) => void) | null = null;

  /**
   * @param knobs Planted bugs of the KV state machine. The session table
   *   keeps only {@linkcode SIM_SESSION_RESULTS_MAX} results, so retries
   *   meet evicted results within a run.
   * @param changes Where applied changes go (the events run's change feed), if anywhere.
   */
  constructor(
    id: string,
    checker: InvariantChecker,
    disk: SimDisk,
    knobs: KvStateMachineKnobs,
    trace: ((line: string) => void) | null,
    changes?: ChangeSink,
  ) {
    this.#id = id;
    this.#checker = checker;
    this.#disk = disk;
    this.#trace = trace;
    this.kv = new KvStateMachine(
      new MemoryStateStore(),
      { resultsMax: SIM_SESSION_RESULTS_MAX, ...knobs },
      changes === undefined ? {} : { changes },
    );
    this.#state = new KvReplicatedState(this.kv);
  }

  /** Rebuilds the state from the disk's durable image (a restart). */
  restoreImage(): void {
    const image = this.#disk.image;
    if (image === null) return;
    this.#install(image.data);
    this.#checker.observeState(
      this.#id,
      image.index,
      this.hash(),
      "restarted from its synced state",
    );
    this.#trace?.(`restart state ${this.#id} at ${image.index}`);
  }

  appliedIndex(): LogIndex {
    return this.#state.appliedIndex();
  }

  apply(entry: Entry): KvStateResult {
    const checker = this.#checker;
    const applied = this.appliedIndex();
    if (entry.index !== applied + 1) {
      checker.fail(
        `apply order: '${this.#id}' applied index ${entry.index} after ${applied}`,
      );
    }
    checker.observeApplied(this.#id, entry);
    const result = this.#state.apply(entry);
    this.onApplied?.(false);
    if (
      entry.index % hashIntervalEntries === 0 ||
      checker.wantsStateAt(entry.index)
    ) {
      checker.observeState(
        this.#id,
        entry.index,
        this.hash(),
        "applied the log",
      );
    }
    return result;
  }

  encodeResult(result: KvStateResult): Uint8Array {
    return this.#state.encodeResult(result);
  }

  decodeResult(bytes: Uint8Array): KvStateResult {
    return this.#state.decodeResult(bytes);
  }

  snapshotData(): Uint8Array {
    // The runner syncs right before it snapshots: the image is that state.
    const image = this.#disk.image;
    if (image !== null && image.index === this.appliedIndex()) {
      return image.data;
    }
    return this.#state.snapshotData();
  }

  installSnapshot(snapshot: Snapshot): void {
    this.snapshotsInstalled++;
    this.#state.installSnapshot(snapshot);
    if (this.appliedIndex() !== snapshot.meta.index) {
      // The data carries its own applied index: a snapshot labelled with
      // another one describes some other state than its label says.
      this.#checker.fail(
        `snapshot label: '${this.#id}' installed a snapshot labelled ${snapshot.meta.index} holding the state at ${this.appliedIndex()}`,
      );
    }
    this.onApplied?.(true);
    this.#checker.observeState(
      this.#id,
      snapshot.meta.index,
      this.hash(),
      "installed a snapshot",
    );
    this.#trace?.(`install snapshot ${this.#id} at ${snapshot.meta.index}`);
  }

  /** The state store's durable image becomes the state now. */
  sync(): void {
    this.#disk.image = {
      index: this.appliedIndex(),
      data: this.#state.snapshotData(),
    };
  }

  batch<T>(work: () => T): T {
    return this.#state.batch(work);
  }

  /** Identity of the whole applied state. */
  hash(): string {
    return stateHash(this.kv.store);
  }

  /** The entry at `key`, or null. */
  get(key: Uint8Array): KvEntry | null {
    return this.kv.get(key);
  }

  /** Ids of every write applied (the values under the `["log"]` prefix). */
  appliedIds(): Set<string> {
    const ids = new Set<string>();
    let cursor: string | undefined;
    for (;;) {
      const page = this.kv.list({ prefix: encodeKey(["log"]) }, {
        limit: listPageRows,
        ...(cursor === undefined ? {} : { cursor }),
      });
      for (const entry of page.entries) {
        ids.add(decoder.decode(entry.value.data));
      }
      if (page.entries.length < listPageRows || page.cursor === null) break;
      cursor = page.cursor;
    }
    return ids;
  }

  #install(data: Uint8Array): void {
    const chunks = decode(data) as SnapshotChunk[];
    const installer = this.kv.store.beginInstall();
    for (const chunk of chunks) installer.write(chunk);
    installer.commit();
  }
}

/** Key of a workload key's value. */
export function valueKey(key: string): Uint8Array {
  return encodeKey(["sim", key]);
}
