/**
 * A minimal Aspen node entry for the comparison benchmark, used until the
 * `aspen` CLI exists: reads flags, calls `serveNode`, prints one JSON line
 * (`{"url": …, "nodeId": …, "pid": …}`) once listening, stops on SIGTERM or
 * SIGINT.
 *
 * Two signals serve the memory benchmark (`bench/memory.ts`): SIGUSR1
 * takes a Raft snapshot and compacts the log at the next ready loop
 * (`RaftRunner.requestSnapshot`), SIGUSR2 prints one JSON line
 * `{"memory": …}` with `Deno.memoryUsage()` (after a full GC when the node
 * runs with `--v8-flags=--expose-gc`) and the Raft status's indexes.
 *
 * Run with `--unstable-net --allow-net=127.0.0.1 --allow-read=DIR
 * --allow-write=DIR --allow-env`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolveNodeConfig } from "../src/node/config.ts";
import { serveNode } from "../src/server/serve.ts";
import { BENCH_ASPEN_ADMIN_TOKEN, BENCH_ASPEN_TOKEN } from "./_drivers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "data-dir": { type: "string" },
    "http-port": { type: "string", default: "0" },
    "quic-port": { type: "string" },
    "read-only": { type: "string" },
    "snapshot-entries": { type: "string" },
  },
  strict: true,
});

const dataDir = values["data-dir"];
if (dataDir === undefined) {
  console.error("bench/_aspen_node: --data-dir is required");
  Deno.exit(2);
}
const config = resolveNodeConfig({
  dataDir,
  httpHost: "127.0.0.1",
  httpPort: Number(values["http-port"]),
  quicPort: values["quic-port"] === undefined
    ? undefined
    : Number(values["quic-port"]),
  readOnly: values["read-only"] as "safe" | "lease" | undefined,
  tokens: [BENCH_ASPEN_TOKEN],
  adminTokens: [BENCH_ASPEN_ADMIN_TOKEN],
  ...(values["snapshot-entries"] === undefined
    ? {}
    : { snapshotEntries: Number(values["snapshot-entries"]) }),
});
const serving = await serveNode(config, {
  log: (line) => console.error(`[node] ${line}`),
});
console.log(JSON.stringify({
  url: serving.url,
  nodeId: String(serving.node.id),
  pid: Deno.pid,
}));
Deno.addSignalListener("SIGUSR1", () => serving.node.runner.requestSnapshot());
Deno.addSignalListener("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const status = serving.node.runner.status();
  console.log(JSON.stringify({
    memory: { ...Deno.memoryUsage(), gc: gc !== undefined },
    raft: {
      role: status.role,
      commit: status.commit,
      applied: status.applied,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
    },
  }));
});
await new Promise<void>((resolve) => {
  Deno.addSignalListener("SIGINT", resolve);
  Deno.addSignalListener("SIGTERM", resolve);
});
await serving.stop();
Deno.exit(0);
