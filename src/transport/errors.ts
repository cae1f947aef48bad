/**
 * Typed errors of the peer transport, for conditions callers handle.
 *
 * @module
 */
import type { PeerResult } from "../protocol/envelope.ts";

/** No connection to the peer could be made or kept. */
export class PeerUnreachableError extends Error {
  override name = "PeerUnreachableError";
  /** The peer that could not be reached. */
  readonly peer: string;

  constructor(peer: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.peer = peer;
  }
}

/** A request got no answer in time. */
export class RequestTimeoutError extends Error {
  override name = "RequestTimeoutError";
  /** The peer asked. */
  readonly peer: string;
  /** How long the caller waited, in milliseconds. */
  readonly timeoutMs: number;

  constructor(peer: string, method: string, timeoutMs: number) {
    super(
      `Cannot complete '${method}' request to '${peer}' as no answer came in time: waited ${timeoutMs} ms`,
    );
    this.peer = peer;
    this.timeoutMs = timeoutMs;
  }
}

/** The caller gave up on a request (its signal was aborted). */
export class RequestAbortedError extends Error {
  override name = "RequestAbortedError";
  /** The peer asked. */
  readonly peer: string;

  constructor(peer: string, method: string, reason: string) {
    super(`Cannot complete '${method}' request to '${peer}': ${reason}`);
    this.peer = peer;
  }
}

/** The text of an aborted signal's reason. */
export function abortReason(signal: AbortSignal): string {
  const reason = signal.reason as unknown;
  return reason instanceof Error ? reason.message : String(reason);
}

/** The transport was closed before or while the operation ran. */
export class TransportClosedError extends Error {
  override name = "TransportClosedError";
}

/** Too many requests are already waiting for answers. */
export class TooManyRequestsError extends Error {
  override name = "TooManyRequestsError";
}

/** The peer answered a request with an error, rebuilt from the wire. */
export class RemoteError extends Error {
  override name = "RemoteError";
  /** The peer's stable error code, e.g. `notLeader`. */
  readonly code: string;
  /** The leader the peer knows of, to retry there. */
  readonly leader: string | null;

  constructor(code: string, message: string, leader: string | null) {
    super(message);
    this.code = code;
    this.leader = leader;
  }

  /** Rebuilds the error from a failed {@linkcode PeerResult}. */
  static fromResult(result: PeerResult & { ok: false }): RemoteError {
    return new RemoteError(result.code, result.message, result.leader);
  }
}
