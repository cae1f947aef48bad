/**
 * The Deno KV conformance suite, written once and run against every client:
 * local `Deno.openKv(path)` (the reference), stock `Deno.openKv(url)`,
 * `npm:@deno/kv` under Node, and Aspen's own `connect().kv`. A client is an
 * {@linkcode ConformanceAdapter}; {@linkcode runConformanceSuite} runs every
 * case against it and answers a JSON {@linkcode SuiteReport}. Cross-client
 * reads: {@linkcode writeCrossValues} then {@linkcode readCrossValues}.
 *
 * A case that fails only against Aspen is a product difference: it stays in
 * the suite and is named in {@linkcode EXPECTED_DIFFERENCES} with its reason,
 * reported as "expected-difference"; a listed case that passes is reported as
 * "difference-fixed" so the entry is removed.
 *
 * Dependency-free ES: it runs in Deno and under Node (for `npm:@deno/kv`).
 *
 * @module
 */
import { assertSame, describeValue } from "./kv_conformance_assert.mjs";
import { DATA_CASES } from "./kv_conformance_cases.mjs";
import { LIMIT_CASES } from "./kv_conformance_limits.mjs";

/**
 * @typedef {object} ConformanceAdapter
 * @property {string} client Name of the client ("deno-local", "deno-remote", "npm-deno-kv", "aspen-client").
 * @property {() => Promise<any>} open Opens the client (Deno.Kv's shape).
 * @property {(n: bigint) => unknown} u64 Makes the client's KvU64.
 * @property {(value: unknown) => boolean} isU64 Whether a value is the client's KvU64.
 * @property {{commitVersionstamp: boolean, promptExpiry: boolean}} features
 * What the client or its database offers; cases requiring a missing one are skipped.
 */

/**
 * @typedef {object} CaseResult
 * @property {string} id
 * @property {string} name
 * @property {"pass" | "fail" | "skip" | "expected-difference" | "difference-fixed"} status
 * @property {string} detail
 * @property {string} [difference] Name of the expected difference.
 * @property {number} ms
 */

/**
 * @typedef {object} SuiteReport
 * @property {string} client
 * @property {string} runtime
 * @property {CaseResult[]} results
 */

/** Every case of the suite, in run order. */
export const CASES = [...DATA_CASES, ...LIMIT_CASES];
if (new Set(CASES.map((c) => c.id)).size !== CASES.length) {
  throw new Error("Cannot define the conformance suite: case ids repeat");
}

/** Names of the cross-client values stored V8-serialized (not bytes or u64). */
const V8_VALUE_NAMES = [
  "string",
  "empty-string",
  "integer",
  "double",
  "negative-zero",
  "nan",
  "bigint",
  "negative-bigint",
  "boolean",
  "null",
  "date",
  "map",
  "set",
  "array",
  "nested",
  "nested-bytes",
];

/**
 * @typedef {object} ExpectedDifference
 * @property {string} name
 * @property {readonly string[]} caseIds Cases (or `cross:<writer>:<value>` reads) that fail.
 * @property {readonly string[]} clients Clients they fail for.
 * @property {string} [runtimePattern] Only where the client's runtime matches this RegExp.
 * @property {string} failurePattern A RegExp the failure's detail must match: a listed case that fails another way is a plain failure.
 * @property {"aspen" | "client"} side Whether Aspen (server or its client) or the stock client differs.
 * @property {string} reason
 */

/**
 * Known differences: the case still runs, its failure is reported as
 * "expected-difference", and a listed case that passes fails the test as
 * "difference-fixed" so the entry is removed. "client" differences are the
 * stock client's own and would show against any KV Connect server.
 *
 * @type {readonly ExpectedDifference[]}
 */
export const EXPECTED_DIFFERENCES = [
  {
    name: "deno-kv-npm-read-key-range",
    failurePattern: "^get: expected an error, but it succeeded$",
    caseIds: ["lkr"],
    clients: ["npm-deno-kv"],
    side: "client",
    reason:
      "@deno/kv reads one key as the range [key, 0xff] with limit 1, so a 2049-byte key stays within the 2049-byte read limit a server checks; Deno's client reads [key, key+0x00] (2050 bytes) and refuses it before sending",
  },
  {
    name: "deno-kv-npm-empty-key-message",
    failurePattern: "received 'Key cannot be empty'$",
    caseIds: ["lke"],
    clients: ["npm-deno-kv"],
    side: "client",
    reason:
      "@deno/kv refuses an empty key itself with 'Key cannot be empty' (capital K) where Deno says 'key cannot be empty'",
  },
  {
    name: "deno-kv-npm-batch-size-message",
    failurePattern: "received 'Bad 'batchSize': 1001'$",
    caseIds: ["lb"],
    clients: ["npm-deno-kv"],
    side: "client",
    reason:
      "@deno/kv refuses batchSize 1001 itself, with its own message 'Bad 'batchSize': 1001'",
  },
  {
    name: "deno-kv-npm-watch-absent-first-frame",
    failurePattern: "^first frame: no answer within \\d+ ms$",
    caseIds: ["wn"],
    clients: ["npm-deno-kv"],
    side: "client",
    reason:
      "@deno/kv's non-raw watch stream holds back the first frame until a watched key has a versionstamp (unraw_watch_stream.js); Deno emits the nulls at once",
  },
  {
    name: "deno-kv-npm-watch-error-unhandled",
    failurePattern:
      "^watch of 11: expected an error containing 'Too many keys \\(max 10\\)', received 'watch of 11: no answer within \\d+ ms'$",
    caseIds: ["lw"],
    clients: ["npm-deno-kv"],
    side: "client",
    reason:
      "@deno/kv rethrows the server's 400 to a watch of 11 keys ('Too many keys (max 10)') from its own pull loop as an unhandled rejection, so the stream never errors (the Node runner reports it)",
  },
  {
    name: "deno-kv-npm-node-buffer-in-v8",
    failurePattern: "^could not deserialize value$",
    caseIds: ["cross:npm-deno-kv:nested-bytes"],
    clients: ["deno-remote"],
    side: "client",
    reason:
      "@deno/kv under Node serializes with node:v8, which writes a Uint8Array inside a value as a Node host object; Deno cannot deserialize it (Aspen's client can)",
  },
  {
    name: "node-20-reads-v8-format-15",
    failurePattern:
      "^Unable to deserialize cloned data due to invalid or unsupported version\.$",
    caseIds: ["deno-remote", "aspen-client"].flatMap((writer) =>
      V8_VALUE_NAMES.map((name) => `cross:${writer}:${name}`)
    ),
    clients: ["npm-deno-kv"],
    runtimePattern: "^node v(1[0-9]|20)\\.",
    side: "client",
    reason:
      "Deno 2.9.6 writes V8 serialization format version 16 (and Aspen's client writes what Deno writes); Node 20's V8 11.3 reads up to version 15",
  },
];

/**
 * Why a case was skipped for clients without a feature.
 *
 * @type {Readonly<Record<string, string>>}
 */
export const FEATURE_REASONS = {
  commitVersionstamp: "the client has no kv.commitVersionstamp()",
  promptExpiry:
    "the database deletes expired keys on its own schedule (local SQLite sweeps in the background: observed still readable after 10 s)",
};

/**
 * The expected difference of this case for this client and runtime, if any.
 *
 * @param {string} client
 * @param {string} runtime
 * @param {string} caseId
 */
export function expectedDifferenceOf(client, runtime, caseId) {
  return EXPECTED_DIFFERENCES.find((d) =>
    d.caseIds.includes(caseId) && d.clients.includes(client) &&
    (d.runtimePattern === undefined ||
      new RegExp(d.runtimePattern).test(runtime))
  );
}

/**
 * @param {CaseResult["status"]} status
 * @param {{client: string, runtime: string}} who
 * @param {string} caseId
 * @param {string} detail
 * @returns {Pick<CaseResult, "status" | "detail" | "difference">}
 */
export function classify(status, who, caseId, detail) {
  const difference = expectedDifferenceOf(who.client, who.runtime, caseId);
  if (difference === undefined || status === "skip") return { status, detail };
  if (status === "fail") {
    if (!new RegExp(difference.failurePattern).test(detail)) {
      return {
        status: "fail",
        detail:
          `${detail} (listed as '${difference.name}', but fails differently: expected a detail matching /${difference.failurePattern}/)`,
      };
    }
    return {
      status: "expected-difference",
      detail: `${difference.reason} (${detail})`,
      difference: difference.name,
    };
  }
  return {
    status: "difference-fixed",
    detail: `passes: remove the expected difference '${difference.name}'`,
    difference: difference.name,
  };
}

/**
 * @param {ConformanceAdapter} adapter
 * @param {any} kv
 * @param {string} id
 * @param {string} namespace
 */
function contextOf(adapter, kv, id, namespace) {
  return {
    kv,
    key: (/** @type {unknown[]} */ ...parts) => [namespace, id, ...parts],
    u64: adapter.u64,
    isU64: adapter.isU64,
    same: (
      /** @type {unknown} */ actual,
      /** @type {unknown} */ expected,
      /** @type {string} */ what,
    ) => assertSame(actual, expected, what, adapter.isU64),
  };
}

/**
 * Runs every case (or those whose id is in `only`) against the client.
 *
 * @param {ConformanceAdapter} adapter
 * @param {{namespace: string, runtime: string, only?: readonly string[]}} options
 * @returns {Promise<SuiteReport>}
 */
export async function runConformanceSuite(adapter, options) {
  const kv = await adapter.open();
  const who = { client: adapter.client, runtime: options.runtime };
  /** @type {CaseResult[]} */
  const results = [];
  try {
    for (const testCase of CASES) {
      if (options.only !== undefined && !options.only.includes(testCase.id)) {
        continue;
      }
      const started = Date.now();
      /** @type {CaseResult["status"]} */
      let status = "pass";
      let detail = "";
      if (testCase.requires && !adapter.features[testCase.requires]) {
        status = "skip";
        detail = FEATURE_REASONS[testCase.requires] ?? testCase.requires;
      } else {
        try {
          await testCase.run(
            contextOf(adapter, kv, testCase.id, options.namespace),
          );
        } catch (error) {
          status = "fail";
          detail = String(
            /** @type {{message?: unknown}} */ (error)?.message ?? error,
          );
        }
      }
      results.push({
        id: testCase.id,
        name: testCase.name,
        ...classify(status, who, testCase.id, detail),
        ms: Date.now() - started,
      });
    }
  } finally {
    kv.close();
  }
  return { client: adapter.client, runtime: options.runtime, results };
}

/**
 * The values every client writes for the others to read back.
 *
 * @param {(n: bigint) => unknown} u64
 * @returns {[string, unknown][]}
 */
export function crossValues(u64) {
  return [
    ["string", "héllo € 𝄞"],
    ["empty-string", ""],
    ["integer", 42],
    ["double", -1.5e300],
    ["negative-zero", -0],
    ["nan", NaN],
    ["bigint", 12345678901234567890n],
    ["negative-bigint", -98765432109876543210n],
    ["boolean", true],
    ["null", null],
    ["date", new Date(1_700_000_000_123)],
    ["bytes", new Uint8Array([0, 1, 2, 255])],
    ["map", new Map([["a", 1], ["b", [2n]]])],
    ["set", new Set(["x", 3, null])],
    ["array", [1, "two", null, false, undefined, [3]]],
    ["nested", {
      name: "n",
      list: [{ deep: { deeper: [1, 2n] } }],
      when: new Date(0),
      tags: new Set([1]),
      none: undefined,
    }],
    ["nested-bytes", { bytes: new Uint8Array([9, 8, 7]) }],
    ["u64", u64(18446744073709551615n)],
  ];
}

/**
 * Writes {@linkcode crossValues} under `[namespace, "cross", client, name]`.
 *
 * @param {ConformanceAdapter} adapter
 * @param {string} namespace
 */
export async function writeCrossValues(adapter, namespace) {
  const kv = await adapter.open();
  try {
    const op = kv.atomic();
    for (const [name, value] of crossValues(adapter.u64)) {
      op.set([namespace, "cross", adapter.client, name], value);
    }
    const result = await op.commit();
    if (!result.ok) throw new Error("Cannot write the cross-client values");
  } finally {
    kv.close();
  }
}

/**
 * Reads what each of `writers` wrote with {@linkcode writeCrossValues} and
 * compares it with {@linkcode crossValues}: one result per writer and value,
 * with id `cross:<writer>:<value>`.
 *
 * @param {ConformanceAdapter} adapter
 * @param {{namespace: string, runtime: string, writers: readonly string[]}} options
 * @returns {Promise<SuiteReport>}
 */
export async function readCrossValues(adapter, options) {
  const kv = await adapter.open();
  const who = { client: adapter.client, runtime: options.runtime };
  /** @type {CaseResult[]} */
  const results = [];
  try {
    for (const writer of options.writers) {
      for (const [name, expected] of crossValues(adapter.u64)) {
        const started = Date.now();
        const id = `cross:${writer}:${name}`;
        /** @type {CaseResult["status"]} */
        let status = "pass";
        let detail = "";
        try {
          const entry = await kv.get([
            options.namespace,
            "cross",
            writer,
            name,
          ]);
          const a = JSON.stringify(describeValue(entry.value, adapter.isU64));
          const e = JSON.stringify(describeValue(expected, adapter.isU64));
          if (a !== e) {
            status = "fail";
            detail = `expected ${e}, received ${a}`;
          }
        } catch (error) {
          status = "fail";
          detail = String(
            /** @type {{message?: unknown}} */ (error)?.message ?? error,
          );
        }
        results.push({
          id,
          name: `a ${name} value written by ${writer} reads back identically`,
          ...classify(status, who, id, detail),
          ms: Date.now() - started,
        });
      }
    }
  } finally {
    kv.close();
  }
  return { client: adapter.client, runtime: options.runtime, results };
}
