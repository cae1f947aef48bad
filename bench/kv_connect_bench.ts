/**
 * Stages of a stock `Deno.openKv` write that the client module's write does
 * not have: the data-path token check and, at apply, the resend record and
 * the delivery mark (issue 12's exactly-once machinery). Run with
 * `deno task bench` or:
 * npx -y deno@2.9.6 bench --allow-read --allow-write --allow-env bench/kv_connect_bench.ts
 * Each group's summary prints the ratio to its baseline.
 *
 * @module
 */
import { logIndex } from "../src/raft/types.ts";
import { encodeKvEntry as encodeCommand } from "../src/services/entries.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { SqliteStateStore } from "../src/storage/sqlite_state_store.ts";
import { DataPathTokens } from "../src/frontends/kv_connect/_data_token.ts";
import type { KvAtomicOperation } from "../src/model/types.ts";

const directory = Deno.makeTempDirSync({ prefix: "aspen_kv_connect_bench_" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(directory, { recursive: true });
});

// A node issues the token; every request presents it again.
const HOUR_MS = 60 * 60 * 1000;
const issuer = new DataPathTokens(["bench-access-token"]);
const token = issuer.issue("bench-access-token", Date.now() + 2 * HOUR_MS);

Deno.bench("verify a data-path token, first time (HMAC)", {
  group: "data-path token",
  baseline: true,
}, () => {
  new DataPathTokens(["bench-access-token"]).verify(token, Date.now());
});
const verifier = new DataPathTokens(["bench-access-token"]);
verifier.verify(token, Date.now());
Deno.bench("verify a data-path token, seen before", {
  group: "data-path token",
}, () => {
  verifier.verify(token, Date.now());
});

/** Writes applied per batch (one Raft batch at 64 clients holds about that many). */
const BATCH_WRITES = 64;
const VALUE = new Uint8Array(256).fill(7);
const CLIENT_ID = "dp:benchbenchbenchbench12";
const encoder = new TextEncoder();

type Style = "session" | "resend" | "resend+mark";

function machine(name: string): KvStateMachine {
  return new KvStateMachine(
    new SqliteStateStore({ path: `${directory}/${name}.sqlite` }),
  );
}

const machines: Record<Style, KvStateMachine> = {
  session: machine("session"),
  resend: machine("resend"),
  "resend+mark": machine("resend_mark"),
};
let written = 0;

/** One batch of puts as a client-module write (a session) or a stock one (a session from the node, and a resend). */
function applyBatch(style: Style): void {
  const kv = machines[style];
  kv.host.batch(() => {
    const marks = [];
    for (let i = 0; i < BATCH_WRITES; i++) {
      const n = written++;
      const key = encoder.encode(`bench/${n}`);
      const operation: KvAtomicOperation = {
        checks: [],
        mutations: [{
          type: "set",
          key,
          value: { encoding: "bytes", data: VALUE },
          expireAtMs: null,
        }],
        enqueues: [],
        session: { clientId: "bench-session", seq: n },
      };
      const digest = new Uint8Array(32);
      new DataView(digest.buffer).setUint32(0, n);
      const index = logIndex(kv.appliedIndex() + 1);
      kv.apply(
        index,
        encodeCommand({
          type: "atomic",
          operation: style === "session" ? operation : {
            ...operation,
            resend: {
              clientId: CLIENT_ID,
              digest,
              mergeable: true,
              atMs: Date.now(),
            },
          },
        }),
      );
      marks.push({ clientId: CLIENT_ID, digest, index });
    }
    if (style === "resend+mark") {
      kv.apply(
        logIndex(kv.appliedIndex() + 1),
        encodeCommand({ type: "resendDelivered", marks }),
      );
    }
  });
}

Deno.bench(`apply ${BATCH_WRITES} client-module puts (session)`, {
  group: "apply a batch of puts",
  baseline: true,
}, () => applyBatch("session"));
Deno.bench(`apply ${BATCH_WRITES} stock puts (session + resend record)`, {
  group: "apply a batch of puts",
}, () => applyBatch("resend"));
Deno.bench(`apply ${BATCH_WRITES} stock puts and their delivery marks`, {
  group: "apply a batch of puts",
}, () => applyBatch("resend+mark"));
