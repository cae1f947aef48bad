/**
 * CPU profile of the aspen-3 leader and one follower under the 64-client put
 * load: the three nodes run with `--inspect`, the DevTools protocol's Profiler
 * samples the leader and a follower (main isolate, and its Workers when the
 * inspector lists them) while
 * the load generator runs, and the result is summarized as the top
 * functions by self time and the share of each part of the code.
 *
 * ```sh
 * deno run --unstable-net --allow-run --allow-read --allow-write --allow-env \
 *   --allow-net=127.0.0.1 bench/profile_leader.ts [--duration 10] [--clients 64]
 * ```
 *
 * Writes `bench/results/profile-leader-<time>.cpuprofile` (open it in Chrome
 * DevTools) and `.md` (the summary printed).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { freeTcpPorts } from "../src/node/provision.ts";
import { startAspenCluster } from "./_clusters.ts";
import { AspenClientDriver } from "./_drivers.ts";
import { KeySpace, runCell } from "./_load.ts";
import { stopAllChildren } from "./_processes.ts";
import { markdownTable } from "./_report.ts";

/** A DevTools protocol CPU profile (the fields used here). */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: {
      functionName: string;
      url: string;
      lineNumber: number;
    };
  }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Self time of one function. */
interface FunctionTime {
  readonly name: string;
  readonly location: string;
  readonly area: string;
  selfMs: number;
}

/** Microseconds between samples. */
const SAMPLING_INTERVAL_US = 500;
/** Ms one DevTools command may take. */
const COMMAND_TIMEOUT_MS = 30_000;
/** Rows of the top-functions table. */
const TOP_FUNCTIONS = 25;

/** A DevTools protocol session over a WebSocket. */
class DevToolsSession {
  #nextId = 1;
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private constructor(readonly socket: WebSocket) {
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
      };
      const waiter = message.id === undefined
        ? undefined
        : this.#pending.get(message.id);
      if (waiter === undefined) return;
      this.#pending.delete(message.id!);
      if (message.error !== undefined) {
        waiter.reject(new Error(message.error.message));
      } else waiter.resolve(message.result);
    };
  }

  static open(url: string): Promise<DevToolsSession> {
    const socket = new WebSocket(url);
    return new Promise((resolve, reject) => {
      socket.onopen = () => resolve(new DevToolsSession(socket));
      socket.onerror = () =>
        reject(new Error(`Cannot open DevTools session '${url}'`));
    });
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#nextId++;
    this.socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new Error(`DevTools '${method}' took over ${COMMAND_TIMEOUT_MS} ms`),
        );
      }, COMMAND_TIMEOUT_MS);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  close(): void {
    this.socket.close();
  }
}

/** Which part of the code a frame belongs to, from its URL. */
export function areaOf(url: string, functionName: string): string {
  if (url === "") {
    return functionName.startsWith("(") ? functionName : "(native/builtin)";
  }
  const source = /\/src\/([a-z_]+)\//.exec(url);
  if (source !== null && !url.includes("node_modules")) {
    return `src/${source[1]}`;
  }
  if (url.includes("/bench/")) return "bench";
  const npm = /registry\.npmjs\.org\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (npm !== null) return `npm:${npm[1]}`;
  if (url.startsWith("ext:") || url.startsWith("node:")) {
    return `deno runtime (${url.split("/")[0]})`;
  }
  return url.split("/").slice(-2).join("/");
}

/** Self time per function and per area of one profile. */
export function summarizeProfile(profile: CpuProfile): {
  totalMs: number;
  functions: FunctionTime[];
  areas: Map<string, number>;
} {
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const byNode = new Map<number, number>();
  for (let i = 0; i < samples.length; i++) {
    // A sample's time is the delta to the next sample.
    const us = deltas[i + 1] ?? 0;
    byNode.set(samples[i]!, (byNode.get(samples[i]!) ?? 0) + us);
  }
  const functions = new Map<string, FunctionTime>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  for (const node of profile.nodes) {
    const us = byNode.get(node.id) ?? 0;
    if (us === 0) continue;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName === "" ? "(anonymous)" : functionName;
    const shortUrl = url.replace(/^file:\/\/.*?\/(src|bench)\//, "$1/")
      .replace(/^.*registry\.npmjs\.org\//, "npm:");
    const location = url === "" ? "" : `${shortUrl}:${lineNumber + 1}`;
    const key = `${name} ${location}`;
    const area = areaOf(url, functionName);
    const entry = functions.get(key) ??
      { name, location, area, selfMs: 0 };
    entry.selfMs += us / 1000;
    functions.set(key, entry);
    areas.set(area, (areas.get(area) ?? 0) + us / 1000);
  }
  return {
    totalMs: totalUs / 1000,
    functions: [...functions.values()].sort((a, b) => b.selfMs - a.selfMs),
    areas,
  };
}

/** Formats the summary of one profile as Markdown. */
export function formatProfileSummary(
  title: string,
  summary: ReturnType<typeof summarizeProfile>,
): string {
  const percent = (ms: number) => `${(100 * ms / summary.totalMs).toFixed(1)}%`;
  const top = summary.functions.slice(0, TOP_FUNCTIONS).map((f) => [
    f.selfMs.toFixed(0),
    percent(f.selfMs),
    f.name,
    f.area,
    f.location,
  ]);
  const areas = [...summary.areas.entries()].sort((a, b) => b[1] - a[1])
    .map(([area, ms]) => [area, ms.toFixed(0), percent(ms)]);
  return [
    `### ${title}: ${summary.totalMs.toFixed(0)} ms sampled`,
    "",
    "Top functions by self time:",
    "",
    markdownTable(["self ms", "share", "function", "area", "location"], top),
    "",
    "Self time by area:",
    "",
    markdownTable(["area", "self ms", "share"], areas),
  ].join("\n");
}

async function inspectorTargets(
  port: number,
): Promise<{ title: string; url: string }[]> {
  const response = await fetch(`http://127.0.0.1:${port}/json/list`, {
    signal: AbortSignal.timeout(5_000),
  });
  const list = await response.json() as {
    title?: string;
    url?: string;
    webSocketDebuggerUrl: string;
  }[];
  return list.map((t) => ({
    title: `${t.title ?? ""} ${t.url ?? ""}`.trim(),
    url: t.webSocketDebuggerUrl,
  }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      duration: { type: "string", default: "10" },
      clients: { type: "string", default: "64" },
      out: {
        type: "string",
        default: new URL("./results", import.meta.url).pathname,
      },
    },
  });
  const durationMs = Number(values.duration) * 1000;
  const clients = Number(values.clients);
  if (
    !(durationMs > 0 && durationMs <= 120_000) ||
    !(clients >= 1 && clients <= 1024)
  ) {
    throw new RangeError(
      `Cannot profile as '--duration' must be in (0, 120] s and '--clients' in [1, 1024]: current values are ${values.duration}, ${values.clients}`,
    );
  }
  const workDir = await Deno.makeTempDir({ prefix: "aspen-profile-" });
  const watchdog = setTimeout(async () => {
    console.error("bench/profile_leader: stopping after the time bound");
    await stopAllChildren();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
    Deno.exit(3);
  }, durationMs + 180_000);
  const inspectPorts = freeTcpPorts("127.0.0.1", 3);
  const cluster = await startAspenCluster({ nodes: 3, workDir, inspectPorts });
  const sessions: { title: string; session: DevToolsSession }[] = [];
  try {
    const leader = await cluster.leaderIndex();
    const urls = [
      cluster.urls[leader]!,
      ...cluster.urls.filter((_, i) => i !== leader),
    ];
    const driver = new AspenClientDriver(urls);
    const keys = new KeySpace();
    const value = crypto.getRandomValues(new Uint8Array(256));
    // Warm up (JIT, connections) before sampling.
    await runCell(driver, {
      workload: "put",
      clients,
      durationMs: 2_000,
      value,
      keys,
    });
    // The leader, and one follower (its own fsyncs and the apply of every
    // entry), sampled over the same load.
    const follower = cluster.urls.findIndex((_, i) => i !== leader);
    for (
      const [role, index] of [["leader", leader], [
        "follower",
        follower,
      ]] as const
    ) {
      for (const target of await inspectorTargets(inspectPorts[index]!)) {
        const session = await DevToolsSession.open(target.url);
        await session.send("Profiler.enable");
        await session.send("Profiler.setSamplingInterval", {
          interval: SAMPLING_INTERVAL_US,
        });
        await session.send("Profiler.start");
        sessions.push({ title: `${role}: ${target.title}`, session });
      }
    }
    const cell = await runCell(driver, {
      workload: "put",
      clients,
      durationMs,
      value,
      keys,
    });
    const stillLeader = (await cluster.leaderIndex()) === leader;
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    await Deno.mkdir(values.out, { recursive: true });
    const sections = [
      `## CPU profile of the aspen-3 leader and one follower under ${clients}-client put load`,
      "",
      `${new Date().toISOString()}; ${
        durationMs / 1000
      } s sampled every ${SAMPLING_INTERVAL_US} µs; ` +
      `load during the profile: ${
        cell.throughputPerSecond.toFixed(0)
      } puts/s, p50 ${cell.latencyMs.p50.toFixed(1)} ms, p99 ${
        cell.latencyMs.p99.toFixed(1)
      } ms, ${cell.errors} errors (the inspector slows the node); ` +
      `leader unchanged: ${stillLeader}.`,
    ];
    for (const [index, { title, session }] of sessions.entries()) {
      const { profile } = await session.send("Profiler.stop") as {
        profile: CpuProfile;
      };
      const path = `${values.out}/profile-leader-${stamp}-${index}.cpuprofile`;
      await Deno.writeTextFile(path, JSON.stringify(profile));
      const wallMs = (profile.endTime - profile.startTime) / 1000;
      const summary = summarizeProfile(profile);
      sections.push(
        "",
        formatProfileSummary(`isolate ${index} (${title})`, summary),
        "",
        `Wall time ${wallMs.toFixed(0)} ms; profile: ${path}`,
      );
    }
    await driver.close();
    const text = sections.join("\n") + "\n";
    await Deno.writeTextFile(`${values.out}/profile-leader-${stamp}.md`, text);
    console.log(text);
  } finally {
    for (const { session } of sessions) session.close();
    await cluster.stop();
    await stopAllChildren();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
    clearTimeout(watchdog);
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`bench/profile_leader: ${(error as Error).message}`);
    Deno.exit(1);
  }
  Deno.exit(0);
}
