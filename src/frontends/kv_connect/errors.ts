/**
 * The one boundary error of the KV Connect server and the answers it maps
 * to. Status codes are denokv's; so are the messages of the protocol-level
 * errors (headers, tokens, protobuf, versionstamps). Limit errors carry the
 * message Deno's own client throws for the same limit, which names it.
 *
 * @module
 */

/** HTTP statuses the KV Connect server answers errors with. */
export type KvConnectErrorStatus =
  | 400
  | 401
  | 404
  | 409
  | 413
  | 429
  | 500
  | 503;

/**
 * A request the KV Connect server refuses, with the HTTP status and the
 * plain-text message it answers. Mapped to a response in one place
 * (`app.onError`).
 */
export class KvConnectError extends Error {
  override name = "KvConnectError";
  /** The HTTP status of the answer. */
  readonly status: KvConnectErrorStatus;

  constructor(
    status: KvConnectErrorStatus,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.status = status;
  }
}

/** denokv's messages, verbatim, for the conditions denokv also detects. */
export const KV_CONNECT_MESSAGES = {
  notFound: "Resource not found.",
  malformedAuthorizationHeader: "Malformed authorization header.",
  invalidAccessToken: "Invalid access token.",
  invalidDatabaseId: "Invalid database id.",
  invalidProtocolVersion: "Expected protocol version 2 or 3.",
  minimumProtocolVersion:
    "The server requires at least protocol version 2. Use Deno 1.38.0 or newer.",
  noMatchingProtocolVersion:
    "The server could not negotiate a protocol version. The server requires protocol version 2 or 3.",
  invalidReadRangeLimit:
    "The read range limit of the snapshot read request is invalid.",
  invalidVersionstamp: "Invalid versionstamp.",
  invalidMutationKind: "Invalid mutation kind or arguments.",
  invalidMutationExpireAt: "Invalid mutation expire at.",
  invalidMutationEnqueueDeadline: "Invalid mutation enqueue deadline.",
  tryAgain: "The server is temporarially unavailable, try again later.",
  internalServerError: "An internal server error occurred.",
} as const;

/** `Request protobuf is invalid: <detail>.` (400), denokv's wording. */
export function invalidProtobuf(
  detail: string,
  cause?: unknown,
): KvConnectError {
  return new KvConnectError(400, `Request protobuf is invalid: ${detail}.`, {
    cause,
  });
}

/** `The value encoding <n> is unknown.` (400), denokv's wording. */
export function unknownValueEncoding(encoding: number): KvConnectError {
  return new KvConnectError(400, `The value encoding ${encoding} is unknown.`);
}
