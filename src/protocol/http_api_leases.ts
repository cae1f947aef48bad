/**
 * The coordination part of Aspen's HTTP protocol (issue 16): leases, locks
 * and semaphores, elections. Every route is `POST` with a JSON (or
 * MessagePack) body behind the bearer check, except `GET
 * /v1/elections/observe?name=` (`text/event-stream`). Routes are in
 * {@link ./http_api.ts} (`ROUTES`), error codes in its `ERROR_STATUS`
 * (`leaseNotFound` 404, `notHolder` 409, `permitsMismatch` 409), limits in
 * {@linkcode COORDINATION_LIMITS}.
 *
 * - A **lease id** is 16 lowercase hex digits; ids are not secrets.
 * - A **token** is the granting entry's versionstamp as 20 lowercase hex
 *   digits (the entry's revision, then a counter): strictly increasing per
 *   lock name, identical on every replica. `revision` fields are log
 *   indexes (the revision a grant or change applied at).
 * - Names are 1–256 UTF-8 bytes without control characters.
 *
 * @module
 */

/** Limits of leases, locks and elections; a request beyond one is refused (4xx), nothing changed. */
export const COORDINATION_LIMITS = {
  /** Leases the cluster holds at most. */
  leasesMax: 100_000,
  /** Keys attached to one lease at most. */
  leaseKeysMax: 10_000,
  /** Shortest TTL a grant may ask for, ms (raised to 3 election timeouts). */
  leaseTtlMsMin: 1_000,
  /** Longest TTL, ms (7 days). */
  leaseTtlMsMax: 604_800_000,
  /** Ids of one keep-alive call at most. */
  keepAliveIdsMax: 1_000,
  /** Leases of one expiry entry at most. */
  expireIdsMax: 1_000,
  /** Entries of one lease list page at most (default 100). */
  leaseListLimitMax: 1_000,
  /** Locks, semaphores and elections the cluster holds at most. */
  locksMax: 100_000,
  /** Bytes of a lock or election name (UTF-8), at least 1. */
  nameBytesMax: 256,
  /** Waiters queued per name at most. */
  waitersMax: 10_000,
  /** Permits of one semaphore at most (a lock has 1). */
  permitsMax: 10_000,
  /** Longest wait of one acquire or campaign call, ms. */
  waitMsMax: 60_000,
  /** Bytes of an election value at most (its UTF-8 text). */
  valueBytesMax: 64 * 1024,
  /** Observe streams one node serves at once. */
  observeStreamsMax: 1_000,
} as const;

/** A lease id: 16 lowercase hex digits. */
export const LEASE_ID_PATTERN = /^[0-9a-f]{16}$/;
/** A token: 20 lowercase hex digits (a versionstamp). */
export const TOKEN_PATTERN = /^[0-9a-f]{20}$/;

// --- Leases --------------------------------------------------------------

/** `POST /v1/leases/grant` */
export interface LeaseGrantRequest {
  /** 1,000 to 604,800,000; raised to at least 3 election timeouts. */
  readonly ttlMs: number;
  /** The id to use (16 hex digits). Default: random, chosen by the leader. */
  readonly id?: string;
}
/** Reply to `POST /v1/leases/grant`: the id and the TTL granted (maybe raised). */
export interface LeaseGrantResponse {
  readonly id: string;
  readonly ttlMs: number;
}

/** `POST /v1/leases/keepalive`: sets each lease's deadline to now + TTL on the leader. */
export interface LeaseKeepAliveRequest {
  /** 1 to 1,000 ids. */
  readonly ids: readonly string[];
}
/** One lease's answer to a keep-alive. */
export type WireLeaseKeepAlive =
  | {
    readonly id: string;
    readonly ttlMs: number;
    /** The leader's view of the time left, ms. */
    readonly remainingMs: number;
  }
  | { readonly id: string; readonly error: "leaseNotFound" };
/** Reply to `POST /v1/leases/keepalive`, in request order. */
export interface LeaseKeepAliveResponse {
  readonly leases: readonly WireLeaseKeepAlive[];
}

/** `POST /v1/leases/revoke`: deletes the lease, its keys and its holds. */
export interface LeaseRevokeRequest {
  readonly id: string;
}
/** Reply to `POST /v1/leases/revoke`. */
export interface LeaseRevokeResponse {
  readonly keysDeleted: number;
}

/** `POST /v1/leases/ttl` */
export interface LeaseTtlRequest {
  readonly id: string;
  /** List the attached keys too. Default false. */
  readonly keys?: boolean;
}
/** Reply to `POST /v1/leases/ttl` (404 `leaseNotFound` for an unknown id). */
export interface LeaseTtlResponse {
  readonly id: string;
  readonly ttlMs: number;
  /** The leader's view of the time left, ms. */
  readonly remainingMs: number;
  /** The attached keys (wire keys, as `/v1/kv/*` carries them), when asked. */
  readonly keys?: readonly unknown[];
}

/** `POST /v1/leases/list` */
export interface LeaseListRequest {
  /** Resume after this cursor (from the previous page). */
  readonly cursor?: string;
  /** 1 to 1,000. Default 100. */
  readonly limit?: number;
}
/** One lease in a list. */
export interface WireLeaseInfo {
  readonly id: string;
  readonly ttlMs: number;
  /** Revision (log index) of its grant. */
  readonly revision: number;
  /** Keys attached. */
  readonly keyCount: number;
}
/** Reply to `POST /v1/leases/list`: ids in order; cursor null at the end. */
export interface LeaseListResponse {
  readonly leases: readonly WireLeaseInfo[];
  readonly cursor: string | null;
}

// --- Locks and semaphores -------------------------------------------------

/** `POST /v1/locks/acquire`: queues the lease for `name` and waits up to `waitMs`. */
export interface LockAcquireRequest {
  readonly name: string;
  /** The holding lease (16 hex digits); it must exist. */
  readonly lease: string;
  /** 1 to 10,000; the first acquire of a name fixes it. Default 1 (a lock). */
  readonly permits?: number;
  /** 0 to 60,000. Default 0 (answer at once). */
  readonly waitMs?: number;
}
/**
 * Reply to `POST /v1/locks/acquire`: granted (with its token), or still
 * queued at `position` (0: next in line) after `waitMs`. Acquiring again with
 * a lease that holds answers the same grant.
 */
export type LockAcquireResponse =
  | {
    readonly granted: true;
    readonly name: string;
    readonly token: string;
    readonly lease: string;
    /** Revision of the grant. */
    readonly revision: number;
  }
  | {
    readonly granted: false;
    readonly name: string;
    readonly position: number;
  };

/** `POST /v1/locks/cancel`: leaves the queue; a grant won meanwhile is released. */
export interface LockCancelRequest {
  readonly name: string;
  readonly lease: string;
}
/** Reply to `POST /v1/locks/cancel`: whether a waiter or a grant was removed. */
export interface LockCancelResponse {
  readonly removed: "waiter" | "grant" | null;
}

/** `POST /v1/locks/release`: 409 `notHolder` when `token` does not hold `name`. */
export interface LockReleaseRequest {
  readonly name: string;
  readonly token: string;
}
/** Reply to `POST /v1/locks/release` (the next waiters are granted in the same entry). */
export interface LockReleaseResponse {
  readonly released: true;
}

/** `POST /v1/locks/status` */
export interface LockStatusRequest {
  readonly name: string;
}
/** Reply to `POST /v1/locks/status` (a name never acquired: permits 0, no holders). */
export interface LockStatusResponse {
  readonly name: string;
  readonly permits: number;
  readonly holders: readonly {
    readonly token: string;
    readonly lease: string;
    readonly revision: number;
  }[];
  readonly waiters: readonly {
    readonly lease: string;
    readonly revision: number;
  }[];
}

// --- Elections -------------------------------------------------------------

/** `POST /v1/elections/campaign`: a lock of one permit whose holder carries a value. */
export interface ElectionCampaignRequest {
  readonly name: string;
  /** At most 64 KiB of UTF-8. */
  readonly value: string;
  readonly lease: string;
  /** 0 to 60,000. Default 0. */
  readonly waitMs?: number;
}
/** Reply to `POST /v1/elections/campaign`. */
export type ElectionCampaignResponse =
  | {
    readonly elected: true;
    readonly name: string;
    readonly token: string;
    readonly lease: string;
    readonly value: string;
    readonly revision: number;
  }
  | {
    readonly elected: false;
    readonly name: string;
    readonly position: number;
  };

/** `POST /v1/elections/proclaim`: a new value from the leader; 409 `notHolder` otherwise. */
export interface ElectionProclaimRequest {
  readonly name: string;
  readonly token: string;
  readonly value: string;
}
/** `POST /v1/elections/resign`: 409 `notHolder` when `token` does not lead. */
export interface ElectionResignRequest {
  readonly name: string;
  readonly token: string;
}
/** `POST /v1/elections/leader` */
export interface ElectionLeaderRequest {
  readonly name: string;
}
/** The leader of an election. */
export interface WireElectionLeader {
  readonly value: string;
  readonly token: string;
  readonly lease: string;
  /** Revision of the grant or of the last proclaim. */
  readonly revision: number;
}
/** Reply to `POST /v1/elections/leader` (and to proclaim). */
export interface ElectionLeaderResponse {
  readonly leader: WireElectionLeader | null;
}
/**
 * One event of `GET /v1/elections/observe?name=` (SSE `data:` line, its `id:`
 * the revision, resumable with `Last-Event-ID`): the current leader first,
 * then each change in revision order.
 */
export interface ElectionObserveEvent {
  readonly leader: WireElectionLeader | null;
  readonly revision: number;
}

// --- KV additions -------------------------------------------------------------

/** Checks of `/v1/kv/atomic` beyond `WireCheck`'s versionstamp check. */
export type WireCoordinationCheck =
  /** Passes only while `token` is a current holder of lock or election `name`. */
  | { readonly fence: { readonly name: string; readonly token: string } }
  /** Passes only while the lease exists. */
  | { readonly lease: string };
