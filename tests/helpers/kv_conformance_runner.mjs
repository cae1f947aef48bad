/**
 * Child program of `tests/kv_conformance_test.ts`: runs the conformance
 * suite (or writes / reads the cross-client values) through a stock client
 * and prints one JSON report on its last stdout line.
 *
 * - In Deno (`deno run --unstable-kv`): `Deno.openKv(target)`, a local path
 *   or a KV Connect URL (token from `DENO_KV_ACCESS_TOKEN`).
 * - Under Node: `openKv(target)` of `npm:@deno/kv` installed in
 *   `packageDir`. Under Node it cannot hand off to a built-in client, and the
 *   program also checks that the instance is the remote one and writes
 *   `[namespace, "marker"]`, which only a write reaching the server can leave.
 *
 * Usage: deno run … kv_conformance_runner.mjs '<json options>'
 *        node kv_conformance_runner.mjs '<json options>'
 *
 * @module
 */
import {
  readCrossValues,
  runConformanceSuite,
  writeCrossValues,
} from "./kv_conformance_suite.mjs";

/**
 * @typedef {object} RunnerOptions
 * @property {"suite" | "write-cross" | "read-cross"} mode
 * @property {string} client
 * @property {string} target Path or KV Connect URL.
 * @property {string} namespace First key part of everything written.
 * @property {string[]} [writers] For "read-cross".
 * @property {string} [packageDir] Where `@deno/kv` is installed (Node).
 * @property {string[]} [only] Case ids to run.
 */

/** @type {any} */
const deno = /** @type {any} */ (globalThis).Deno;
/** @type {any} */
const nodeProcess = /** @type {any} */ (globalThis).process;

const argument = deno !== undefined ? deno.args[0] : nodeProcess.argv[2];
/** @type {RunnerOptions} */
const options = JSON.parse(argument ?? "null");
if (options === null || typeof options.target !== "string") {
  throw new TypeError("Usage: kv_conformance_runner.mjs '<json options>'");
}

/** @returns {Promise<import("./kv_conformance_suite.mjs").ConformanceAdapter & {runtime: string, remote: () => Promise<unknown>}>} */
async function adapterOf() {
  if (deno !== undefined) {
    return {
      client: options.client,
      runtime: `deno ${deno.version.deno}`,
      open: () => deno.openKv(options.target),
      u64: (n) => new deno.KvU64(n),
      isU64: (value) => value instanceof deno.KvU64,
      features: {
        commitVersionstamp: true,
        promptExpiry: /^https?:/.test(options.target),
      },
      remote: () => Promise.resolve(null),
    };
  }
  if (options.packageDir === undefined) {
    throw new TypeError("Cannot run under Node without 'packageDir'");
  }
  const entry = `${options.packageDir}/node_modules/@deno/kv/esm/npm.js`;
  const module = await import(new URL(`file://${entry}`).href);
  const accessToken = nodeProcess.env.DENO_KV_ACCESS_TOKEN;
  const open = () => module.openKv(options.target, { accessToken });
  return {
    client: options.client,
    runtime: `node ${nodeProcess.version}`,
    open,
    u64: (n) => new module.KvU64(n),
    isU64: (value) => value instanceof module.KvU64,
    features: { commitVersionstamp: false, promptExpiry: true },
    // The remote path: a RemoteKv instance, and a marker only the server keeps.
    remote: async () => {
      const kv = await open();
      try {
        const kind = kv.constructor?.name;
        const result = await kv.set([options.namespace, "marker"], kind);
        return { kind, versionstamp: result.versionstamp };
      } finally {
        kv.close();
      }
    },
  };
}

/**
 * Errors a client throws outside any promise the suite awaits: `@deno/kv`'s
 * watch rethrows a refused request from its own pull loop. Kept and
 * reported instead of ending the process.
 *
 * @type {string[]}
 */
const unhandled = [];
if (deno === undefined) {
  nodeProcess.on("unhandledRejection", (/** @type {any} */ error) => {
    if (unhandled.length < 20) unhandled.push(String(error?.message ?? error));
  });
}

const adapter = await adapterOf();
const base = { namespace: options.namespace, runtime: adapter.runtime };
/** @type {Record<string, unknown>} */
let report;
if (options.mode === "suite") {
  const remote = await adapter.remote();
  report = {
    ...(await runConformanceSuite(adapter, { ...base, only: options.only })),
    remote,
    unhandled,
  };
} else if (options.mode === "write-cross") {
  await writeCrossValues(adapter, options.namespace);
  report = { client: adapter.client, runtime: adapter.runtime, results: [] };
} else {
  report = await readCrossValues(adapter, {
    ...base,
    writers: options.writers ?? [],
  });
}
console.log(JSON.stringify(report));
