/**
 * `aspen lock acquire | release | status`, and running a command while a
 * lock or leadership is held (`… -- CMD ARGS…`), which `elect campaign`
 * shares.
 *
 * For `lock acquire` and `elect campaign`, `--timeout MS` after the command
 * is how long to wait for the grant (before it, the request deadline).
 *
 * @module
 */
import {
  Command,
  type CommandUnknownOpts,
  Option,
} from "@commander-js/extra-typings";
import { type AspenClient, NotHolderError, type OpenLease } from "../../mod.ts";
import {
  clientOf,
  EXIT,
  printJson,
  printTable,
  UsageError,
} from "./_context.ts";
import {
  globals,
  interrupted,
  parseCount,
  parseLeaseId,
  refusals,
} from "./lease.ts";

/** Global options of `aspen` that take a value (so their value is no command word). */
const GLOBAL_VALUE_OPTIONS = new Set([
  "--url",
  "--ticket",
  "--token",
  "--admin-token",
  "--timeout",
]);

/** Options of coordination commands that share a global option's name, by command. */
const SHADOWED: Record<string, Record<string, string>> = {
  "lock acquire": { "--timeout": "--wait-timeout" },
  "elect campaign": { "--timeout": "--wait-timeout" },
  "lock release": { "--token": "--holder-token" },
  "elect proclaim": { "--token": "--holder-token" },
  "elect resign": { "--token": "--holder-token" },
  "hook create": { "--timeout": "--attempt-timeout" },
};

/**
 * `lock release NAME --token T` and `lock acquire NAME --timeout MS` (and
 * their `elect` kin) reuse the names of global options (the bearer token,
 * the request deadline), which commander would give to the global ones
 * wherever they appear. Given after the command's words, they are the
 * command's: renamed here to the command's own option, before parsing.
 * Before the command words they stay global; after `--` nothing changes.
 */
export function renameShadowedOptions(args: readonly string[]): string[] {
  const words: string[] = [];
  const renamed: string[] = [];
  let renames: Record<string, string> | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      renamed.push(...args.slice(i));
      break;
    }
    if (renames !== undefined && arg.startsWith("--")) {
      const [name, ...rest] = arg.split("=");
      const own = renames[name!];
      if (own !== undefined) {
        renamed.push(rest.length > 0 ? `${own}=${rest.join("=")}` : own);
        continue;
      }
    }
    renamed.push(arg);
    if (renames !== undefined) continue;
    if (arg.startsWith("-")) {
      if (GLOBAL_VALUE_OPTIONS.has(arg) && i + 1 < args.length) {
        renamed.push(args[++i]!);
      }
      continue;
    }
    words.push(arg);
    if (words.length === 2) renames = SHADOWED[words.join(" ")] ?? {};
  }
  return renamed;
}

/** A `--timeout` shown in help; the value arrives as the hidden `--wait-timeout`. */
export function waitTimeoutHelp(): Option {
  return new Option("--timeout <ms>", "how long to wait (then exit 1)");
}

/** The hidden option `--timeout` after the command is renamed to. */
export function waitTimeoutOption(): Option<
  "--wait-timeout <ms>",
  undefined,
  undefined,
  number
> {
  return new Option("--wait-timeout <ms>").hideHelp().argParser((v) =>
    parseCount(v, "--timeout", 0)
  );
}

/** A `--token` shown in help; the value arrives as the hidden `--holder-token`. */
export function holderTokenHelp(): Option {
  return new Option(
    "--token <token>",
    "the holder's token (20 hex digits), required",
  );
}

/** The hidden option `--token` after the command is renamed to. */
export function holderTokenOption(): Option {
  return new Option("--holder-token <token>").hideHelp();
}

/**
 * The holder token given with `--token` after the command.
 *
 * @throws {UsageError} When none was given.
 */
export function holderToken(
  options: { holderToken?: unknown },
  path: string,
): string {
  if (typeof options.holderToken !== "string") {
    throw new UsageError(
      `required option '--token <token>' not specified (see 'aspen ${path} --help')`,
    );
  }
  return options.holderToken;
}

/** TTL of the lease `lock acquire` and `elect campaign` grant without `--lease`, ms. */
export const HOLD_TTL_MS_DEFAULT = 60_000;

/** What a held lock or leadership gives the command it runs. */
export interface Held {
  readonly name: string;
  readonly token: string;
  readonly lease: OpenLease;
  /** Releases the lock or resigns. */
  readonly leave: () => Promise<void>;
}

/**
 * The lease a waiting command holds with: `--lease ID` (kept alive only
 * with a command), or a new lease of `--ttl` (kept alive only with a
 * command; otherwise nobody keeps it alive).
 */
export async function holdLease(
  client: AspenClient,
  options: { lease?: string; ttl?: number },
  keptAlive: boolean,
): Promise<{ id: string; open: OpenLease | null; created: boolean }> {
  const ttlMs = options.ttl ?? HOLD_TTL_MS_DEFAULT;
  if (options.lease !== undefined) {
    const id = parseLeaseId(options.lease);
    if (!keptAlive) return { id, open: null, created: false };
    const open = await refusals(() => client.leases.keep(id), id);
    return { id, open, created: false };
  }
  if (!keptAlive) {
    const grant = await client.leases.grant(ttlMs);
    return { id: grant.id, open: null, created: true };
  }
  const open = await client.leases.open({ ttlMs });
  return { id: open.id, open, created: true };
}

/**
 * Holds a lease (see {@linkcode holdLease}) and obtains a lock or
 * leadership with it; when obtaining fails, a lease granted for it goes
 * at once rather than at its TTL.
 */
export async function obtainUnderLease<T>(
  client: AspenClient,
  options: { lease?: string; ttl?: number },
  keptAlive: boolean,
  obtain: (lease: OpenLease | string) => Promise<T>,
): Promise<{ lease: { id: string; open: OpenLease | null }; held: T }> {
  const lease = await holdLease(client, options, keptAlive);
  try {
    const held = await refusals(() => obtain(lease.open ?? lease.id), lease.id);
    return { lease, held };
  } catch (error) {
    if (lease.open !== null) await lease.open.close().catch(() => {});
    else if (lease.created) {
      await client.leases.revoke(lease.id).catch(() => {});
    }
    throw error;
  }
}

/**
 * Runs `cmd` with `ASPEN_LOCK_NAME`, `ASPEN_LOCK_TOKEN`, `ASPEN_LEASE_ID`
 * while the lease is kept alive. A lost lease sends it SIGTERM (exit 1);
 * SIGINT and SIGTERM to the CLI are passed on to it. Afterwards the lock
 * is left (released or resigned) and the lease closed.
 *
 * @returns The command's exit code (1 when the lease was lost).
 */
export async function runWhileHeld(
  cmd: readonly string[],
  held: Held,
): Promise<number> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      env: {
        ASPEN_LOCK_NAME: held.name,
        ASPEN_LOCK_TOKEN: held.token,
        ASPEN_LEASE_ID: held.lease.id,
      },
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    await leave(held);
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Cannot run '${cmd[0]}': command not found`);
    }
    throw error;
  }
  let lost = false;
  const onLost = () => {
    lost = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
  };
  held.lease.signal.addEventListener("abort", onLost, { once: true });
  const forwarded = ["SIGINT", "SIGTERM"] as const;
  const forward = Object.fromEntries(
    forwarded.map((name) => [name, () => {
      try {
        child.kill(name);
      } catch {
        // Already exited.
      }
    }]),
  ) as Record<(typeof forwarded)[number], () => void>;
  for (const name of forwarded) Deno.addSignalListener(name, forward[name]);
  let status: Deno.CommandStatus;
  try {
    status = await child.status;
  } finally {
    for (const name of forwarded) {
      Deno.removeSignalListener(name, forward[name]);
    }
    held.lease.signal.removeEventListener("abort", onLost);
  }
  if (lost) {
    console.error(
      `aspen: lease ${held.lease.id} lost: sent SIGTERM to '${cmd[0]}'`,
    );
    await leave(held).catch(() => {});
    return EXIT.failed;
  }
  await leave(held);
  return status.signal === null
    ? status.code
    : 128 + signalNumber(status.signal);
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 0;
}

/** Releases (or resigns), then closes the lease (revoking one this command granted). */
async function leave(held: Held): Promise<void> {
  try {
    await held.leave();
  } catch (error) {
    if (!(error instanceof NotHolderError)) throw error;
  } finally {
    await held.lease.close();
  }
}

function acquireCommand(): CommandUnknownOpts {
  return new Command("acquire")
    .description(
      "Acquire a lock (or a semaphore permit) and print the grant; with -- CMD, run CMD while holding it",
    )
    .argument("<name>", "the lock name (1 to 256 UTF-8 bytes)")
    .argument(
      "[command...]",
      "after --: the command to run while holding the lock",
    )
    .addOption(
      new Option(
        "--lease <id>",
        "hold with this lease (kept alive only while CMD runs)",
      )
        .conflicts("ttl"),
    )
    .option(
      "--ttl <ms>",
      `TTL of the lease granted for it (default ${HOLD_TTL_MS_DEFAULT}; kept alive only while CMD runs)`,
      (v) => parseCount(v, "TTL", 1),
    )
    .option(
      "--permits <n>",
      "a semaphore of n permits (default 1)",
      (v) => parseCount(v, "permits", 1),
    )
    .addOption(waitTimeoutHelp())
    .addOption(waitTimeoutOption())
    .addHelpText(
      "after",
      `
--timeout MS is how long to wait for the lock (exit 1: lock NAME not acquired
within MS ms). With -- CMD ARGS…, CMD runs with ASPEN_LOCK_NAME,
ASPEN_LOCK_TOKEN and ASPEN_LEASE_ID, the lease is kept alive meanwhile, the
lock is released after, and aspen exits with CMD's code; a lost lease sends
CMD SIGTERM and exits 1.

Examples:
  aspen lock acquire reports --ttl 30000 --json
  aspen lock acquire reports --timeout 5000 -- ./make-report.sh`,
    )
    .action(async (name, cmd, options, command) => {
      const global = globals(command);
      const timeoutMs = (options as { waitTimeout?: number }).waitTimeout;
      using client = clientOf(global);
      const stop = interrupted();
      try {
        const withCommand = cmd.length > 0;
        const { lease, held: grant } = await obtainUnderLease(
          client,
          options,
          withCommand,
          (holding) =>
            client.locks.acquire(name, {
              lease: holding,
              permits: options.permits,
              timeoutMs,
              signal: stop.signal,
            }),
        );
        if (!withCommand) {
          const shown = {
            name: grant.name,
            token: grant.token,
            lease: grant.lease,
            revision: grant.revision,
          };
          if (global.json) printJson(shown);
          else {
            console.log(
              `lock ${grant.name} acquired: token ${grant.token}, lease ${grant.lease}`,
            );
          }
          return;
        }
        stop.stop();
        Deno.exitCode = await runWhileHeld(cmd, {
          name: grant.name,
          token: grant.token,
          lease: lease.open!,
          leave: () => grant.release(),
        });
      } finally {
        stop.stop();
      }
    });
}

function releaseCommand(): CommandUnknownOpts {
  return new Command("release")
    .description(
      "Release a lock held with a token (exit 1 when it does not hold)",
    )
    .argument("<name>", "the lock name")
    .addOption(holderTokenHelp())
    .addOption(holderTokenOption())
    .action(async (name, options, command) => {
      const global = globals(command);
      const token = holderToken(
        options as { holderToken?: unknown },
        "lock release",
      );
      using client = clientOf(global);
      await client.locks.release(name, token);
      if (global.json) printJson({ released: true });
      else console.log(`lock ${name} released`);
    });
}

function statusCommand(): CommandUnknownOpts {
  return new Command("status")
    .description("Show a lock's holders and waiters")
    .argument("<name>", "the lock name")
    .action(async (name, _options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const status = await client.locks.status(name);
      if (global.json) {
        printJson(status);
        return;
      }
      if (status.holders.length === 0 && status.waiters.length === 0) {
        console.log(`lock ${name}: free`);
        return;
      }
      console.log(`lock ${name}: ${status.permits} permits`);
      printTable(["ROLE", "TOKEN", "LEASE", "REVISION"], [
        ...status.holders.map((
          h,
        ) => ["holder", h.token, h.lease, String(h.revision)]),
        ...status.waiters.map((
          w,
        ) => ["waiter", "-", w.lease, String(w.revision)]),
      ]);
    });
}

/** `aspen lock …` */
export function lockCommand(): CommandUnknownOpts {
  return new Command("lock")
    .description("Locks and semaphores with fencing tokens")
    .addCommand(acquireCommand())
    .addCommand(releaseCommand())
    .addCommand(statusCommand());
}
