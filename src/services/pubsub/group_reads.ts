/**
 * Reads of consumer groups from a replica's applied state (skeleton: the
 * contract; filled in by the groups half of issue 18).
 *
 * @module
 */
import type { StateStore } from "../../state/state_store.ts";
import type {
  GroupDescribeResponse,
  WireGroupSummary,
} from "../../protocol/http_api_pubsub.ts";

/** Group reads over a state store. */
export class GroupReads {
  readonly #store: StateStore;

  constructor(store: StateStore) {
    this.#store = store;
  }

  /** Groups of `topic` (or all), by topic then group. */
  list(_topic?: string): WireGroupSummary[] {
    void this.#store;
    return [];
  }
  /** One group, or null. */
  describe(_topic: string, _group: string): GroupDescribeResponse | null {
    return null;
  }
  /** Group names of `topic`. */
  namesOf(_topic: string): string[] {
    return [];
  }
  /**
   * The earliest time something of the groups falls due (a delivery
   * deadline, the end of a pause), or null: the leader ticks then.
   */
  nextDueMs(): number | null {
    return null;
  }
  /**
   * Whether `member` may get a message now (something available on a
   * partition it owns, within `maxAckPending`): a fetch waits until then.
   */
  hasDeliverable(
    _topic: string,
    _group: string,
    _memberId: string,
    _nowMs: number,
  ): boolean {
    return false;
  }
}
