/**
 * A harness of real Aspen node processes on loopback: `aspen node start` in
 * child `deno run` processes with the permissions the README gives, folders
 * provisioned with {@linkcode provisionCluster}, and the faults a test needs
 * (kill -9, SIGTERM, SIGSTOP / SIGCONT, restart on the same folder and ports).
 * Every wait is bounded; {@linkcode ProcessCluster.close} kills whatever is
 * still running and removes the folders. Each node's output is kept (the last
 * lines) so a failing assertion can show it.
 *
 * @module
 */
import {
  freeTcpPorts,
  freeUdpPorts,
  provisionCluster,
} from "../../src/node/provision.ts";
import { waitFor, waitForValue } from "./wait_for.ts";

const HOST = "127.0.0.1";
const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const CLI = `${REPO}/cli/aspen.ts`;
/** Lines of output kept per node (older ones are dropped). */
const LOG_LINES_MAX = 300;
/** How long a started node may take to answer `/v1/cluster/status`. */
const START_TIMEOUT_MS = 30_000;
/** How long a SIGTERM'd node may take to exit before it is killed. */
const STOP_TIMEOUT_MS = 15_000;
/** Deadline of one status request. */
const STATUS_TIMEOUT_MS = 1_000;
const POLL_INTERVAL_MS = 100;

/** `/v1/cluster/status` as these tests read it. */
export interface NodeStatus {
  readonly nodeId: string;
  readonly role: "follower" | "preCandidate" | "candidate" | "leader";
  readonly term: number;
  readonly leader: string | null;
  readonly leaderHttpUrl: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly snapshotIndex: number;
  readonly members: readonly { id: string; role: string }[];
}

/** Options of {@linkcode ProcessCluster.start}. */
export interface ProcessClusterOptions {
  /** Number of nodes, 1 to 5. */
  readonly count: number;
  /** `NodeConfig` fields written to a JSON file passed with `--config`. */
  readonly config?: Readonly<Record<string, unknown>>;
  /** Extra environment of the node processes (e.g. `ASPEN_TOKENS`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Bearer token the harness sends on `/v1/cluster/status`. Default: the cluster's data token. */
  readonly token?: string;
}

/** What the harness knows of one node. */
export interface ProcessNode {
  readonly index: number;
  readonly dataDir: string;
  readonly url: string;
  readonly httpPort: number;
  readonly quicPort: number;
  /** "paused" after SIGSTOP; "down" after a kill or stop. */
  readonly state: "running" | "paused" | "down";
}

class NodeRecord implements ProcessNode {
  state: "running" | "paused" | "down" = "down";
  child: Deno.ChildProcess | null = null;
  exited: Promise<Deno.CommandStatus> | null = null;
  readers: Promise<void>[] = [];
  readonly log: string[] = [];
  readonly counters: { test: (line: string) => boolean; count: number }[] = [];
  generation = 0;

  constructor(
    readonly index: number,
    readonly dataDir: string,
    readonly httpPort: number,
    readonly quicPort: number,
  ) {}

  get url(): string {
    return `http://${HOST}:${this.httpPort}`;
  }

  append(line: string): void {
    for (const counter of this.counters) {
      if (counter.test(line)) counter.count++;
    }
    this.log.push(line);
    if (this.log.length > LOG_LINES_MAX) this.log.shift();
  }
}

/** The environment of a child: ours without Aspen's and KV Connect's variables. */
function childEnvironment(
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (!name.startsWith("ASPEN_") && !name.startsWith("DENO_KV_")) {
      env[name] = value;
    }
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** N node processes on loopback. */
export class ProcessCluster {
  readonly #root: string;
  readonly #nodes: NodeRecord[];
  readonly #options: ProcessClusterOptions;
  readonly #configPath: string | null;

  private constructor(
    root: string,
    nodes: NodeRecord[],
    options: ProcessClusterOptions,
    configPath: string | null,
  ) {
    this.#root = root;
    this.#nodes = nodes;
    this.#options = options;
    this.#configPath = configPath;
  }

  /**
   * Provisions `count` folders (one folder is left to become a one-node
   * cluster by itself) and starts every node, waiting until each answers.
   */
  static async start(options: ProcessClusterOptions): Promise<ProcessCluster> {
    if (
      !Number.isSafeInteger(options.count) || options.count < 1 ||
      options.count > 5
    ) {
      throw new RangeError(
        `Cannot start a process cluster as 'count' must be 1 to 5: current value is ${options.count}`,
      );
    }
    const root = await Deno.makeTempDir({ prefix: "aspen-process-" });
    let cluster: ProcessCluster | null = null;
    try {
      const httpPorts = freeTcpPorts(HOST, options.count);
      const quicPorts = freeUdpPorts(HOST, options.count);
      const nodes = httpPorts.map((httpPort, i) =>
        new NodeRecord(i, `${root}/n${i + 1}`, httpPort, quicPorts[i]!)
      );
      if (options.count > 1) {
        await provisionCluster(nodes.map((node) => ({
          dataDir: node.dataDir,
          httpUrl: node.url,
          quicHost: HOST,
          quicPort: node.quicPort,
        })));
      }
      let configPath: string | null = null;
      if (options.config !== undefined) {
        configPath = `${root}/config.json`;
        await Deno.writeTextFile(configPath, JSON.stringify(options.config));
      }
      cluster = new ProcessCluster(root, nodes, options, configPath);
      for (const node of nodes) cluster.#spawn(node);
      await Promise.all(
        nodes.map((node) => cluster!.#waitUntilAnswering(node)),
      );
      return cluster;
    } catch (error) {
      if (cluster !== null) {
        const logs = cluster.logs();
        await cluster.close();
        throw new Error(
          `Cannot start the process cluster: ${
            (error as Error).message
          }\n${logs}`,
          { cause: error },
        );
      }
      await Deno.remove(root, { recursive: true });
      throw error;
    }
  }

  /** Every node, by index. */
  get nodes(): readonly ProcessNode[] {
    return this.#nodes;
  }

  /** The node at `index`. */
  node(index: number): ProcessNode {
    const node = this.#nodes[index];
    if (node === undefined) {
      throw new RangeError(
        `Cannot find node ${index}: the cluster has ${this.#nodes.length}`,
      );
    }
    return node;
  }

  /** The process id of node `index` while it runs (null when down). */
  pid(index: number): number | null {
    const record = this.#nodes[index];
    return record?.state === "down" ? null : record?.child?.pid ?? null;
  }

  /** Every node's HTTP URL, in index order. */
  get urls(): string[] {
    return this.#nodes.map((node) => node.url);
  }

  /** The cluster's data token as node `index` keeps it (when no tokens are configured). */
  async accessToken(index: number): Promise<string> {
    return (await Deno.readTextFile(`${this.node(index).dataDir}/access.token`))
      .trim();
  }

  /**
   * The data token to send: the configured `token`, else the cluster's
   * (every node derives the same one), read from the first folder that has it.
   */
  async token(): Promise<string> {
    if (this.#options.token !== undefined) return this.#options.token;
    return await this.#tokenFile("access.token");
  }

  /** The cluster's admin token (membership, backups, join tickets). */
  async adminToken(): Promise<string> {
    return await this.#tokenFile("admin.token");
  }

  async #tokenFile(name: string): Promise<string> {
    for (const node of this.#nodes) {
      try {
        return (await Deno.readTextFile(`${node.dataDir}/${name}`)).trim();
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    throw new Error(`Cannot find ${name}: no node has started yet`);
  }

  /** The node's status, or null when it does not answer in time. */
  async status(index: number): Promise<NodeStatus | null> {
    const node = this.node(index);
    if (node.state !== "running") return null;
    const headers: Record<string, string> = {};
    try {
      headers.authorization = `Bearer ${await this.token()}`;
      const response = await fetch(`${node.url}/v1/cluster/status`, {
        headers,
        signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
      });
      if (!response.ok) {
        await response.body?.cancel();
        return null;
      }
      return await response.json() as NodeStatus;
    } catch {
      return null;
    }
  }

  /**
   * Waits until one running node leads and every other running node that
   * answers names it as leader.
   *
   * @returns The leader's index.
   * @throws {Error} When no such leader appears within `timeoutMs`.
   */
  async waitForLeader(timeoutMs = 30_000): Promise<number> {
    let seen = "";
    return await waitForValue(
      () => `a leader agreed on: last seen ${seen}`,
      async () => {
        const statuses = await Promise.all(
          this.#nodes.map((node) => this.status(node.index)),
        );
        seen = statuses.map((s, i) =>
          s === null
            ? `n${i}: -`
            : `n${i}: ${s.role} t${s.term} leader=${s.leader?.slice(0, 6)}`
        ).join(", ");
        const leaders = statuses.flatMap((s, i) =>
          s?.role === "leader" ? [{ index: i, status: s }] : []
        );
        const newest = leaders.sort((a, b) => b.status.term - a.status.term)[0];
        if (
          newest !== undefined &&
          statuses.every((s) => s === null || s.leader === newest.status.nodeId)
        ) {
          return newest.index;
        }
        return null;
      },
      { timeoutMs, intervalMs: POLL_INTERVAL_MS },
    );
  }

  /**
   * Waits until node `index` has applied at least `appliedIndex`.
   *
   * @returns Its status then.
   */
  async waitForApplied(
    index: number,
    appliedIndex: number,
    timeoutMs = 30_000,
  ): Promise<NodeStatus> {
    let last: NodeStatus | null = null;
    return await waitForValue(
      () =>
        `node ${index} to apply index ${appliedIndex}: last status ${
          JSON.stringify(last)
        }`,
      async () => {
        last = await this.status(index);
        return last !== null && last.appliedIndex >= appliedIndex ? last : null;
      },
      { timeoutMs, intervalMs: POLL_INTERVAL_MS },
    );
  }

  /** Sends `signal` to node `index` (SIGSTOP and SIGCONT mark it paused / running). */
  signal(index: number, signal: "SIGSTOP" | "SIGCONT"): void {
    const node = this.#record(index);
    if (node.child === null || node.state === "down") {
      throw new Error(`Cannot send ${signal} to node ${index}: it is down`);
    }
    node.child.kill(signal);
    node.state = signal === "SIGSTOP" ? "paused" : "running";
    node.append(`--- harness: ${signal}`);
  }

  /** Kill -9 node `index` and wait for it to exit. */
  async kill(index: number): Promise<void> {
    const node = this.#record(index);
    if (node.child === null || node.exited === null) return;
    try {
      node.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.#reap(node);
    node.append("--- harness: SIGKILL");
  }

  /**
   * SIGTERM node `index` and wait (bounded) for its graceful exit.
   *
   * @returns Its exit code (after a SIGKILL when it did not stop in time).
   * @throws {Error} When it had to be killed.
   */
  async stop(index: number): Promise<number> {
    const node = this.#record(index);
    if (node.child === null || node.exited === null) {
      throw new Error(`Cannot stop node ${index}: it is down`);
    }
    if (node.state === "paused") node.child.kill("SIGCONT");
    node.child.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      node.exited,
      new Promise<null>((resolve) =>
        timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS)
      ),
    ]);
    clearTimeout(timer);
    if (result === null) {
      await this.kill(index);
      throw new Error(
        `Node ${index} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`,
      );
    }
    await this.#reap(node);
    node.append(`--- harness: SIGTERM, exit code ${result.code}`);
    return result.code;
  }

  /** Starts node `index` again on its folder and ports, waiting until it answers. */
  async restart(index: number): Promise<void> {
    const node = this.#record(index);
    if (node.state !== "down") {
      throw new Error(`Cannot restart node ${index}: it is ${node.state}`);
    }
    this.#spawn(node);
    await this.#waitUntilAnswering(node);
  }

  /**
   * Counts the lines node `index` prints from now on that pass `test`, over
   * its whole output (its restarts included), not only the last lines kept
   * for {@linkcode logs}.
   *
   * @returns A function reading the count so far.
   */
  countLines(index: number, test: (line: string) => boolean): () => number {
    const counter = { test, count: 0 };
    this.#record(index).counters.push(counter);
    return () => counter.count;
  }

  /** The last lines of every node's output, for an assertion message. */
  logs(): string {
    return this.#nodes.map((node) =>
      `--- node ${node.index} (${node.url}, ${node.state}) ---\n${
        node.log.join("\n")
      }`
    ).join("\n");
  }

  /** Kills every node, waits for them, and removes the folders. */
  async close(): Promise<void> {
    for (const node of this.#nodes) {
      if (node.child === null) continue;
      try {
        node.child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    await Promise.all(this.#nodes.map((node) => this.#reap(node)));
    await Deno.remove(this.#root, { recursive: true }).catch(() => {});
  }

  /** Same as {@linkcode ProcessCluster.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #record(index: number): NodeRecord {
    this.node(index);
    return this.#nodes[index]!;
  }

  #spawn(node: NodeRecord): void {
    const read = [node.dataDir, `${REPO}/src`];
    const args = [
      "run",
      "--unstable-net",
      `--allow-net=${HOST}`,
      `--allow-read=${[...read, this.#configPath ?? []].flat().join(",")}`,
      `--allow-write=${node.dataDir}`,
      "--allow-env",
      CLI,
      "node",
      "start",
      "--data-dir",
      node.dataDir,
      "--http-port",
      String(node.httpPort),
      "--quic-port",
      String(node.quicPort),
      ...(this.#configPath === null ? [] : ["--config", this.#configPath]),
    ];
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: REPO,
      env: childEnvironment(this.#options.env ?? {}),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    node.generation++;
    node.append(`--- harness: start #${node.generation}`);
    node.child = child;
    node.exited = child.status;
    node.state = "running";
    node.readers = [
      collect(child.stdout, (line) => node.append(line)),
      collect(child.stderr, (line) => node.append(`! ${line}`)),
    ];
  }

  async #reap(node: NodeRecord): Promise<void> {
    if (node.exited === null) return;
    await node.exited;
    await Promise.all(node.readers);
    node.child = null;
    node.exited = null;
    node.readers = [];
    node.state = "down";
  }

  async #waitUntilAnswering(node: NodeRecord): Promise<void> {
    let exited = false;
    node.exited?.then(() => exited = true);
    await waitFor(`node ${node.index} to answer`, async () => {
      if (exited) {
        await this.#reap(node);
        throw new Error(`Node ${node.index} exited while starting`);
      }
      return await this.status(node.index) !== null;
    }, { timeoutMs: START_TIMEOUT_MS, intervalMs: POLL_INTERVAL_MS });
  }
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  try {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
  } catch {
    // The process died mid-write: keep what arrived.
  }
  if (rest !== "") onLine(rest);
}

/**
 * Starts a cluster, runs `fn`, and always closes it; a failure carries the
 * nodes' last output lines.
 */
export async function withProcessCluster<T>(
  options: ProcessClusterOptions,
  fn: (cluster: ProcessCluster) => Promise<T>,
): Promise<T> {
  const cluster = await ProcessCluster.start(options);
  try {
    return await fn(cluster);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const wrapped = new Error(`${message}\n${cluster.logs()}`, {
      cause: error,
    });
    if (error instanceof Error && error.stack !== undefined) {
      wrapped.stack = `${wrapped.message}\n${
        error.stack.split("\n").slice(1).join("\n")
      }`;
    }
    throw wrapped;
  } finally {
    await cluster.close();
  }
}
