/**
 * Aspen's client module: {@linkcode connect} returns a client whose `kv`
 * has the shape of `Deno.Kv` (get, getMany, set, delete, list, atomic) and
 * whose `cluster` administers membership. It runs in Deno and in browsers.
 *
 * @example
 * ```ts ignore
 * import { connect, KvU64 } from "@aspen/aspen";
 *
 * using client = connect("http://127.0.0.1:8080", { token: Deno.env.get("ASPEN_TOKEN") });
 * const result = await client.kv.set(["users", 1], new TextEncoder().encode("alice"));
 * console.log(result.versionstamp); // 20 hex characters
 * await client.kv.atomic().sum(["visits"], 1n).commit();
 * for await (const entry of client.kv.list({ prefix: ["users"] })) {
 *   console.log(entry.key, entry.value);
 * }
 * ```
 *
 * @module
 */
export { AspenClient, connect } from "./src/client/connect.ts";
export {
  AspenKv,
  AtomicOperation,
  KV_COMMIT_VERSIONSTAMP,
  KvListIterator,
} from "./src/client/kv.ts";
export type {
  AtomicAckRef,
  KvCommitVersionstamp,
  KvKeyWithVersionstamp,
} from "./src/client/kv.ts";
export { AspenCluster } from "./src/client/cluster.ts";
export { AspenLeases } from "./src/client/leases.ts";
export { AspenLocks } from "./src/client/locks.ts";
export { AspenElections } from "./src/client/elections.ts";
export { AspenEvents } from "./src/client/events.ts";
export type {
  AspenEvent,
  EventDeleteCause,
  EventsListOptions,
  EventsListPage,
  EventsSelector,
  EventsStatus,
  EventsWatchFrame,
  EventsWatchOptions,
} from "./src/client/events.ts";
export { AspenHooks } from "./src/client/hooks.ts";
export type {
  AspenHook,
  HookCreated,
  HookCreateOptions,
  HookDeliveriesOptions,
  HookDeliveriesPage,
  HookDelivery,
  HookOutcome,
  HookSelector,
  HookTarget,
} from "./src/client/hooks.ts";
export { AspenGroups, AspenPubsub } from "./src/client/pubsub.ts";
export type {
  AckAction,
  Consumer,
  ConsumerAck,
  ConsumerFetchOptions,
  ConsumerMessage,
  ConsumerOptions,
  GroupDescription,
  GroupMember,
  GroupOptions,
  GroupPartitionInfo,
  GroupPauseState,
  GroupResetOptions,
  GroupResetResult,
  GroupResetTarget,
  GroupStart,
  GroupSummary,
  PublishBatchOptions,
  PublishMessage,
  PublishOptions,
  PublishRecord,
  PubsubReadConsistency,
  PubsubReadOptions,
  TopicCreated,
  TopicCreateOptions,
  TopicDescription,
  TopicInfo,
  TopicPartitionInfo,
  TopicRetention,
} from "./src/client/pubsub.ts";
export type { StreamOptions } from "./src/client/connect.ts";
export { AspenKvU64, KvU64 } from "./src/client/kv_u64.ts";
export { KvV8Bytes } from "./src/client/_values.ts";
export {
  AcquireTimeoutError,
  AspenError,
  AuthError,
  CheckFailedError,
  ClaimLostError,
  CompactedError,
  errorFromWire,
  GroupConfigMismatchError,
  GroupNotEmptyError,
  GroupNotFoundError,
  HookExistsError,
  HookNotFoundError,
  InvalidRequestError,
  LeaseLostError,
  LeaseNotFoundError,
  LimitExceededError,
  MembershipError,
  MessageFinishedError,
  NotHolderError,
  NotLeaderError,
  PermitsMismatchError,
  SequenceTooOldError,
  StaleGenerationError,
  TimeoutError,
  TopicExistsError,
  TopicInUseError,
  TopicNotFoundError,
  TypeMismatchError,
  UnavailableError,
  WrongClusterError,
} from "./src/client/errors.ts";
export type { AspenErrorOptions } from "./src/client/errors.ts";
export type {
  AtomicCheck,
  CampaignOptions,
  ClusterMember,
  ClusterStatus,
  ConnectOptions,
  ElectionLeader,
  ElectionObservation,
  KvCommitError,
  KvCommitResult,
  KvConsistencyLevel,
  KvEnqueueOptions,
  KvEntry,
  KvEntryMaybe,
  KvGetOptions,
  KvKey,
  KvKeyPart,
  KvListenQueueOptions,
  KvListOptions,
  KvListSelector,
  KvQueueInfo,
  KvQueueMessage,
  KvSetOptions,
  KvWatchOptions,
  Leadership,
  LeaseGrant,
  LeaseGrantOptions,
  LeaseInfo,
  LeaseKeepAliveResult,
  LeaseListOptions,
  LeaseListPage,
  LeaseOpenOptions,
  LeaseTimeToLive,
  LeaseTimeToLiveOptions,
  LockAcquireOptions,
  LockGrant,
  LockStatus,
  NodeAddress,
  ObserveOptions,
  OpenLease,
} from "./src/client/types.ts";
export { ERROR_CODES, ERROR_STATUS } from "./src/protocol/http_api.ts";
export type {
  ErrorBody,
  ErrorCode,
  ErrorDetails,
} from "./src/protocol/http_api.ts";
