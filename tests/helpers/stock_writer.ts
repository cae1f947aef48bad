/**
 * Starts `process_stock_writer.ts` (stock `Deno.openKv` writing `["stock",
 * n] = "value-n"` for n = 0…count-1, each with a sum on `["stock-count"]`)
 * as a child process, and collects what it reports. Used by the events and
 * hooks process tests. The child is killed after two minutes at most.
 *
 * @module
 */
import { lines } from "./stream_lines.ts";

const WRITER = new URL("./process_stock_writer.ts", import.meta.url).pathname;

/** A running stock writer. */
export interface StockWriter {
  /** Acknowledged writes: n → versionstamp. */
  readonly acked: Map<number, string>;
  /** Lines reporting a wrong answer or a write that threw. */
  readonly problems: string[];
  /** Lines reporting a wrong answer only. */
  readonly wrong: string[];
  /** Waits until it made its `count` writes (or exited), then for its exit. */
  done(): Promise<void>;
  /** Stops it after the write in flight and waits for its exit. */
  finish(): Promise<void>;
}

/** Starts the stock writer against the KV Connect URL `url`. */
export function stockWriter(
  url: string,
  token: string,
  count: number,
): StockWriter {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-env=DENO_KV_ACCESS_TOKEN",
      WRITER,
      url,
      String(count),
    ],
    env: { DENO_KV_ACCESS_TOKEN: token, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).spawn();
  const acked = new Map<number, string>();
  const problems: string[] = [];
  const wrong: string[] = [];
  let wroteAll: () => void = () => {};
  const allWritten = new Promise<void>((resolve) => wroteAll = resolve);
  const readers = Promise.all([
    lines(child.stdout, (line) => {
      const event = JSON.parse(line);
      if ("ack" in event) acked.set(event.ack, event.versionstamp);
      if ("wrong" in event) wrong.push(event.wrong);
      if ("wrong" in event || "error" in event) problems.push(line);
      if ("done" in event) wroteAll();
    }),
    lines(child.stderr, () => {}),
  ]);
  const finish = async () => {
    await child.stdin.close().catch(() => {});
    await child.status;
    await readers;
  };
  return {
    acked,
    problems,
    wrong,
    async done() {
      await Promise.race([allWritten, child.status]);
      await finish();
    },
    finish,
  };
}
