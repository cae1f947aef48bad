/**
 * KV state machine benchmarks, with a local Deno KV (`Deno.openKv(path)`,
 * needs `--unstable-kv`) as the anchor for reads. Run with `deno task bench`
 * or: npx -y deno@2.9.6 bench --allow-read --allow-write --allow-env --unstable-kv bench/kv_bench.ts
 * Each group's summary prints Aspen's ratio to its baseline.
 *
 * @module
 */
import { logIndex } from "../src/raft/types.ts";
import { decodeKey, encodeKey } from "../src/model/key_codec.ts";
import { encodeKvEntry as encodeCommand } from "../src/services/entries.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { SqliteStateStore } from "../src/storage/sqlite_state_store.ts";

/** Keys preloaded in every store. */
const KEY_COUNT = 10_000;
/** Entries per range read. */
const RANGE_ENTRIES = 100;
const VALUE = new Uint8Array(100).fill(7);

const directory = Deno.makeTempDirSync({ prefix: "aspen_kv_bench_" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(directory, { recursive: true });
});

const sampleKey = ["users", 123456789n, "profile", 3.5, true];
const sampleBytes = encodeKey(sampleKey);
const keyOf = (i: number) => ["bench", i];

function setCommand(key: Uint8Array) {
  return encodeCommand({
    type: "atomic",
    operation: {
      checks: [],
      mutations: [{
        type: "set",
        key,
        value: { encoding: "bytes", data: VALUE },
      }],
      enqueues: [],
    },
  });
}

function preload(machine: KvStateMachine): void {
  for (let start = 0; start < KEY_COUNT; start += 500) {
    const mutations = Array.from({ length: 500 }, (_, j) => ({
      type: "set" as const,
      key: encodeKey(keyOf(start + j)),
      value: { encoding: "bytes" as const, data: VALUE },
    }));
    const data = encodeCommand({
      type: "atomic",
      operation: { checks: [], mutations, enqueues: [] },
    });
    machine.apply(logIndex(machine.appliedIndex() + 1), data);
  }
}

const memory = new KvStateMachine(new MemoryStateStore());
preload(memory);
const sqlite = new KvStateMachine(
  new SqliteStateStore({ path: `${directory}/state.sqlite` }),
);
preload(sqlite);
const denoKv = await Deno.openKv(`${directory}/deno.sqlite`);
for (let start = 0; start < KEY_COUNT; start += 500) {
  const atomic = denoKv.atomic();
  for (let j = 0; j < 500; j++) atomic.set(keyOf(start + j), VALUE);
  await atomic.commit();
}

let counter = 0;
const nextKey = () => (counter = (counter * 7919 + 1) % KEY_COUNT);
const prefix = encodeKey(["bench"]);

Deno.bench("encodeKey() of a 5-part key", {
  group: "key codec",
  baseline: true,
}, () => {
  encodeKey(sampleKey);
});
Deno.bench("decodeKey() of a 5-part key", { group: "key codec" }, () => {
  decodeKey(sampleBytes);
});

const applyMemory = new KvStateMachine(new MemoryStateStore());
const applySqlite = new KvStateMachine(
  new SqliteStateStore({ path: `${directory}/apply.sqlite` }),
);
let applied = 0;
Deno.bench(
  "apply() one set, memory store",
  { group: "apply", baseline: true },
  () => {
    applyMemory.apply(
      logIndex(applyMemory.appliedIndex() + 1),
      setCommand(encodeKey(["a", applied++])),
    );
  },
);
Deno.bench("apply() one set, SQLite store", { group: "apply" }, () => {
  applySqlite.apply(
    logIndex(applySqlite.appliedIndex() + 1),
    setCommand(encodeKey(["a", applied++])),
  );
});
Deno.bench("Deno KV set() (anchor)", { group: "apply" }, async () => {
  await denoKv.set(["a", applied++], VALUE);
});

Deno.bench(
  "Deno KV get() (anchor)",
  { group: "point read", baseline: true },
  async () => {
    await denoKv.get(keyOf(nextKey()));
  },
);
Deno.bench(
  "KvStateMachine.get(), memory store",
  { group: "point read" },
  () => {
    memory.get(encodeKey(keyOf(nextKey())));
  },
);
Deno.bench(
  "KvStateMachine.get(), SQLite store",
  { group: "point read" },
  () => {
    sqlite.get(encodeKey(keyOf(nextKey())));
  },
);

Deno.bench(`Deno KV list() of ${RANGE_ENTRIES} (anchor)`, {
  group: "range read",
  baseline: true,
}, async () => {
  const start = nextKey() % (KEY_COUNT - RANGE_ENTRIES);
  let n = 0;
  for await (
    const _ of denoKv.list({ start: keyOf(start), end: ["bench", KEY_COUNT] }, {
      limit: RANGE_ENTRIES,
    })
  ) n++;
  if (n !== RANGE_ENTRIES) {
    throw new Error(`Expected ${RANGE_ENTRIES} entries, got ${n}`);
  }
});
for (
  const [name, machine] of [["memory", memory], ["SQLite", sqlite]] as const
) {
  Deno.bench(`KvStateMachine.list() of ${RANGE_ENTRIES}, ${name} store`, {
    group: "range read",
  }, () => {
    const start = nextKey() % (KEY_COUNT - RANGE_ENTRIES);
    const page = machine.list({ prefix, start: encodeKey(keyOf(start)) }, {
      limit: RANGE_ENTRIES,
    });
    if (page.entries.length !== RANGE_ENTRIES) {
      throw new Error(`Expected ${RANGE_ENTRIES} entries`);
    }
  });
}
