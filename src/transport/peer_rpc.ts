/**
 * The one place that dispatches peer requests: each request kind
 * (`PeerRequest["method"]`, forwarded proposals today) has at most one
 * typed handler; a request of a kind nobody handles is answered
 * "unsupported". The runner registers its handlers here and attaches the
 * router to its transport.
 *
 * @module
 */
import type {
  PeerRequest,
  PeerRequestMethod,
  PeerResult,
} from "../protocol/envelope.ts";
import type { NodeId } from "../raft/types.ts";
import type { PeerTransport } from "./types.ts";

/** The request of one kind. */
export type PeerRequestOf<M extends PeerRequestMethod> = Extract<
  PeerRequest,
  { readonly method: M }
>;

/** Answers one kind of request from `from`. */
export type PeerRequestHandler<M extends PeerRequestMethod> = (
  request: PeerRequestOf<M>,
  from: NodeId,
) => Promise<PeerResult>;

/** A handler is already registered for the kind. */
export class PeerHandlerTakenError extends Error {
  override name = "PeerHandlerTakenError";
}

/** Typed dispatch of peer requests by kind. */
export class PeerRpcRouter {
  readonly #handlers = new Map<
    PeerRequestMethod,
    (request: PeerRequest, from: NodeId) => Promise<PeerResult>
  >();

  /**
   * Registers the handler of `method`.
   *
   * @throws {PeerHandlerTakenError} When `method` already has one.
   */
  handle<M extends PeerRequestMethod>(
    method: M,
    handler: PeerRequestHandler<M>,
  ): void {
    if (this.#handlers.has(method)) {
      throw new PeerHandlerTakenError(
        `Cannot handle peer request '${method}' as it already has a handler`,
      );
    }
    this.#handlers.set(
      method,
      (request, from) => handler(request as PeerRequestOf<M>, from),
    );
  }

  /** Answers `request` with its kind's handler, or "unsupported". */
  dispatch(request: PeerRequest, from: NodeId): Promise<PeerResult> {
    const handler = this.#handlers.get(request.method);
    if (handler === undefined) {
      return Promise.resolve({
        ok: false,
        code: "unsupported",
        message: `Unsupported request '${request.method}'`,
        leader: null,
      });
    }
    return handler(request, from);
  }

  /** Makes this router the transport's request handler. */
  attach(transport: PeerTransport): void {
    transport.onRequest((request, from) => this.dispatch(request, from));
  }
}
