/**
 * The pub/sub service as the state host runs it (envelope id 7, keyspace
 * `ff 70`): topic commands applied by {@linkcode TopicWriter}, group
 * commands by {@linkcode GroupWriter}, the leader's `tick` by both (topics
 * first: due releases, age trims, purges; then deadlines and pauses), and
 * the lease dependent the leases service calls in the entry that ends
 * leases (members go with their leases).
 *
 * @module
 */
import type { LogIndex } from "../../raft/types.ts";
import type { ServiceDefinition } from "../../state/registry.ts";
import type { ApplyContext } from "../../state/write_context.ts";
import type { LeaseDependent } from "../leases/api.ts";
import {
  decodePubsubCommand,
  PUBSUB_SERVICE_LIMITS,
  type PubsubAnswer,
  type PubsubCommand,
  PubsubError,
  type PubsubResult,
  validatePubsubCommand,
} from "./commands.ts";
import { GroupWriter, type PubsubKnobs } from "./groups.ts";
import { PUBSUB_KEYSPACES } from "./keys.ts";
import { type TopicTuning, TopicWriter } from "./topics.ts";

/** The pub/sub service's name (in change events and `reaches`). */
export const PUBSUB_SERVICE = "pubsub";

function applyPubsub(
  command: PubsubCommand,
  context: ApplyContext,
  knobs: PubsubKnobs,
  tuning: TopicTuning,
): PubsubAnswer {
  const topics = () => new TopicWriter(context, knobs, tuning);
  const groups = () => new GroupWriter(context, knobs);
  switch (command.type) {
    case "topicCreate":
      return topics().create(command);
    case "topicDelete":
      return topics().delete(command, groups());
    case "publish":
      return topics().publish(command);
    case "join":
      return groups().join(command);
    case "leave":
      return groups().leave(command);
    case "fetch":
      return groups().fetch(command);
    case "ack":
      return groups().ack(command);
    case "reset":
      return groups().reset(command);
    case "pause":
      return groups().pause(command);
    case "resume":
      return groups().resume(command);
    case "tick": {
      const budget = PUBSUB_SERVICE_LIMITS.tickItemsMax;
      const part = topics().tick(command.nowMs, budget);
      const expiry = groups().tick(command.nowMs, budget);
      return {
        type: "tick",
        released: part.released,
        trimmed: part.trimmed,
        expired: expiry.expired,
        more: part.more || expiry.more,
      };
    }
  }
}

/**
 * The pub/sub service's registration (see `services/table.ts`).
 *
 * @param knobs Testing knobs: planted bugs of the simulator (default none).
 * @param tuning Smaller bounds for tests (default the service's limits).
 */
export function pubsubService(
  knobs: PubsubKnobs = {},
  tuning: TopicTuning = {},
): ServiceDefinition<PubsubCommand, PubsubResult> {
  return {
    name: PUBSUB_SERVICE,
    keyspaces: PUBSUB_KEYSPACES,
    // A group skipping trimmed records records `topic.gap` in the entry.
    reaches: ["events"],
    decode: decodePubsubCommand,
    apply(command, context): PubsubResult {
      // Decoding validated it; checked again so no entry corrupts the state.
      validatePubsubCommand(command);
      const answer = applyPubsub(command, context, knobs, tuning);
      return { ok: true, index: Number(context.index), answer };
    },
    failure(error: unknown, index: LogIndex): PubsubResult {
      if (!(error instanceof PubsubError)) throw error;
      return {
        ok: false,
        index: Number(index),
        reason: error.code,
        message: error.message,
        ...(error.details !== undefined ? { details: error.details } : {}),
      };
    },
    sessionRefusal: (reason, message, index) => ({
      ok: false,
      index: Number(index),
      reason,
      message,
    }),
  };
}

/**
 * The pub/sub service as a lease dependent: removes the members of the
 * leases that end and rebalances their groups, in the same entry (the
 * leases service must `reach` `pubsub`).
 *
 * @param knobs Testing knobs: planted bugs of the simulator (default none).
 */
export function pubsubLeaseDependent(knobs: PubsubKnobs = {}): LeaseDependent {
  return {
    service: PUBSUB_SERVICE,
    onLeaseEnded(ids, context) {
      new GroupWriter(context, knobs).leasesEnded(ids);
    },
  };
}
