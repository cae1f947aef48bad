/**
 * One budget for every long-lived stream a node serves (HTTP watch, KV
 * Connect watch, WebTransport watch streams, queue listens, and any future
 * SSE stream): at most `nodeMax` at once on the node and `perTokenMax` per
 * access token, so one client cannot take every slot.
 *
 * @module
 */

/** Default streams one node serves at once. */
export const STREAMS_PER_NODE_MAX = 1000;
/** Default streams one access token may hold at once. */
export const STREAMS_PER_TOKEN_MAX = 500;

/** Refused: the node's budget (`scope: "node"`, 503) or the token's (`"token"`, 429) is used up. */
export class StreamBudgetError extends Error {
  override name = "StreamBudgetError";
  constructor(readonly scope: "node" | "token", readonly max: number) {
    super(
      scope === "node"
        ? `Cannot open a stream: the node serves ${max} long-lived streams already; retry later`
        : `Cannot open a stream: this token holds ${max} long-lived streams already; close some or retry later`,
    );
  }
}

/** A held slot; `release` is idempotent. */
export interface StreamLease {
  release(): void;
}

/** Counts open long-lived streams per node and per token. */
export class StreamBudget {
  readonly nodeMax: number;
  readonly perTokenMax: number;
  #open = 0;
  readonly #perToken = new Map<string, number>();

  /** @throws {RangeError} When a bound is not a positive integer. */
  constructor(
    nodeMax = STREAMS_PER_NODE_MAX,
    perTokenMax = STREAMS_PER_TOKEN_MAX,
  ) {
    for (
      const [name, value] of [["nodeMax", nodeMax], [
        "perTokenMax",
        perTokenMax,
      ]] as const
    ) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(
          `Cannot create stream budget as '${name}' must be a positive integer: current value is ${value}`,
        );
      }
    }
    this.nodeMax = nodeMax;
    this.perTokenMax = perTokenMax;
  }

  /** Streams open now. */
  get open(): number {
    return this.#open;
  }

  /**
   * Takes a slot for `token` (the bearer token, or "" without one).
   *
   * @throws {StreamBudgetError} When the node or the token is at its bound.
   */
  acquire(token: string): StreamLease {
    if (this.#open >= this.nodeMax) {
      throw new StreamBudgetError("node", this.nodeMax);
    }
    const held = this.#perToken.get(token) ?? 0;
    if (held >= this.perTokenMax) {
      throw new StreamBudgetError("token", this.perTokenMax);
    }
    this.#open++;
    this.#perToken.set(token, held + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#open--;
        const left = (this.#perToken.get(token) ?? 1) - 1;
        if (left === 0) this.#perToken.delete(token);
        else this.#perToken.set(token, left);
      },
    };
  }
}
