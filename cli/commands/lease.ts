/**
 * `aspen lease grant | keepalive | revoke | ttl | list`, and what the
 * coordination commands (`lease`, `lock`, `elect`) share: argument parsers
 * and the exit codes of their refusals (a refusal exits 2, an unknown lease
 * or a token that does not hold exits 1).
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import {
  type AspenClient,
  LeaseNotFoundError,
  PermitsMismatchError,
} from "../../mod.ts";
import { LEASE_ID_PATTERN } from "../../src/protocol/http_api_leases.ts";
import { sleepFor } from "../../src/client/_timers.ts";
import {
  clientOf,
  type GlobalOptions,
  printJson,
  printTable,
  showKey,
  UsageError,
} from "./_context.ts";

/** The global options of a command. */
export function globals(
  command: { optsWithGlobals(): unknown },
): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

/**
 * Reads a whole number of at least `min`.
 *
 * @throws {UsageError} When `value` is not one.
 */
export function parseCount(value: string, what: string, min = 0): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(
      `Invalid ${what} '${value}': expected a whole number of at least ${min}`,
    );
  }
  return n;
}

/**
 * Reads a lease id: 16 lowercase hex digits.
 *
 * @throws {UsageError} When `value` is not one.
 */
export function parseLeaseId(value: string): string {
  if (!LEASE_ID_PATTERN.test(value)) {
    throw new UsageError(
      `Invalid lease id '${value}': expected 16 lowercase hex digits`,
    );
  }
  return value;
}

/**
 * Runs a coordination command's work, giving its refusals their exit
 * code: an unknown lease `id` reads `lease ID not found` (exit 1), a
 * permits mismatch is a refusal (exit 2); the rest exits through the
 * CLI's one failure path.
 */
export async function refusals<T>(
  work: () => Promise<T>,
  leaseId?: string,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof LeaseNotFoundError && leaseId !== undefined) {
      throw new LeaseNotFoundError(
        "leaseNotFound",
        `lease ${leaseId} not found`,
        { status: error.status, details: error.details, cause: error },
      );
    }
    if (error instanceof PermitsMismatchError) {
      throw new UsageError(error.message, { cause: error });
    }
    throw error;
  }
}

/**
 * A signal aborted at SIGINT or SIGTERM (Ctrl-C, `kill`), so a command
 * stops cleanly (releases, resigns) instead of dying; `stop()` removes
 * the listeners.
 */
export function interrupted(): { signal: AbortSignal; stop(): void } {
  const controller = new AbortController();
  const signals = ["SIGINT", "SIGTERM"] as const;
  const stop = () => {
    for (const name of signals) Deno.removeSignalListener(name, onSignal);
  };
  const onSignal = () => {
    stop();
    controller.abort(new Error("Interrupted"));
  };
  for (const name of signals) Deno.addSignalListener(name, onSignal);
  return { signal: controller.signal, stop };
}

function grantCommand(): CommandUnknownOpts {
  return new Command("grant")
    .description(
      "Grant a lease (the cluster may raise the TTL; it prints the TTL granted)",
    )
    .argument("<ttl-ms>", "time to live, 1000 to 604800000 ms")
    .option(
      "--id <id>",
      "the lease id (16 hex digits); default: chosen by the leader",
    )
    .action(async (ttl, options, command) => {
      const global = globals(command);
      const ttlMs = parseCount(ttl, "TTL", 1);
      const id = options.id === undefined
        ? undefined
        : parseLeaseId(options.id);
      using client = clientOf(global);
      const grant = await client.leases.grant(ttlMs, { id });
      if (global.json) printJson(grant);
      else console.log(`lease ${grant.id} granted: ttl ${grant.ttlMs} ms`);
    });
}

async function keepOnce(
  client: AspenClient,
  id: string,
  json: boolean | undefined,
): Promise<number> {
  const [result] = await client.leases.keepAlive([id]);
  if (result === undefined || "error" in result) {
    throw new LeaseNotFoundError("leaseNotFound", `lease ${id} not found`, {
      status: 404,
    });
  }
  if (json) console.log(JSON.stringify(result));
  else {
    console.log(
      `lease ${id} kept alive: ttl ${result.ttlMs} ms, ${result.remainingMs} ms left`,
    );
  }
  return result.ttlMs;
}

function keepAliveCommand(): CommandUnknownOpts {
  return new Command("keepalive")
    .description(
      "Keep a lease alive every TTL/3 until interrupted (Ctrl-C), a line per keep-alive",
    )
    .argument("<id>", "the lease id")
    .option("--once", "send one keep-alive and exit")
    .action(async (text, options, command) => {
      const global = globals(command);
      const id = parseLeaseId(text);
      using client = clientOf(global);
      const stop = interrupted();
      try {
        let ttlMs = await refusals(() => keepOnce(client, id, global.json), id);
        while (!options.once) {
          await sleepFor(Math.max(1, Math.floor(ttlMs / 3)), stop.signal);
          if (stop.signal.aborted) break;
          ttlMs = await refusals(() => keepOnce(client, id, global.json), id);
        }
      } finally {
        stop.stop();
      }
    });
}

function revokeCommand(): CommandUnknownOpts {
  return new Command("revoke")
    .description("Revoke a lease: its keys, locks and elections go with it")
    .argument("<id>", "the lease id")
    .action(async (text, _options, command) => {
      const global = globals(command);
      const id = parseLeaseId(text);
      using client = clientOf(global);
      const result = await refusals(() => client.leases.revoke(id), id);
      if (global.json) printJson(result);
      else {console.log(
          `lease ${id} revoked: ${result.keysDeleted} keys deleted`,
        );}
    });
}

function ttlCommand(): CommandUnknownOpts {
  return new Command("ttl")
    .description("Show a lease's TTL and the time left (the leader's view)")
    .argument("<id>", "the lease id")
    .option("--keys", "list the attached keys too")
    .action(async (text, options, command) => {
      const global = globals(command);
      const id = parseLeaseId(text);
      using client = clientOf(global);
      const ttl = await refusals(
        () => client.leases.timeToLive(id, { keys: options.keys }),
        id,
      );
      const keys = ttl.keys?.map((key) => showKey(key));
      if (global.json) {
        printJson({
          ...ttl,
          ...(keys === undefined
            ? {}
            : { keys: keys.map((k) => JSON.parse(k)) }),
        });
        return;
      }
      printTable(["LEASE", "TTL_MS", "REMAINING_MS"], [[
        ttl.id,
        String(ttl.ttlMs),
        String(ttl.remainingMs),
      ]]);
      if (keys !== undefined) {
        console.log(keys.length === 0 ? "no keys attached" : "KEYS");
        for (const key of keys) console.log(key);
      }
    });
}

/** Pages of `lease list` at most (1,000 each: the cluster's 100,000 leases). */
const LIST_PAGES_MAX = 100;

function listCommand(): CommandUnknownOpts {
  return new Command("list")
    .description("List every lease in id order")
    .action(async (_options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const leases = [];
      let cursor: string | undefined;
      for (let page = 0; page < LIST_PAGES_MAX; page++) {
        const result = await client.leases.list({ cursor, limit: 1000 });
        leases.push(...result.leases);
        if (result.cursor === null) break;
        cursor = result.cursor;
      }
      if (global.json) {
        printJson({ leases, cursor: null });
        return;
      }
      printTable(
        ["LEASE", "TTL_MS", "REVISION", "KEYS"],
        leases.map((
          l,
        ) => [l.id, String(l.ttlMs), String(l.revision), String(l.keyCount)]),
      );
    });
}

/** `aspen lease …` */
export function leaseCommand(): CommandUnknownOpts {
  return new Command("lease")
    .description("Grant, keep alive, revoke and inspect leases")
    .addCommand(grantCommand())
    .addCommand(keepAliveCommand())
    .addCommand(revokeCommand())
    .addCommand(ttlCommand())
    .addCommand(listCommand());
}
