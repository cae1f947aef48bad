/**
 * The pub/sub service's public face (other services, the node and front
 * ends import only this file).
 *
 * @module
 */
export {
  type AckAction,
  type AckOp,
  decodePubsubCommand,
  type Delivery,
  encodePubsubCommand,
  type GroupOptions,
  type GroupStart,
  messageBytes,
  type MessageEncoding,
  type PublishMessage,
  type PublishOutcome,
  PUBSUB_SERVICE_LIMITS,
  type PubsubAnswer,
  type PubsubCommand,
  PubsubError,
  type PubsubErrorCode,
  type PubsubResult,
  type ResetTarget,
  type Retention,
  validateInteger,
  validateLease,
  validateMemberId,
  validateMessage,
  validateName,
  validatePubsubCommand,
} from "./commands.ts";
export { PUBSUB_KEYSPACE, PUBSUB_KEYSPACES } from "./keys.ts";
export type { PubsubKnobs } from "./groups.ts";
export { GroupReads } from "./group_reads.ts";
export {
  PUBSUB_SERVICE,
  pubsubLeaseDependent,
  pubsubService,
} from "./apply.ts";
export {
  choosePartition,
  DEDUP_ENTRIES_MAX,
  keyPartition,
  murmur2,
  PURGE_ROWS_MAX,
  type TopicTuning,
} from "./topics.ts";
export { TopicReads, wireRetention, wireTopic } from "./topic_reads.ts";
export { PubsubLeader, type PubsubLeaderOptions } from "./leader.ts";
export type {
  MemberRef,
  PortAck,
  PortMessage,
  PubsubPort,
  PubsubReadConsistency,
} from "./port.ts";
export { pubsubStepInto, type PubsubStepRefusal } from "./atomic.ts";
