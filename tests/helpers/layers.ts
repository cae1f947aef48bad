/**
 * Aspen's layers and the import rule, as ONE table (issue 14, "Target layout
 * and the import rule"; drawn in docs/architecture.md "Layers and the import
 * rule"). `tests/import_rule_test.ts` and `scripts/import_rule.ts` check every
 * `.ts` file under `src/` against it with `tests/helpers/import_rule.ts`.
 *
 * A file's layer is its first folder under `src/` (`services/<name>` and
 * `frontends/<name>` count two folders: each service and each front end is
 * its own layer). Imports inside one layer are always allowed. `*_test.ts`
 * files and the conformance suites in {@link TEST_SUPPORT} are tests: they may
 * import anything and may use the host and the clock.
 *
 * Selectors in `may`/`mayType`: `"base"` is every file of a layer,
 * `"services/*"` every service, `"state/state_store.ts"` one file, and
 * `"services/*\/api.ts"` one file of each service. Library names are npm
 * package names (`@noble/hashes`), `node:*` for the Node built-ins, or a
 * trailing-`*` prefix.
 *
 * @module
 */

/** The rule for one layer. */
export interface LayerRule {
  /** The layer: `base`, or `services/*` for every service. */
  readonly layer: string;
  /** What its files may import (values and types). */
  readonly may: readonly string[] | "anything";
  /** What its files may import with `import type` only, beyond `may`. */
  readonly mayType?: readonly string[];
  /** The libraries (npm packages, `node:` built-ins) it may use. */
  readonly libraries: readonly string[] | "any";
  /**
   * True when the layer must be deterministic and host-free (no `Deno.*`,
   * timers, `Date.now`, `performance.now`, `Math.random`,
   * `crypto.getRandomValues`); a list of file names limits it to those files.
   */
  readonly pure: boolean | readonly string[];
  /** Why, in one line (printed with a violation). */
  readonly why: string;
}

/** The libraries the wire and state layers share. */
const MSGPACK = "@msgpack/msgpack";
/** The hashes, curves and ciphers (audited, browser-safe). */
const NOBLE = ["@noble/hashes", "@noble/curves", "@noble/ciphers"];

/**
 * Raft's vocabulary: the branded `Term`/`LogIndex`/`NodeId` with their
 * one-line constructors, entries and messages, no logic. "Raft types" in
 * the rule means this file (values too: `logIndex(n)` is a cast); any
 * other raft file is the consensus core, whose values only node, server
 * and sim import (others may `import type` from it).
 */
const RAFT_TYPES = "raft/types.ts";

/** The ports a front end may call in `src/node/` (besides services' api.ts). */
export const NODE_PORTS = [
  "node/node_api.ts",
] as const;

/** The import rule: one row per layer, checked in this order. */
export const LAYERS: readonly LayerRule[] = [
  {
    layer: "base",
    may: [],
    libraries: [],
    pure: true,
    why: "base imports nothing",
  },
  {
    layer: "raft",
    may: ["base"],
    libraries: [],
    pure: true,
    why: "raft is the pure consensus core: it imports base only",
  },
  {
    layer: "model",
    may: ["base"],
    // A versionstamp is a log index: model names raft's LogIndex type.
    mayType: [RAFT_TYPES],
    libraries: [],
    pure: true,
    why:
      "model (the Deno KV data model) imports base (and raft's LogIndex type) only",
  },
  {
    layer: "protocol",
    may: ["base", "model", RAFT_TYPES],
    mayType: ["raft"],
    libraries: [MSGPACK],
    pure: true,
    why: "protocol imports base, model and raft types",
  },
  {
    layer: "state",
    may: ["base", "model", RAFT_TYPES],
    mayType: ["raft"],
    libraries: [MSGPACK, ...NOBLE],
    pure: true,
    why: "state imports base, model and raft types",
  },
  {
    // The files directly in src/services/ compose the built-in services: the
    // one registration table (table.ts), their entry encoders, the in-process
    // backend and the state machine the node runs.
    layer: "services",
    may: ["state", "model", "base", RAFT_TYPES, "services/*"],
    mayType: ["protocol"],
    libraries: [MSGPACK],
    pure: false,
    why:
      "src/services/*.ts compose the services (the registration table): state, model, base, protocol types and any service",
  },
  {
    layer: "services/*",
    may: ["state", "model", "base", RAFT_TYPES, "services/*/api.ts"],
    mayType: ["protocol"],
    // croner steps cron schedules (jobs/schedule_time.ts) on the leader.
    libraries: [MSGPACK, ...NOBLE, "croner"],
    pure: ["apply.ts"],
    why:
      "a service imports state, model, base, protocol types, and other services only through their api.ts",
  },
  {
    layer: "storage",
    // The StateStore port is state_store.ts plus its snapshot chunking
    // (snapshot.ts), and it speaks model's row types.
    may: [
      "base",
      "protocol",
      RAFT_TYPES,
      "state/state_store.ts",
      "state/snapshot.ts",
    ],
    mayType: ["raft", "model"],
    libraries: [MSGPACK, "node:sqlite"],
    pure: false,
    why:
      "storage imports the ports it implements (StateStore, raft types, model's row types), protocol and base",
  },
  {
    layer: "cluster",
    may: ["base", "protocol", RAFT_TYPES],
    mayType: ["raft"],
    libraries: [MSGPACK, ...NOBLE, "@peculiar/x509"],
    pure: false,
    why: "cluster imports raft types, protocol and base",
  },
  {
    layer: "transport",
    // QUIC links authenticate with the cluster's identity and handshake.
    may: ["base", "protocol", "cluster", RAFT_TYPES],
    mayType: ["raft"],
    libraries: [MSGPACK, ...NOBLE],
    pure: false,
    why: "transport imports raft types, cluster (identity), protocol and base",
  },
  {
    layer: "node",
    may: [
      "base",
      "raft",
      "model",
      "protocol",
      "state",
      "services",
      "services/*",
      "storage",
      "transport",
      "cluster",
    ],
    libraries: [MSGPACK, ...NOBLE, "node:*"],
    pure: false,
    why:
      "node never imports frontends (server wires them), sim, workers or client",
  },
  {
    layer: "frontends/common",
    may: ["base", "model", "protocol", ...NODE_PORTS, "services/*/api.ts"],
    libraries: ["hono", "http-parser-js", "node:buffer"],
    pure: false,
    why:
      "frontends/common is shared plumbing: node ports, services' api.ts, protocol, model, base",
  },
  {
    layer: "frontends/*",
    may: [
      "base",
      "model",
      "protocol",
      "frontends/common",
      ...NODE_PORTS,
      "services/*/api.ts",
    ],
    libraries: ["hono", MSGPACK, ...NOBLE, "@bufbuild/protobuf", "node:buffer"],
    pure: false,
    why:
      "a front end imports node ports, services' api.ts, protocol, model, base and frontends/common; never storage, never another front end",
  },
  {
    layer: "client",
    may: ["protocol", "model", "base"],
    libraries: [MSGPACK],
    pure: false,
    why: "the browser-safe client imports protocol, model and base",
  },
  {
    layer: "workers",
    may: ["client", "protocol", "model", "base"],
    // Webhook workers sign with HMAC-SHA256 and check targets' addresses.
    libraries: [MSGPACK, "@noble/hashes", "ipaddr.js"],
    pure: false,
    why: "workers run outside the cluster: they import the client",
  },
  {
    layer: "deps",
    may: [],
    libraries: [MSGPACK],
    pure: true,
    why: "deps re-exports one library by its full specifier",
  },
  {
    layer: "server",
    may: "anything",
    libraries: "any",
    pure: false,
    why: "server is the composition root",
  },
  {
    layer: "sim",
    may: "anything",
    libraries: "any",
    pure: false,
    why: "sim drives every layer",
  },
];

/**
 * Files under `src/` that re-export a library by its full specifier: an
 * import of one counts as using that library.
 */
export const LIBRARY_SHIMS: Readonly<Record<string, string>> = {
  "deps/msgpack.ts": MSGPACK,
};

/** Files under `src/` that are test support, not product code (tests import them). */
export const TEST_SUPPORT: readonly RegExp[] = [
  /_test\.ts$/,
  /_conformance\.ts$/,
];

/** A group of known violations with one owner and one reason. */
export interface AllowedGroup {
  /** Who fixes them (the helper whose branch owns the files). */
  readonly owner: string;
  readonly reason: string;
  /**
   * `src/a.ts -> src/b.ts` (the import resolved), `src/a.ts -> hono`, or
   * `src/a.ts: Date.now` for an ambient API; a trailing `*` matches any rest.
   */
  readonly keys: readonly string[];
}

/**
 * Violations known on this branch in files other helpers own (issue 14 is
 * done by several branches at once). The check skips them, and fails on an
 * entry that no longer matches anything: the lead removes each group when
 * the owner's branch is merged, and the list ends empty.
 */
export const ALLOWED: readonly AllowedGroup[] = [];
