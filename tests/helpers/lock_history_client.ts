/**
 * Child program of `tests/process_lock_test.ts`: one lock client. It loops
 * until its deadline: grant a lease (TTL 3 s, kept alive every second in the
 * background) → acquire lock `name` with it → read `["reg"]` → "work" for
 * `workMs` → write `["reg"]` (with `checkFence(name, token)` when fenced) →
 * release. It never checks its own belief of the lease before writing:
 * a holder paused past its TTL writes as soon as it runs again, as a
 * process paused by GC or the OS would. It prints one JSON
 * {@linkcode LockEvent} per line on stdout.
 *
 * Speaks the HTTP protocol directly (`src/protocol/http_api*.ts`), so it
 * runs with only `--allow-net=127.0.0.1`.
 *
 * Usage: deno run --allow-net=127.0.0.1 lock_history_client.ts <json options>
 *
 * @module
 */
import type {
  AtomicRequest,
  CommitResponse,
  ErrorBody,
  GetResponse,
} from "../../src/protocol/http_api.ts";
import type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LockAcquireResponse,
} from "../../src/protocol/http_api_leases.ts";
import type { LockEvent } from "./lock_history.ts";

/** What the parent passes as the one argument (JSON). */
export interface LockClientOptions {
  readonly client: number;
  readonly urls: readonly string[];
  readonly token: string;
  /** The lock's name. */
  readonly name: string;
  /** Write with `checkFence` (false: the control run). */
  readonly fenced: boolean;
  /** Epoch ms after which no new round starts. */
  readonly untilMs: number;
  /** The lease's TTL, ms. */
  readonly ttlMs: number;
  /** Pause between the read and the write, ms. */
  readonly workMs: number;
}

const REQUEST_TIMEOUT_MS = 2_000;
const ACQUIRE_WAIT_MS = 1_500;

/** An HTTP answer: its status and decoded JSON body. */
interface Answer<T> {
  readonly status: number;
  readonly body: T | ErrorBody | null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function report(event: LockEvent): void {
  console.log(JSON.stringify(event));
}

function errorCode(body: unknown): string | null {
  const error = (body as ErrorBody | null)?.error;
  return typeof error?.code === "string" ? error.code : null;
}

class Client {
  readonly #options: LockClientOptions;
  #node = 0;
  /** The current lease, or null when it must be granted (again). */
  lease: string | null = null;

  constructor(options: LockClientOptions) {
    this.#options = options;
    this.#node = options.client % options.urls.length;
  }

  /**
   * POSTs `body` to `path` on the current node. A network error or timeout
   * throws (the caller decides what it means); 421 and 503 move to the next
   * node for the next call.
   */
  async post<T>(
    path: string,
    body: unknown,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<Answer<T>> {
    const url = this.#options.urls[this.#node]!;
    try {
      const response = await fetch(`${url}${path}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${this.#options.token}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.text();
      const answer = {
        status: response.status,
        body: text === "" ? null : JSON.parse(text),
      };
      if (response.status === 421 || response.status === 503) this.next();
      return answer;
    } catch (error) {
      this.next();
      throw error;
    }
  }

  next(): void {
    this.#node = (this.#node + 1) % this.#options.urls.length;
  }

  /** Grants a lease, trying nodes until one answers. */
  async grant(): Promise<string> {
    for (;;) {
      try {
        const answer = await this.post<LeaseGrantResponse>(
          "/v1/leases/grant",
          { ttlMs: this.#options.ttlMs },
        );
        if (answer.status === 200) {
          return (answer.body as LeaseGrantResponse).id;
        }
      } catch {
        // No answer: a lease may have been granted; it expires unused.
      }
      await sleep(100);
    }
  }

  /** Keeps the current lease alive every TTL/3; forgets it once it is gone. */
  async keepAlive(stop: () => boolean): Promise<void> {
    while (!stop()) {
      await sleep(this.#options.ttlMs / 3);
      const lease = this.lease;
      if (lease === null) continue;
      try {
        const answer = await this.post<LeaseKeepAliveResponse>(
          "/v1/leases/keepalive",
          { ids: [lease] },
        );
        const entry = answer.status === 200
          ? (answer.body as LeaseKeepAliveResponse).leases[0]
          : undefined;
        if (
          (entry !== undefined && "error" in entry) ||
          errorCode(answer.body) === "leaseNotFound"
        ) {
          if (this.lease === lease) this.lease = null;
        }
      } catch {
        // Tried again at the next period.
      }
    }
  }

  /** Acquires the lock with the current lease; null when the lease is gone. */
  async acquire(lease: string): Promise<string | null> {
    const name = this.#options.name;
    while (Date.now() < this.#options.untilMs && this.lease === lease) {
      try {
        const answer = await this.post<LockAcquireResponse>(
          "/v1/locks/acquire",
          { name, lease, waitMs: ACQUIRE_WAIT_MS },
          ACQUIRE_WAIT_MS + REQUEST_TIMEOUT_MS,
        );
        if (answer.status === 200) {
          const body = answer.body as LockAcquireResponse;
          if (body.granted) return body.token;
          continue;
        }
        if (errorCode(answer.body) === "leaseNotFound") return null;
      } catch {
        // No answer: ask again (acquiring again with the lease answers the same grant).
      }
      await sleep(50);
    }
    return null;
  }

  /** One round's read, work and write; returns after the write's outcome. */
  async readThenWrite(token: string): Promise<void> {
    const { client, name, fenced, workMs } = this.#options;
    try {
      await this.post<GetResponse>("/v1/kv/get", { key: ["reg"] });
    } catch {
      // The read is the workload's; its answer does not decide anything.
    }
    await sleep(workMs);
    const request: AtomicRequest = {
      checks: fenced ? [{ fence: { name, token } }] : [],
      mutations: [{
        type: "set",
        key: ["reg"],
        value: {
          encoding: "bytes",
          data: btoa(JSON.stringify({ client, token })),
        },
      }],
    };
    let event: LockEvent;
    try {
      const answer = await this.post<CommitResponse>("/v1/kv/atomic", request);
      const code = errorCode(answer.body);
      event = answer.status === 200
        ? {
          type: "write",
          client,
          name,
          token,
          outcome: "accepted",
          versionstamp: (answer.body as CommitResponse).versionstamp,
        }
        : {
          type: "write",
          client,
          name,
          token,
          outcome: code === "checkFailed"
            ? "refused"
            : code === "outcomeUnknown"
            ? "unknown"
            : "failed",
        };
    } catch {
      event = { type: "write", client, name, token, outcome: "unknown" };
    }
    report(event);
  }

  async release(token: string): Promise<void> {
    try {
      await this.post("/v1/locks/release", { name: this.#options.name, token });
    } catch {
      // Its lease ends it otherwise.
    }
  }
}

async function run(options: LockClientOptions): Promise<void> {
  const client = new Client(options);
  let done = false;
  const keeper = client.keepAlive(() => done);
  while (Date.now() < options.untilMs) {
    const lease = client.lease ?? await client.grant();
    client.lease = lease;
    const token = await client.acquire(lease);
    if (token === null) {
      if (client.lease === lease) client.lease = null;
      continue;
    }
    report({
      type: "grant",
      client: options.client,
      name: options.name,
      lease,
      token,
    });
    await client.readThenWrite(token);
    await client.release(token);
  }
  done = true;
  await keeper;
}

if (import.meta.main) {
  const text = Deno.args[0];
  if (text === undefined) {
    throw new TypeError("Usage: lock_history_client.ts <json options>");
  }
  try {
    await run(JSON.parse(text) as LockClientOptions);
  } catch (error) {
    report({
      type: "error",
      client: -1,
      message: String((error as Error)?.message ?? error),
    });
    Deno.exit(1);
  }
}
