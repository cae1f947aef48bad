/**
 * The HTTP API's one boundary error: what a route (or the auth middleware,
 * or the composition root) raises on purpose, carrying its API code. The
 * HTTP front end maps it to the typed body `{ error: { code, message, details } }`.
 *
 * @module
 */
import type { ErrorCode, ErrorDetails } from "../../protocol/http_api.ts";

/** An error a route raises on purpose, carrying its API code. */
export class HttpApiError extends Error {
  override name = "HttpApiError";
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(
    code: ErrorCode,
    message: string,
    details: ErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}
