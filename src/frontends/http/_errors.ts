/**
 * The mapping of every error the HTTP API routes can meet (the boundary
 * error {@linkcode HttpApiError} lives in frontends/common) to the typed
 * error body `{ error: { code, message, details } }`.
 *
 * @module
 */
import {
  ERROR_STATUS,
  type ErrorBody,
  type ErrorCode,
  type ErrorDetails,
} from "../../protocol/http_api.ts";
import { WireFormatError } from "../../protocol/http_api_codec.ts";
import {
  KvInvalidError,
  KvLimitError,
  KvUnsupportedError,
} from "../../model/errors.ts";
import {
  KvOutcomeUnknownError,
  KvUnavailableError,
} from "../../services/kv/api.ts";
import { ClusterAdminError } from "../../node/node_api.ts";
import { StreamBudgetError } from "../common/stream_budget.ts";
import { HttpApiError } from "../common/http_api_error.ts";

export { HttpApiError };

const ADMIN_CODES: Readonly<Record<string, ErrorCode>> = {
  notLeader: "notLeader",
  changePending: "changePending",
  alreadyMember: "changePending",
  notCaughtUp: "notCaughtUp",
  unknownNode: "unknownNode",
  invalid: "invalid",
};

/** Maps any error to its API code, message and details. */
export function classifyError(
  error: unknown,
): { code: ErrorCode; message: string; details: ErrorDetails } {
  if (error instanceof HttpApiError) {
    return { code: error.code, message: error.message, details: error.details };
  }
  if (error instanceof WireFormatError) {
    return { code: error.code, message: error.message, details: {} };
  }
  if (error instanceof KvLimitError) {
    return {
      code: "limitExceeded",
      message: error.message,
      details: { limit: error.limit, max: error.max },
    };
  }
  if (error instanceof KvInvalidError) {
    return { code: "invalid", message: error.message, details: {} };
  }
  if (error instanceof KvUnsupportedError) {
    return { code: "unsupported", message: error.message, details: {} };
  }
  if (error instanceof KvUnavailableError) {
    return { code: "unavailable", message: error.message, details: {} };
  }
  if (error instanceof KvOutcomeUnknownError) {
    return { code: "outcomeUnknown", message: error.message, details: {} };
  }
  if (error instanceof StreamBudgetError) {
    return {
      code: error.scope === "node" ? "unavailable" : "tooManyStreams",
      message: error.message,
      details: { max: error.max },
    };
  }
  if (error instanceof ClusterAdminError) {
    return {
      code: ADMIN_CODES[error.code] ?? "invalid",
      message: error.message,
      details: error.code === "notLeader"
        ? { leaderUrl: error.leaderHttpUrl }
        : { reason: error.code },
    };
  }
  return {
    code: "internal",
    message: "Internal error: see the node's log",
    details: {},
  };
}

/** The status and body of an error reply. */
export function errorReply(
  error: unknown,
): { status: number; body: ErrorBody } {
  const { code, message, details } = classifyError(error);
  return {
    status: ERROR_STATUS[code],
    body: { error: { code, message, details } },
  };
}
