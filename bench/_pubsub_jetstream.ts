/**
 * The JetStream side of `bench:pubsub`: Debian's `nats-server` (2.9) with
 * `-js` on 127.0.0.1, its store in a temporary folder, driven by
 * `npm:nats` (nats.js 2.29). Every stream is file-stored, one replica,
 * default limits; JetStream's default `sync_interval` (2 minutes) applies,
 * so an acknowledged message is in the OS page cache, not yet fsynced.
 *
 * @module
 */
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  StorageType,
} from "nats";
import { freeTcpPorts } from "../src/node/provision.ts";
import { type Child, spawnChild, stopChild } from "./_processes.ts";
import type { PubsubConsumer, PubsubDriver } from "./_pubsub_load.ts";

const HOST = "127.0.0.1";
/** Ms the server gets to accept a connection with JetStream ready. */
const START_TIMEOUT_MS = 20_000;
/** Ms one fetch waits for its messages. */
const FETCH_EXPIRES_MS = 2_000;
/** The durable pull consumer's name. */
const CONSUMER = "bench";

/** The stream and subject of each publish row. */
const STREAMS = {
  publish: { name: "BENCH_PUBLISH", subject: "bench.publish" },
  "publish-batch": { name: "BENCH_BATCH", subject: "bench.batch" },
} as const;

/** Where `nats-server` is looked for: on PATH, then Debian's place. */
const NATS_SERVER_PATHS = [
  "nats-server",
  "/usr/sbin/nats-server",
  "/usr/bin/nats-server",
] as const;

/**
 * The `nats-server` binary's path and version, or why it cannot be used.
 *
 * @param paths Where to look, in order (default: PATH, then /usr/sbin, /usr/bin).
 */
export async function findNatsServer(
  paths: readonly string[] = NATS_SERVER_PATHS,
): Promise<
  { ok: true; path: string; version: string } | { ok: false; reason: string }
> {
  for (const path of paths) {
    try {
      const output = await new Deno.Command(path, {
        args: ["--version"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(output.stdout);
      const version = /v(\d+\.\d+\.\d+)/.exec(text)?.[1];
      if (output.success && version !== undefined) {
        return { ok: true, path, version };
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        return {
          ok: false,
          reason: `cannot run '${path}': ${(error as Error).message}`,
        };
      }
    }
  }
  return {
    ok: false,
    reason: "nats-server is not installed (apt-get install -y nats-server)",
  };
}

/** A running `nats-server -js`. */
export interface RunningJetStream {
  readonly url: string;
  readonly child: Child;
  /** Ends the server and removes its store. */
  stop(): Promise<void>;
}

/** Starts `nats-server -js` on a free loopback port with its store under `workDir`. */
export async function startJetStream(
  binary: string,
  workDir: string,
): Promise<RunningJetStream> {
  const root = await Deno.makeTempDir({ dir: workDir, prefix: "nats-" });
  const port = freeTcpPorts(HOST, 1)[0]!;
  const child = spawnChild("nats-server", binary, [
    "-js",
    "-a",
    HOST,
    "-p",
    String(port),
    "-sd",
    root,
  ]);
  const stop = async () => {
    await stopChild(child);
    await Deno.remove(root, { recursive: true }).catch(() => {});
  };
  const url = `nats://${HOST}:${port}`;
  try {
    await waitForJetStream(url, child);
    return { url, child, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function waitForJetStream(url: string, child: Child): Promise<void> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  let last = "no reply yet";
  while (performance.now() < deadline) {
    if (child.exited) {
      throw new Error(`nats-server exited: ${child.stderrTail()}`);
    }
    try {
      const nc = await connect({ servers: url, timeout: 1_000 });
      try {
        const jsm = await nc.jetstreamManager({ timeout: 1_000 });
        await jsm.getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `nats-server did not serve JetStream within ${START_TIMEOUT_MS} ms: ${last}`,
  );
}

/**
 * JetStream through nats.js: one connection per publisher (as Aspen's
 * publishers each hold their own HTTP connection) and one for the consumer.
 */
export class JetStreamDriver implements PubsubDriver {
  readonly calls;
  readonly #connections: NatsConnection[];
  readonly #clients: JetStreamClient[];
  readonly #manager: JetStreamManager;

  private constructor(
    connections: NatsConnection[],
    manager: JetStreamManager,
    batch: number,
  ) {
    this.#connections = connections;
    this.#clients = connections.map((c) => c.jetstream());
    this.#manager = manager;
    this.calls = {
      publish:
        "js.publish(subject, value) awaited: one PUB, one PubAck from the stream",
      "publish-batch":
        `${batch} js.publish() calls started at once, then all ${batch} PubAcks awaited (JetStream has no batch publish: ${batch} PUBs pipelined on one connection)`,
      consume:
        `durable pull consumer (AckExplicit): consumer.fetch({max_messages: ${batch}}), then m.ack() per message and one flush (PING/PONG) so the server has every ack before the next fetch`,
    };
  }

  /** Connects `publishers` + 1 clients to `url`. */
  static async open(
    url: string,
    publishers: number,
    batch: number,
  ): Promise<JetStreamDriver> {
    const connections: NatsConnection[] = [];
    try {
      for (let i = 0; i <= publishers; i++) {
        connections.push(await connect({ servers: url }));
      }
      const manager = await connections[0]!.jetstreamManager();
      return new JetStreamDriver(connections, manager, batch);
    } catch (error) {
      await Promise.all(connections.map((c) => c.close()));
      throw error;
    }
  }

  async prepare(row: "publish" | "publish-batch"): Promise<void> {
    const stream = STREAMS[row];
    await this.#manager.streams.add({
      name: stream.name,
      subjects: [stream.subject],
      storage: StorageType.File,
      num_replicas: 1,
    });
  }

  async publish(
    row: "publish" | "publish-batch",
    publisher: number,
    values: readonly Uint8Array[],
  ): Promise<void> {
    const js = this.#clients[publisher % (this.#clients.length - 1) + 1]!;
    const subject = STREAMS[row].subject;
    if (values.length === 1) {
      await js.publish(subject, values[0]!);
      return;
    }
    await Promise.all(values.map((value) => js.publish(subject, value)));
  }

  async openConsumer(): Promise<PubsubConsumer> {
    const stream = STREAMS.publish.name;
    await this.#manager.consumers.add(stream, {
      durable_name: CONSUMER,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
    const connection = this.#connections[0]!;
    const consumer = await this.#clients[0]!.consumers.get(stream, CONSUMER);
    return {
      async fetchAndAck(batch: number): Promise<number> {
        const messages = await consumer.fetch({
          max_messages: batch,
          expires: FETCH_EXPIRES_MS,
        });
        let count = 0;
        for await (const message of messages) {
          message.ack();
          count += 1;
          if (count === batch) break;
        }
        // The acks leave before the next fetch on this connection; a flush
        // makes sure the server has them all by the time the call returns.
        await connection.flush();
        return count;
      },
      close: async () => {
        await connection.flush();
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.#connections.map((c) => c.close()));
  }
}
