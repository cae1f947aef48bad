/**
 * Lease expiry with real processes (issue 16): 100 keys attached to a TTL
 * 3 s lease read absent on every node through stock `Deno.openKv` once the
 * keep-alives stop, and the nodes' states are identical (their state hashes,
 * read from each folder after a graceful stop, match); a lease kept alive
 * through a kill -9 of the leader survives with its key.
 *
 * @module
 */
import assert from "node:assert/strict";
import type {
  AtomicRequest,
  ErrorBody,
  GetResponse,
} from "../src/protocol/http_api.ts";
import type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LeaseTtlResponse,
} from "../src/protocol/http_api_leases.ts";
import { DATA_FILES } from "../src/node/data_dir.ts";
import { stateHash } from "../src/state/state_hash.ts";
import type { StateStore } from "../src/state/state_store.ts";
import { SqliteStateStore } from "../src/storage/sqlite_state_store.ts";
import {
  type ProcessCluster,
  withProcessCluster,
} from "./helpers/process_cluster.ts";
import { waitFor, waitForValue } from "./helpers/wait_for.ts";

const READER = new URL(
  "./helpers/lock_history_stock_reader.ts",
  import.meta.url,
).pathname;
const KEYS = 100;
const TTL_MS = 3_000;
/** Mutations per atomic write while attaching the keys. */
const KEYS_PER_WRITE = 10;
/** How long each node may take to show every key absent (eventual), ms. */
const ABSENT_TIMEOUT_MS = 30_000;

interface Answer<T> {
  readonly status: number;
  readonly body: T | ErrorBody | null;
}

/** POSTs JSON to `path` on `url`, bounded. */
async function post<T>(
  url: string,
  token: string,
  path: string,
  body: unknown,
): Promise<Answer<T>> {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text === "" ? null : JSON.parse(text),
  };
}

/** POSTs to any node until one answers 200 (bounded). */
async function postOk<T>(
  cluster: ProcessCluster,
  token: string,
  path: string,
  body: unknown,
  timeoutMs = 20_000,
): Promise<T> {
  let last = "";
  let node = 0;
  return await waitForValue(
    () => `${path} to succeed: last answer ${last}`,
    async () => {
      const url = cluster.urls[node++ % cluster.urls.length]!;
      try {
        const answer = await post<T>(url, token, path, body);
        last = `${answer.status} ${JSON.stringify(answer.body)}`;
        return answer.status === 200 ? answer.body as T : null;
      } catch (error) {
        last = String(error);
        return null;
      }
    },
    { timeoutMs, intervalMs: 100 },
  );
}

function bytes(text: string): { encoding: "bytes"; data: string } {
  return { encoding: "bytes", data: btoa(text) };
}

/** Attaches `[prefix, 0..count)` to `lease`, a few keys per atomic write. */
async function attachKeys(
  cluster: ProcessCluster,
  token: string,
  prefix: string,
  count: number,
  lease: string,
): Promise<void> {
  for (let first = 0; first < count; first += KEYS_PER_WRITE) {
    const request: AtomicRequest = {
      mutations: Array.from(
        { length: Math.min(KEYS_PER_WRITE, count - first) },
        (_, i) => ({
          type: "set" as const,
          key: [prefix, first + i],
          value: bytes(`value-${first + i}`),
          lease,
        }),
      ),
    };
    await postOk(cluster, token, "/v1/kv/atomic", request);
  }
}

/** Runs the stock reader against node `index` until every key reads absent. */
async function stockAbsent(
  cluster: ProcessCluster,
  token: string,
  index: number,
  prefix: string,
): Promise<{ absent: boolean; present?: number[]; afterMs?: number }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-env=DENO_KV_ACCESS_TOKEN",
      READER,
      `${cluster.node(index).url}/kv`,
      prefix,
      String(KEYS),
      String(ABSENT_TIMEOUT_MS),
    ],
    env: { DENO_KV_ACCESS_TOKEN: token, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  assert.ok(
    output.success && text !== "",
    `stock reader on node ${index} failed: ${
      new TextDecoder().decode(output.stderr)
    }`,
  );
  return JSON.parse(text.split("\n").at(-1)!);
}

/**
 * Stops every node gracefully (all at once) and hashes each one's state
 * folder: `stateHash` over every row. The applied index is left out of the
 * comparison: a node stopped a moment later may have applied a new term's
 * empty entry, which changes no row.
 */
async function stateHashes(cluster: ProcessCluster): Promise<string[]> {
  await Promise.all(cluster.nodes.map((node) => cluster.stop(node.index)));
  return cluster.nodes.map((node) => {
    const store = new SqliteStateStore({
      path: `${node.dataDir}/${DATA_FILES.state}`,
    });
    try {
      const rows: StateStore = Object.assign(Object.create(store), {
        appliedIndex: () => 0,
      });
      return stateHash(rows);
    } finally {
      store.close();
    }
  });
}

Deno.test({
  name:
    "100 keys on a TTL 3 s lease read absent on every node through stock Deno.openKv once keep-alives stop, and the nodes' state hashes match",
  fn: async () => {
    await withProcessCluster({ count: 3 }, async (cluster) => {
      await cluster.waitForLeader();
      const token = await cluster.token();
      const grant = await postOk<LeaseGrantResponse>(
        cluster,
        token,
        "/v1/leases/grant",
        { ttlMs: TTL_MS },
      );
      assert.ok(grant.ttlMs >= TTL_MS);
      await attachKeys(cluster, token, "leased", KEYS, grant.id);
      // Attached and alive: a keep-alive answers, the keys read present.
      const alive = await postOk<LeaseKeepAliveResponse>(
        cluster,
        token,
        "/v1/leases/keepalive",
        { ids: [grant.id] },
      );
      assert.ok(!("error" in alive.leases[0]!), JSON.stringify(alive));
      const ttl = await postOk<LeaseTtlResponse>(
        cluster,
        token,
        "/v1/leases/ttl",
        { id: grant.id, keys: true },
      );
      assert.equal(ttl.keys?.length, KEYS);
      const one = await postOk<GetResponse>(cluster, token, "/v1/kv/get", {
        key: ["leased", 7],
      });
      assert.notEqual(one.entry.versionstamp, null);
      // No keep-alive from here: every node shows every key absent.
      for (const node of cluster.nodes) {
        const seen = await stockAbsent(cluster, token, node.index, "leased");
        assert.ok(
          seen.absent,
          `node ${node.index} still shows keys ${seen.present?.join(",")}`,
        );
      }
      const gone = await post<unknown>(
        cluster.urls[0]!,
        token,
        "/v1/leases/ttl",
        { id: grant.id },
      );
      assert.equal(gone.status, 404, JSON.stringify(gone.body));
      // Every node applied the same log: the states are identical.
      const leader = await cluster.waitForLeader();
      const commit = (await cluster.status(leader))!.commitIndex;
      for (const node of cluster.nodes) {
        await cluster.waitForApplied(node.index, commit);
      }
      const hashes = await stateHashes(cluster);
      assert.equal(new Set(hashes).size, 1, hashes.join(" / "));
    });
  },
});

Deno.test({
  name:
    "a lease kept alive through a kill -9 of the leader survives, and so does its key",
  fn: async () => {
    await withProcessCluster({ count: 3 }, async (cluster) => {
      const leader = await cluster.waitForLeader();
      const token = await cluster.token();
      const grant = await postOk<LeaseGrantResponse>(
        cluster,
        token,
        "/v1/leases/grant",
        { ttlMs: TTL_MS },
      );
      await attachKeys(cluster, token, "kept", 1, grant.id);
      // Keep-alives every TTL/3 through any node that answers.
      let keeping = true;
      let lost: string | null = null;
      const keeper = (async () => {
        let node = 0;
        while (keeping) {
          const url = cluster.urls[node % cluster.urls.length]!;
          try {
            const answer = await post<LeaseKeepAliveResponse>(
              url,
              token,
              "/v1/leases/keepalive",
              { ids: [grant.id] },
            );
            const entry = answer.status === 200
              ? (answer.body as LeaseKeepAliveResponse).leases[0]
              : undefined;
            if (entry !== undefined && "error" in entry) lost = entry.error;
            if (entry === undefined) node++;
          } catch {
            node++;
          }
          await new Promise((resolve) => setTimeout(resolve, TTL_MS / 3));
        }
      })();
      try {
        await new Promise((resolve) => setTimeout(resolve, TTL_MS));
        await cluster.kill(leader);
        await cluster.waitForLeader();
        // Several TTLs under the new leader.
        await new Promise((resolve) => setTimeout(resolve, 3 * TTL_MS));
        await cluster.restart(leader);
        await new Promise((resolve) => setTimeout(resolve, TTL_MS));
      } finally {
        keeping = false;
        await keeper;
      }
      assert.equal(lost, null, "a keep-alive answered leaseNotFound");
      const ttl = await postOk<LeaseTtlResponse>(
        cluster,
        token,
        "/v1/leases/ttl",
        { id: grant.id },
      );
      assert.equal(ttl.id, grant.id);
      await waitFor("every node to read the kept key", async () => {
        for (const node of cluster.nodes) {
          const answer = await post<{ entries: { versionstamp: unknown }[] }>(
            node.url,
            token,
            "/v1/kv/get-many?consistency=eventual",
            { keys: [["kept", 0]] },
          ).catch(() => null);
          const body = answer?.body as
            | { entries: { versionstamp: unknown }[] }
            | undefined;
          if (body?.entries?.[0]?.versionstamp == null) return false;
        }
        return true;
      }, { timeoutMs: 15_000, intervalMs: 200 });
    });
  },
});
