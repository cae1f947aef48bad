/**
 * What the webhook worker tests share: a receiver on 127.0.0.1 that
 * verifies every request with `standardwebhooks` (against each secret it
 * is told about) and answers as the test scripts it per path, and
 * `aspen worker start` as a real process with the permissions
 * `cli/permissions.ts` grants it (the network narrowed to loopback).
 *
 * @module
 */
import { Webhook } from "standardwebhooks";
import { grantFlags, grantsFor } from "../../cli/permissions.ts";
import { lines } from "./stream_lines.ts";

const CLI = new URL("../../cli/aspen.ts", import.meta.url).pathname;
const SRC = new URL("../../src", import.meta.url).pathname;

/** One request as the receiver saw it. */
export interface Received {
  readonly path: string;
  readonly webhookId: string;
  readonly attempt: number;
  readonly replay: string | null;
  readonly body: Record<string, unknown>;
  /** Per secret given to {@linkcode Receiver.secrets}: did it verify. */
  readonly verified: readonly boolean[];
  readonly status: number;
}

/** How the receiver answers one request: a status and headers. */
export type Answer = (request: {
  readonly webhookId: string;
  readonly attempt: number;
  readonly seen: number;
}) => AnswerValue | Promise<AnswerValue>;

/** A status and headers to answer with. */
export interface AnswerValue {
  readonly status: number;
  readonly headers?: Record<string, string>;
}

const okAnswer: Answer = () => ({ status: 200 });

/** A receiver of signed webhook requests. */
export class Receiver {
  /** Requests answered, in the order of their answers. */
  readonly received: Received[] = [];
  /** Requests as they arrived (answered or not yet). */
  readonly arrived: Omit<Received, "status">[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #answers = new Map<string, Answer>();
  readonly #secrets = new Map<string, string[]>();
  /** Requests seen per path and webhook id. */
  readonly #seen = new Map<string, number>();

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => this.#handle(request),
    );
  }

  /** The URL of `path` on this receiver. */
  url(path: string): string {
    return `http://127.0.0.1:${this.#server.addr.port}${path}`;
  }

  /** How `path` answers (default 200). */
  answer(path: string, answer: Answer): void {
    this.#answers.set(path, answer);
  }

  /** The secrets each request to `path` is verified against, in order. */
  secrets(path: string, secrets: string[]): void {
    this.#secrets.set(path, secrets);
  }

  /** The requests to `path`. */
  to(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  async #handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    const text = await request.text();
    const headers = Object.fromEntries(request.headers);
    const verified = (this.#secrets.get(path) ?? []).map((secret) => {
      try {
        new Webhook(secret).verify(text, headers);
        return true;
      } catch {
        return false;
      }
    });
    const webhookId = request.headers.get("webhook-id") ?? "";
    const key = `${path} ${webhookId}`;
    const seen = (this.#seen.get(key) ?? 0) + 1;
    this.#seen.set(key, seen);
    const attempt = Number(request.headers.get("aspen-attempt"));
    const pending = (this.#answers.get(path) ?? okAnswer)({
      webhookId,
      attempt,
      seen,
    });
    const arrived = {
      path,
      webhookId,
      attempt,
      replay: request.headers.get("aspen-replay"),
      body: JSON.parse(text),
      verified,
    };
    this.arrived.push(arrived);
    const answer = await pending;
    this.received.push({
      path,
      webhookId,
      attempt,
      replay: request.headers.get("aspen-replay"),
      body: JSON.parse(text),
      verified,
      status: answer.status,
    });
    return new Response(null, {
      status: answer.status,
      headers: answer.headers,
    });
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}

/** A running `aspen worker start`. */
export interface WorkerProcess {
  /** Its output lines so far (stdout and stderr). */
  readonly lines: string[];
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>;
  /** SIGKILL (no shutdown: its lease expires by itself), then waits for the exit. */
  kill(): Promise<void>;
}

/**
 * Starts `aspen worker start` with the permissions the launcher grants it
 * (`--allow-net` narrowed to loopback for the tests) and only `env`.
 */
export function startWorker(
  args: readonly string[],
  env: Record<string, string>,
): WorkerProcess {
  const cliArgs = ["worker", "start", ...args];
  const flags = grantFlags(grantsFor({
    args: cliArgs,
    env: (name) => env[name],
    srcDir: SRC,
  })).map((flag) =>
    flag === "--allow-net" ? "--allow-net=127.0.0.1,[::1]" : flag
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, CLI, ...cliArgs],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const readers = Promise.all([
    lines(child.stdout, (line) => output.push(line)),
    lines(child.stderr, (line) => output.push(line)),
  ]);
  let stopped: Promise<number> | null = null;
  return {
    lines: output,
    async kill(): Promise<void> {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await readers;
    },
    stop(): Promise<number> {
      stopped ??= (async () => {
        const killer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Already gone.
          }
        }, 20_000);
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        const status = await child.status;
        clearTimeout(killer);
        await readers;
        return status.code;
      })();
      return stopped;
    },
  };
}
