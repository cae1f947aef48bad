/**
 * Aspen's HTTP protocol, shared by the server (`src/frontends/http/`), the client
 * module (`mod.ts`) and the CLI: routes, request and response bodies, error
 * codes and their statuses, content types.
 *
 * Bodies are JSON (`application/json`) or MessagePack (`application/msgpack`),
 * chosen by `Content-Type` for requests and `Accept` for responses; both
 * carry the same structure. Byte fields ({@linkcode WireBytes}) are standard
 * padded base64 text in JSON and binary in MessagePack; readers accept either.
 *
 * Keys are lists of {@linkcode WireKeyPart}: a string, a boolean or a finite
 * number (other than -0) stands for itself; every other part is tagged, so
 * Deno KV keys survive JSON unchanged:
 *
 * | Deno KV part          | wire                                             |
 * | --------------------- | ------------------------------------------------ |
 * | `"a"`                 | `"a"` (or `{ "type": "string", "value": "a" }`)  |
 * | `1.5`                 | `1.5` (or `{ "type": "number", "value": 1.5 }`)  |
 * | `NaN`, `±Infinity`, `-0` | `{ "type": "number", "value": "NaN" }`, `"Infinity"`, `"-Infinity"`, `"-0"` |
 * | `10n`                 | `{ "type": "bigint", "value": "10" }`            |
 * | `true`                | `true` (or `{ "type": "boolean", "value": true }`) |
 * | `Uint8Array [1, 2]`   | `{ "type": "bytes", "value": "AQI=" }`           |
 *
 * This module holds no code with side effects and imports nothing that
 * needs Deno: browsers load it through the client.
 *
 * @module
 */
import type { ClusterMember, ClusterStatus } from "./cluster.ts";
import type { WireCoordinationCheck } from "./http_api_leases.ts";
import type { WireAtomicAck, WireAtomicPublish } from "./http_api_pubsub.ts";

/** Version prefix of every API route. */
export const API_PREFIX = "/v1";

/** The routes, relative to the node's base URL. */
export const ROUTES = {
  kvGet: "/v1/kv/get",
  kvGetMany: "/v1/kv/get-many",
  kvSet: "/v1/kv/set",
  kvDelete: "/v1/kv/delete",
  kvList: "/v1/kv/list",
  kvAtomic: "/v1/kv/atomic",
  kvWatch: "/v1/kv/watch",
  queueListen: "/v1/queue/listen",
  queueAck: "/v1/queue/ack",
  queueNack: "/v1/queue/nack",
  queueInfo: "/v1/queue/info",
  queuePeek: "/v1/queue/peek",
  queueConfigure: "/v1/queue/configure",
  eventsWatch: "/v1/events/watch",
  eventsList: "/v1/events/list",
  eventsStatus: "/v1/events/status",
  hookCreate: "/v1/hooks/create",
  hookList: "/v1/hooks/list",
  hookGet: "/v1/hooks/get",
  hookDelete: "/v1/hooks/delete",
  hookEnable: "/v1/hooks/enable",
  hookDisable: "/v1/hooks/disable",
  hookRotateSecret: "/v1/hooks/rotate-secret",
  hookDeliveries: "/v1/hooks/deliveries",
  hookReplay: "/v1/hooks/replay",
  hookTrigger: "/v1/hooks/trigger",
  hookClaim: "/v1/hooks/claim",
  hookBegin: "/v1/hooks/begin",
  hookFinish: "/v1/hooks/finish",
  hookReplayDone: "/v1/hooks/replay-done",
  topicCreate: "/v1/topics/create",
  topicList: "/v1/topics/list",
  topicDescribe: "/v1/topics/describe",
  topicDelete: "/v1/topics/delete",
  topicPublish: "/v1/topics/publish",
  groupJoin: "/v1/groups/join",
  groupLeave: "/v1/groups/leave",
  groupFetch: "/v1/groups/fetch",
  groupAck: "/v1/groups/ack",
  groupList: "/v1/groups/list",
  groupDescribe: "/v1/groups/describe",
  groupReset: "/v1/groups/reset",
  groupPause: "/v1/groups/pause",
  groupResume: "/v1/groups/resume",
  /** `GET ?topic=&group=&member=&generation=`: `text/event-stream`. */
  groupConsume: "/v1/groups/consume",
  leaseGrant: "/v1/leases/grant",
  leaseKeepAlive: "/v1/leases/keepalive",
  leaseRevoke: "/v1/leases/revoke",
  leaseTtl: "/v1/leases/ttl",
  leaseList: "/v1/leases/list",
  lockAcquire: "/v1/locks/acquire",
  lockCancel: "/v1/locks/cancel",
  lockRelease: "/v1/locks/release",
  lockStatus: "/v1/locks/status",
  electionCampaign: "/v1/elections/campaign",
  electionProclaim: "/v1/elections/proclaim",
  electionLeader: "/v1/elections/leader",
  electionResign: "/v1/elections/resign",
  /** `GET ?name=`: `text/event-stream`. */
  electionObserve: "/v1/elections/observe",
  clusterStatus: "/v1/cluster/status",
  clusterMembers: "/v1/cluster/members",
  clusterTicket: "/v1/cluster/ticket",
  clusterAddLearner: "/v1/cluster/add-learner",
  clusterPromote: "/v1/cluster/promote",
  clusterRemove: "/v1/cluster/remove",
  clusterTransferLeader: "/v1/cluster/transfer-leader",
  health: "/health",
  metrics: "/metrics",
} as const;

/** Content type of JSON bodies. */
export const CONTENT_TYPE_JSON = "application/json";
/** Content type of MessagePack bodies. */
export const CONTENT_TYPE_MSGPACK = "application/msgpack";
/** Content type of `/metrics` (Prometheus text exposition). */
export const CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8";
/**
 * Content type of the `/v1/kv/watch` stream: one JSON {@linkcode WatchFrame}
 * per line, whatever the `Accept` header, and an empty line as a keep-alive.
 */
export const CONTENT_TYPE_JSON_LINES = "application/jsonl";
/** Query parameter selecting read consistency: `strong` (default) or `eventual`. */
export const CONSISTENCY_PARAMETER = "consistency";

/** Protocol limits the server enforces (Deno KV's own limits come on top). */
export const HTTP_API_LIMITS = {
  /** Default bound of a request body, in bytes (an 800 KiB atomic in base64 JSON fits). */
  bodyBytesMaxDefault: 2 * 1024 * 1024,
  /** Most keys of one get-many (Deno's 10 ranges per read). */
  getManyKeysMax: 10,
  /** Most entries of one list page (Deno's 1000 entries per read). */
  listLimitMax: 1000,
  /** Entries per list page when the request names no limit. */
  listLimitDefault: 100,
  /** Most keys of one watch (Deno's limit). */
  watchKeysMax: 10,
  /** Watch streams one node serves at once; more are refused as unavailable. */
  watchStreamsMax: 1000,
  /** Pause between keep-alive lines of a quiet watch stream, in ms. */
  watchKeepAliveMs: 5000,
  /** How long a listen waits for a message when the request names no time, in ms. */
  queueWaitMsDefault: 5000,
  /** Longest a listen waits, in ms. */
  queueWaitMsMax: 60_000,
  /** How long a delivery is leased when the request names no time, in ms. */
  queueLeaseMsDefault: 30_000,
  /** Longest lease, in ms (1 hour). */
  queueLeaseMsMax: 3_600_000,
  /** Messages one listen returns at most. */
  queueListenCountMax: 100,
  /** Ids of one ack or nack at most. */
  queueIdsMax: 100,
  /** Messages one peek returns at most (default 10). */
  queuePeekLimitMax: 1000,
} as const;

/** Every error code the API returns, with its HTTP status. */
export const ERROR_STATUS = {
  /** The body is not valid JSON/MessagePack or has the wrong shape. */
  badRequest: 400,
  /** A key is not a valid Deno KV key. */
  invalidKey: 400,
  /** A value, versionstamp, selector or cursor is not valid. */
  invalid: 400,
  /** A Deno KV limit is exceeded (key or value size, checks, mutations…). */
  limitExceeded: 400,
  /** Valid in Deno KV but not supported by Aspen yet (V8 sums). */
  unsupported: 400,
  /** No or wrong bearer token. */
  unauthorized: 401,
  /** A data token on an admin route (membership, backups, joins). */
  forbidden: 403,
  /** A join token that is malformed, forged, for another cluster, or expired. */
  joinRefused: 403,
  /** The `Host` header names none of the node's names (DNS rebinding guard). */
  invalidHost: 421,
  /** Unknown route. */
  notFound: 404,
  /** The node named in an admin call is not a member. */
  unknownNode: 404,
  /** No lease has this id (never granted, revoked or expired): nothing changed. */
  leaseNotFound: 404,
  /** The token does not hold the lock or election (any more): nothing changed. */
  notHolder: 409,
  /** A semaphore was acquired with another number of permits than it has: nothing changed. */
  permitsMismatch: 409,
  /** A lease with this id exists with another TTL (a grant of the same TTL answers it): nothing changed. */
  leaseExists: 409,
  /** A hook with this name exists already: nothing changed. */
  hookExists: 409,
  /** The hook's claim moved to another worker (or its lease ended): nothing changed. */
  claimLost: 409,
  /** No hook has this id: nothing changed. */
  hookNotFound: 404,
  /** A topic with this name exists with other settings: nothing changed. */
  topicExists: 409,
  /** No topic has this name: nothing changed. */
  topicNotFound: 404,
  /** The topic has groups (delete it with `force`): nothing changed. */
  topicInUse: 409,
  /** No group of this name on the topic: nothing changed. */
  groupNotFound: 404,
  /** A join's options differ from the group's: nothing changed. */
  groupConfigMismatch: 409,
  /** A reset of a group with members, without `force`: nothing changed. */
  groupNotEmpty: 409,
  /** The member does not own the partition in this generation; details carry the current generation and assignment: nothing changed. */
  staleGeneration: 409,
  /** A producer's sequence at or below its highest that left the dedup window: nothing changed. */
  sequenceTooOld: 409,
  /** An atomic step's ack of a message already finished (acked, dead-lettered) or not delivered to it: nothing changed. */
  messageFinished: 409,
  /** The revisions asked for are below the events history window; details carry `compactRevision`. */
  compacted: 410,
  /** An atomic operation's check failed: nothing changed. */
  checkFailed: 409,
  /** A sum/min/max met a value that is not a u64: nothing changed. */
  typeMismatch: 409,
  /** A session (client id, seq) already carried a different write: nothing changed. */
  sessionReused: 409,
  /** A membership change is already in progress. */
  changePending: 409,
  /** A learner is too far behind to be promoted. */
  notCaughtUp: 409,
  /** The node belongs to another cluster than the client's ticket (or `/kv?cluster=`) names: nothing happened. */
  wrongCluster: 409,
  /** The request body is larger than the node accepts. */
  bodyTooLarge: 413,
  /** The body's content type is neither JSON nor MessagePack. */
  unsupportedMediaType: 415,
  /** An admin call or a queue listen reached a node that is not the leader; details name the leader. */
  notLeader: 421,
  /** The node's or this token's long-lived stream budget is used up: retry later. */
  tooManyStreams: 429,
  /** Unexpected server failure. */
  internal: 500,
  /** Nothing happened (no leader, no quorum): safe to retry anywhere. */
  unavailable: 503,
  /** A write was proposed but its outcome is unknown: it may or may not have applied. */
  outcomeUnknown: 504,
} as const;

/** An error code of the API. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** The error codes, as a list. */
export const ERROR_CODES: readonly ErrorCode[] = Object.keys(
  ERROR_STATUS,
) as ErrorCode[];

/** Bytes: base64 text in JSON, binary in MessagePack. */
export type WireBytes = string | Uint8Array;

/** A key part as the wire carries it (see the module doc for the table). */
export type WireKeyPart =
  | string
  | number
  | boolean
  | { readonly type: "string"; readonly value: string }
  | {
    readonly type: "number";
    readonly value: number | "NaN" | "Infinity" | "-Infinity" | "-0";
  }
  | { readonly type: "bigint"; readonly value: string }
  | { readonly type: "boolean"; readonly value: boolean }
  | { readonly type: "bytes"; readonly value: WireBytes };

/** A Deno KV key on the wire. */
export type WireKey = readonly WireKeyPart[];

/** How a value's bytes are read: V8-serialized, raw bytes, or a u64 (8 bytes little-endian). */
export type WireValueEncoding = "v8" | "bytes" | "le64";

/**
 * A value on the wire. Requests may give a u64 as a decimal string instead
 * of its 8 bytes (`{ "encoding": "le64", "u64": "42" }`); responses always
 * carry `data`, plus `u64` for `le64` values.
 */
export interface WireValue {
  readonly encoding: WireValueEncoding;
  readonly data?: WireBytes;
  readonly u64?: string;
}

/** A versionstamp: 20 lowercase hex characters. */
export type WireVersionstamp = string;

/** An entry as reads return it; `value` and `versionstamp` are null when the key is absent. */
export interface WireEntry {
  readonly key: WireKey;
  readonly value: WireValue | null;
  readonly versionstamp: WireVersionstamp | null;
}

/** `POST /v1/kv/get` */
export interface GetRequest {
  readonly key: WireKey;
}
/** Reply to `POST /v1/kv/get`. */
export interface GetResponse {
  readonly entry: WireEntry;
}

/** `POST /v1/kv/get-many`: at most 10 keys, read from one consistent view. */
export interface GetManyRequest {
  readonly keys: readonly WireKey[];
}
/** Reply to `POST /v1/kv/get-many`: one entry per key, in order. */
export interface GetManyResponse {
  readonly entries: readonly WireEntry[];
}

/** `POST /v1/kv/set` */
export interface SetRequest {
  readonly key: WireKey;
  readonly value: WireValue;
  /** Milliseconds after which the key may be deleted. */
  readonly expireIn?: number;
  readonly session?: WireSession;
}

/** `POST /v1/kv/delete` */
export interface DeleteRequest {
  readonly key: WireKey;
  readonly session?: WireSession;
}

/**
 * Exactly-once retries: a client id (1 to 64 characters) and the write's
 * sequence number. A retry with the same pair is answered with the first
 * result and not applied again (among the cluster's 10,000 latest such writes).
 */
export interface WireSession {
  readonly clientId: string;
  readonly seq: number;
}

/** Reply to every write that applied. */
export interface CommitResponse {
  /** The write applied. */
  readonly ok: true;
  readonly versionstamp: WireVersionstamp;
}

/** What to list, as `Deno.KvListSelector`. */
export interface WireListSelector {
  readonly prefix?: WireKey;
  readonly start?: WireKey;
  readonly end?: WireKey;
}

/** `POST /v1/kv/list`: one page of a list. */
export interface ListRequest {
  readonly selector: WireListSelector;
  /** Entries in this page, 1 to 1000 (default 100). */
  readonly limit?: number;
  /** Last key first. Default false. */
  readonly reverse?: boolean;
  /** Resume after this cursor (Deno KV's cursor format). */
  readonly cursor?: string;
}
/** Reply to `POST /v1/kv/list`. */
export interface ListResponse {
  readonly entries: readonly WireEntry[];
  /** The cursor after the last entry, or null when the range is exhausted. */
  readonly cursor: string | null;
}

/** A check of an atomic operation: versionstamp null means "absent". */
export interface WireCheck {
  readonly key: WireKey;
  readonly versionstamp: WireVersionstamp | null;
}

/** A mutation of an atomic operation. */
export type WireMutation =
  | {
    readonly type: "set";
    readonly key: WireKey;
    readonly value: WireValue;
    readonly expireIn?: number;
    /** Attach the key to this lease (16 hex digits; it must exist): deleted when the lease ends. */
    readonly lease?: string;
  }
  | { readonly type: "delete"; readonly key: WireKey }
  | {
    /**
     * Sets `[...key, versionstamp]`: the key gets the commit's versionstamp
     * (20 hex characters) as its last part (`kv.commitVersionstamp()`).
     */
    readonly type: "setVersionstamped";
    readonly key: WireKey;
    readonly value: WireValue;
    readonly expireIn?: number;
  }
  | {
    readonly type: "sum" | "min" | "max";
    readonly key: WireKey;
    readonly value: WireValue;
  };

/** A message to enqueue, as `Deno.Kv.enqueue` takes it. */
export interface WireEnqueue {
  /** The value, V8-serialized (Deno KV serializes every enqueued value, bytes included). */
  readonly payload: WireBytes;
  /** Milliseconds before the first delivery, up to 30 days. Default 0. */
  readonly delay?: number;
  /** Keys that receive the value when every delivery failed (at most 10). */
  readonly keysIfUndelivered?: readonly WireKey[];
  /** Retry delays in ms (at most 10, each up to 1 hour). Default `[100, 1000, 5000, 30000, 60000]`. */
  readonly backoffSchedule?: readonly number[];
  /** The queue (an Aspen extension): up to 64 of `A-Z a-z 0-9 . _ : -`. Default: the default queue. */
  readonly queue?: string;
}

/** `POST /v1/kv/atomic` */
export interface AtomicRequest {
  /** Versionstamp checks, and the fence and lease checks of `http_api_leases.ts`. */
  readonly checks?: readonly (WireCheck | WireCoordinationCheck)[];
  readonly mutations: readonly WireMutation[];
  /** Messages enqueued if and only if the operation applies. */
  readonly enqueues?: readonly WireEnqueue[];
  readonly session?: WireSession;
  /** Messages published if and only if the operation applies (pub/sub, issue 18). */
  readonly publishes?: readonly WireAtomicPublish[];
  /** Deliveries acked if and only if the operation applies (generation-checked; a finished one refuses it with `messageFinished`). */
  readonly acks?: readonly WireAtomicAck[];
}

/** `POST /v1/kv/watch`: a stream of the keys' entries, now and after every change. */
export interface WatchRequest {
  /** 1 to 10 keys. */
  readonly keys: readonly WireKey[];
}
/** One line of the `/v1/kv/watch` stream: an entry per watched key, in order. */
export interface WatchFrame {
  readonly entries: readonly WireEntry[];
}

/** A member as `/v1/cluster/status` reports it (the one definition: `cluster.ts`). */
export type WireMember = ClusterMember;

/** Reply to `GET /v1/cluster/status` (the one definition: `cluster.ts`). */
export type StatusResponse = ClusterStatus;

/** Reply to `GET /v1/cluster/members`. */
export interface MembersResponse {
  /** Id of the leader, when known. */
  readonly leader: string | null;
  /** The members. */
  readonly members: readonly WireMember[];
}

/** Reply to `GET /v1/cluster/ticket`. */
export interface TicketResponse {
  readonly ticket: string;
}

/** `POST /v1/cluster/add-learner`: where the new node is reached. */
export interface AddLearnerRequest {
  /** Id of the node. */
  readonly nodeId: string;
  /** Its HTTP API URL. */
  readonly httpUrl: string;
  /** Host of its QUIC peer listener. */
  readonly quicHost: string;
  /** UDP port of its QUIC peer listener. */
  readonly quicPort: number;
  readonly nodeKey: string;
  readonly certificateHash: string;
}

/** `POST /v1/cluster/promote`, `/remove`, `/transfer-leader` */
export interface NodeIdRequest {
  /** Id of the node. */
  readonly nodeId: string;
}

/** Reply to admin calls that succeeded. */
export interface OkResponse {
  /** The write applied. */
  readonly ok: true;
}

/** Reply to `GET /health`. */
export interface HealthResponse {
  readonly ok: boolean;
  readonly reason: string | null;
}

/** Every error reply: `{ error: { code, message, details } }`. */
export interface ErrorBody {
  /** The error. */
  readonly error: {
    /** The error code. */
    readonly code: ErrorCode;
    /** One readable sentence, std style: `Cannot set key: value too large (max 65536 bytes)`. */
    readonly message: string;
    /** Machine-readable context, by code: see {@linkcode ErrorDetails}. */
    readonly details: ErrorDetails;
  };
}

/**
 * Context by code: `checkFailed` → `failedChecks`; `notLeader` →
 * `leaderUrl`; `limitExceeded` → `limit`, `max`; `bodyTooLarge` →
 * `max`; `unavailable`/`notFound` may carry nothing.
 */
export interface ErrorDetails {
  /** `checkFailed`: indexes of the failing checks. */
  readonly failedChecks?: readonly number[];
  /** `notLeader`: the leader's URL, when known. */
  readonly leaderUrl?: string | null;
  /** `limitExceeded`: the limit's name. */
  readonly limit?: string;
  /** `limitExceeded`, `bodyTooLarge`: the limit's maximum. */
  readonly max?: number;
  /** Admin refusals: the node's reason code. */
  readonly reason?: string;
  /** Other context. */
  readonly [name: string]: unknown;
}

export type {
  ClusterMember,
  ClusterStatus,
  HealthStatus,
  NodeAddress,
} from "./cluster.ts";
