/**
 * A linearizability test against three real node processes: concurrent
 * clients do put / get / compare-and-set on a few keys through the client
 * module while a nemesis kill -9s and restarts nodes and SIGSTOPs /
 * SIGCONTs the leader. The recorded history (unknown outcomes kept unknown)
 * must be linearizable for `kvModel`, and every acknowledged write of a
 * unique key must be on every node at the end.
 *
 * The seed of the clients' and the nemesis' choices is printed; set
 * ASPEN_HISTORY_SEED to replay the choices (timing still varies).
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { checkOperations, kvModel } from "../src/sim/lincheck.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import {
  explainViolation,
  runNemesis,
  runRecordingClients,
  seededRandom,
} from "./helpers/process_history.ts";
import { readReplica, replicaProblems } from "./helpers/process_kv.ts";

const LOAD_MS = 25_000;
const CLIENTS = 5;
const KEYS = ["r0", "r1", "r2", "r3"];
const UNIQUE_PREFIX = "unique";
const CHECK_TIMEOUT_MS = 30_000;

Deno.test("3 node processes under kill -9, restarts and SIGSTOP of the leader give a linearizable history and keep every acknowledged write", async () => {
  const seedText = Deno.env.get("ASPEN_HISTORY_SEED");
  const seed = seedText === undefined
    ? Math.floor(Math.random() * 2 ** 31)
    : Number(seedText);
  console.log(`history seed ${seed} (ASPEN_HISTORY_SEED=${seed} replays it)`);
  await withProcessCluster({ count: 3 }, async (cluster) => {
    await cluster.waitForLeader();
    const until = Date.now() + LOAD_MS;
    const faults: string[] = [];
    const [recording] = await Promise.all([
      runRecordingClients({
        urls: cluster.urls,
        token: await cluster.token(),
        clients: CLIENTS,
        keys: KEYS,
        uniquePrefix: UNIQUE_PREFIX,
        until,
        operationsMax: 2_000,
        timeoutMs: 4_000,
        seed,
      }),
      runNemesis(cluster, {
        until,
        random: seededRandom(seed ^ 0x5eed),
        log: (line) => faults.push(line),
      }),
    ]);
    console.log(`faults: ${faults.join("; ")}`);
    console.log(`operations: ${JSON.stringify(recording.counts)}`);

    // Every node is back: read each register once more, after everything.
    const leader = await cluster.waitForLeader(30_000);
    {
      using client = connect(cluster.urls, {
        timeoutMs: 10_000,
        token: await cluster.token(),
      });
      for (const key of KEYS) {
        const call = performance.now();
        const entry = await client.kv.get<string>([key]);
        recording.history.push({
          clientId: CLIENTS,
          input: { op: "get", key },
          output: { value: entry.value },
          call,
          return: performance.now(),
        });
      }
    }
    const started = performance.now();
    const result = checkOperations(kvModel, recording.history, {
      timeoutMs: CHECK_TIMEOUT_MS,
    });
    console.log(
      `lincheck: ${result.verdict} for ${recording.history.length} operations in ${
        Math.round(performance.now() - started)
      } ms`,
    );
    assert.equal(
      result.verdict,
      "linearizable",
      `seed ${seed}, faults: ${faults.join("; ")}\n${
        JSON.stringify(result.detail, null, 2)
      }\n${explainViolation(recording, result.detail, cluster.urls)}`,
    );
    assert.ok(recording.counts.put! + recording.counts.cas! > 50);

    const commitIndex = (await cluster.status(leader))!.commitIndex;
    for (const node of cluster.nodes) {
      await cluster.waitForApplied(node.index, commitIndex, 30_000);
      const replica = await readReplica(
        node.url,
        UNIQUE_PREFIX,
        await cluster.token(),
      );
      assert.deepEqual(
        replicaProblems(UNIQUE_PREFIX, recording.unique, replica),
        [],
        `node ${node.index}`,
      );
    }
  });
});
