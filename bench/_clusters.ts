/**
 * Clusters the comparison benchmark starts on loopback, each node a real
 * process in its own data folder under one temporary root: Aspen (through
 * `bench/_aspen_node.ts`, default durability) and etcd (Debian's `etcd`,
 * default fsync settings). Every start is bounded in time; `stop()` ends
 * the processes and removes the folders, also after a failed start.
 *
 * @module
 */
import {
  freeTcpPorts,
  freeUdpPorts,
  provisionCluster,
} from "../src/node/provision.ts";
import { ROUTES, type StatusResponse } from "../src/protocol/http_api.ts";
import {
  type Child,
  signalChild,
  spawnChild,
  stopChild,
  waitForFirstJson,
} from "./_processes.ts";
import { pause } from "./_load.ts";
import { BENCH_ASPEN_TOKEN } from "./_drivers.ts";

const HOST = "127.0.0.1";
/** Milliseconds a node process gets to report that it listens. */
const NODE_START_TIMEOUT_MS = 30_000;
/** Milliseconds a cluster gets to elect a leader every node agrees on. */
const LEADER_TIMEOUT_MS = 30_000;
/** Milliseconds one status request may take. */
const STATUS_TIMEOUT_MS = 2_000;

/** A running cluster of one kind. */
export interface RunningCluster {
  readonly name: string;
  /** Each node's client URL, in node order. */
  readonly urls: readonly string[];
  readonly children: readonly Child[];
  /** The data folders' parent (removed by `stop`). */
  readonly root: string;
  /** The index in `urls` of the node that is leader now, waiting until one is known. */
  leaderIndex(timeoutMs?: number): Promise<number>;
  /** Ends every process (SIGTERM, SIGKILL after a grace period) and removes the folders. */
  stop(): Promise<void>;
  /**
   * Starts node `index` again on its data folder, once its process has
   * exited (Aspen clusters only; see {@linkcode restartNode}).
   */
  restart?(index: number): Promise<void>;
}

/** Options of {@linkcode startAspenCluster}. */
export interface AspenClusterOptions {
  readonly nodes: number;
  /** Parent of the cluster's temporary root. */
  readonly workDir: string;
  /** One `--inspect` port per node (for the CPU profile), or none. */
  readonly inspectPorts?: readonly number[];
  /** Strong-read mode of every node (the node's default when absent). */
  readonly readOnly?: "safe" | "lease";
  /** Applied entries between two Raft snapshots (the node's default when absent). */
  readonly snapshotEntries?: number;
  /** Extra `deno run` flags of every node (e.g. `--v8-flags=--expose-gc`). */
  readonly denoFlags?: readonly string[];
}

const repoRoot = new URL("..", import.meta.url).pathname;
const nodeEntry = new URL("./_aspen_node.ts", import.meta.url).pathname;

/** Starts an `nodes`-node Aspen cluster and waits until it has a leader. */
export async function startAspenCluster(
  options: AspenClusterOptions,
): Promise<RunningCluster> {
  const root = await Deno.makeTempDir({
    dir: options.workDir,
    prefix: `aspen-${options.nodes}-`,
  });
  const children: Child[] = [];
  const stop = () => stopCluster(children, root);
  try {
    const dirs = Array.from(
      { length: options.nodes },
      (_, i) => `${root}/n${i + 1}`,
    );
    const nodeFlags: string[][] = dirs.map(() => []);
    if (options.nodes > 1) {
      const httpPorts = freeTcpPorts(HOST, options.nodes);
      const quicPorts = freeUdpPorts(HOST, options.nodes);
      await provisionCluster(dirs.map((dataDir, i) => ({
        dataDir,
        httpUrl: `http://${HOST}:${httpPorts[i]}`,
        quicHost: HOST,
        quicPort: quicPorts[i]!,
      })));
      dirs.forEach((_, i) =>
        nodeFlags[i]!.push(
          "--http-port",
          String(httpPorts[i]),
          "--quic-port",
          String(quicPorts[i]),
        )
      );
    }
    const spawnNode = (i: number): Child => {
      const dir = dirs[i]!;
      const inspect = options.inspectPorts?.[i];
      return spawnChild(`aspen-${options.nodes}/n${i + 1}`, Deno.execPath(), [
        "run",
        "--config",
        `${repoRoot}deno.json`,
        ...(inspect === undefined ? [] : [`--inspect=${HOST}:${inspect}`]),
        ...(options.denoFlags ?? []),
        "--unstable-net",
        `--allow-net=${HOST}`,
        // The node's log writer runs in a Worker loaded from the source tree.
        `--allow-read=${dir},${repoRoot}src`,
        `--allow-write=${dir}`,
        "--allow-env",
        nodeEntry,
        "--data-dir",
        dir,
        ...(options.readOnly === undefined
          ? []
          : ["--read-only", options.readOnly]),
        ...(options.snapshotEntries === undefined
          ? []
          : ["--snapshot-entries", String(options.snapshotEntries)]),
        ...nodeFlags[i]!,
      ]);
    };
    dirs.forEach((_, i) => children.push(spawnNode(i)));
    const reports = await Promise.all(
      children.map((c) => waitForFirstJson(c, NODE_START_TIMEOUT_MS)),
    );
    const urls = reports.map((r) => String(r.url));
    const leaderIndex = (timeoutMs = LEADER_TIMEOUT_MS) =>
      aspenLeaderIndex(urls, children, timeoutMs);
    await leaderIndex();
    const restart = async (index: number) => {
      const old = children[index];
      if (old === undefined) {
        throw new RangeError(
          `Cannot restart node ${index}: the cluster has ${children.length}`,
        );
      }
      await old.process.status;
      const child = spawnNode(index);
      children[index] = child;
      const report = await waitForFirstJson(child, NODE_START_TIMEOUT_MS);
      if (String(report.url) !== urls[index]) {
        throw new Error(
          `Cannot restart node ${index} as it came back at '${report.url}', not '${
            urls[index]
          }' (a one-node cluster picks a new port)`,
        );
      }
    };
    return {
      name: `aspen-${options.nodes}`,
      urls,
      children,
      root,
      leaderIndex,
      stop,
      restart,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function aspenLeaderIndex(
  urls: readonly string[],
  children: readonly Child[],
  timeoutMs: number,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = "no reply yet";
  while (performance.now() < deadline) {
    const statuses = await Promise.all(urls.map(async (url, i) => {
      if (children[i]?.exited) return null;
      try {
        const response = await fetch(url + ROUTES.clusterStatus, {
          headers: { authorization: `Bearer ${BENCH_ASPEN_TOKEN}` },
          signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
        });
        if (!response.ok) {
          last = `status ${response.status} from ${url}`;
          await response.body?.cancel();
          return null;
        }
        return await response.json() as StatusResponse;
      } catch (error) {
        last = `${url}: ${(error as Error).message}`;
        return null;
      }
    }));
    const alive = statuses.filter((s) => s !== null);
    const leader = alive.find((s) => s.role === "leader");
    // Every live node must agree, so that writes do not race an old leader.
    if (
      leader !== undefined && alive.every((s) => s.leader === leader.nodeId)
    ) {
      const index = statuses.indexOf(leader);
      if (index >= 0) return index;
    }
    await pause(100);
  }
  throw new Error(`No leader agreed on within ${timeoutMs} ms: ${last}`);
}

/** The etcd binary's path and version, or why it cannot be used. */
export async function findEtcd(): Promise<
  { ok: true; path: string; version: string } | { ok: false; reason: string }
> {
  for (const path of ["etcd", "/usr/bin/etcd", "/usr/local/bin/etcd"]) {
    try {
      const output = await new Deno.Command(path, {
        args: ["--version"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(output.stdout);
      const version = /etcd Version:\s*(\S+)/.exec(text)?.[1];
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
    reason: "etcd is not installed (apt-get install -y etcd-server)",
  };
}

/** Starts an `nodes`-node etcd cluster with default settings and waits for its leader. */
export async function startEtcdCluster(options: {
  readonly nodes: number;
  readonly workDir: string;
  readonly binary: string;
}): Promise<RunningCluster> {
  const root = await Deno.makeTempDir({
    dir: options.workDir,
    prefix: `etcd-${options.nodes}-`,
  });
  const children: Child[] = [];
  const stop = () => stopCluster(children, root);
  try {
    const ports = freeTcpPorts(HOST, 2 * options.nodes);
    const names = Array.from({ length: options.nodes }, (_, i) => `e${i + 1}`);
    const clientUrl = (i: number) => `http://${HOST}:${ports[2 * i]}`;
    const peerUrl = (i: number) => `http://${HOST}:${ports[2 * i + 1]}`;
    const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(",");
    const token = `bench-${crypto.randomUUID()}`;
    names.forEach((name, i) => {
      children.push(
        spawnChild(`etcd-${options.nodes}/${name}`, options.binary, [
          "--name",
          name,
          "--data-dir",
          `${root}/${name}`,
          "--listen-client-urls",
          clientUrl(i),
          "--advertise-client-urls",
          clientUrl(i),
          "--listen-peer-urls",
          peerUrl(i),
          "--initial-advertise-peer-urls",
          peerUrl(i),
          "--initial-cluster",
          initialCluster,
          "--initial-cluster-state",
          "new",
          "--initial-cluster-token",
          token,
          "--logger",
          "zap",
          "--log-level",
          "warn",
        ]),
      );
    });
    const urls = names.map((_, i) => clientUrl(i));
    const leaderIndex = (timeoutMs = LEADER_TIMEOUT_MS) =>
      etcdLeaderIndex(urls, children, timeoutMs);
    await leaderIndex();
    return {
      name: `etcd-${options.nodes}`,
      urls,
      children,
      root,
      leaderIndex,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function etcdLeaderIndex(
  urls: readonly string[],
  children: readonly Child[],
  timeoutMs: number,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = "no reply yet";
  while (performance.now() < deadline) {
    for (const [i, url] of urls.entries()) {
      if (children[i]?.exited) {
        last = `${children[i]!.name} exited: ${children[i]!.stderrTail()}`;
        continue;
      }
      try {
        const response = await fetch(url + "/v3/maintenance/status", {
          method: "POST",
          body: "{}",
          signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
        });
        const status = await response.json() as {
          leader?: string;
          header?: { member_id?: string };
        };
        if (
          status.leader !== undefined &&
          status.leader === status.header?.member_id
        ) {
          return i;
        }
        last = `${url}: leader ${status.leader ?? "none"}`;
      } catch (error) {
        last = `${url}: ${(error as Error).message}`;
      }
    }
    await pause(100);
  }
  throw new Error(`No etcd leader within ${timeoutMs} ms: ${last}`);
}

/** Starts the `null-http` server process. */
export async function startNullHttp(workDir: string): Promise<RunningCluster> {
  const child = spawnChild("null-http", Deno.execPath(), [
    "run",
    `--allow-net=${HOST}`,
    new URL("./_null_http.ts", import.meta.url).pathname,
  ]);
  const children = [child];
  const root = await Deno.makeTempDir({ dir: workDir, prefix: "null-http-" });
  const stop = () => stopCluster(children, root);
  try {
    const report = await waitForFirstJson(child, NODE_START_TIMEOUT_MS);
    const urls = [String(report.url)];
    return {
      name: "null-http",
      urls,
      children,
      root,
      leaderIndex: () => Promise.resolve(0),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Kills one node at once (SIGKILL), as a crash would. */
export function killNode(cluster: RunningCluster, index: number): void {
  const child = cluster.children[index];
  if (child === undefined) {
    throw new RangeError(
      `Cannot kill node ${index}: the cluster has ${cluster.children.length}`,
    );
  }
  signalChild(child, "SIGKILL");
}

/**
 * Starts node `index` again on its data folder (same ports, same flags)
 * after it exited, and waits until it listens.
 *
 * @throws {TypeError} When the cluster's kind cannot restart a node.
 */
export async function restartNode(
  cluster: RunningCluster,
  index: number,
): Promise<void> {
  if (cluster.restart === undefined) {
    throw new TypeError(`Cannot restart a node of '${cluster.name}'`);
  }
  await cluster.restart(index);
}

async function stopCluster(
  children: readonly Child[],
  root: string,
): Promise<void> {
  await Promise.all(children.map(stopChild));
  await Deno.remove(root, { recursive: true }).catch(() => {});
}
