/**
 * `aspen worker start`: runs a webhook worker in the worker host
 * (`src/workers/host.ts`) until SIGINT or SIGTERM. It claims webhook hooks
 * under its own lease with the admin token (`--admin-token`,
 * `ASPEN_ADMIN_TOKEN`; claims carry the signing secrets), delivers them,
 * and prints one line per attempt (never a secret).
 *
 * The SSRF guard refuses private, loopback, link-local and other special
 * addresses unless `--allow-targets CIDR,…` (env `ASPEN_HOOK_ALLOW_TARGETS`)
 * allows them. The process has the network and these variables only, no
 * file access (`cli/permissions.ts`).
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import {
  ALLOW_TARGETS_ENV,
  AllowTargetsError,
  parseAllowTargets,
  TargetGuard,
} from "../../src/workers/webhooks/guard.ts";
import { WebhookWorker } from "../../src/workers/webhooks/worker.ts";
import { WorkerHost } from "../../src/workers/host.ts";
import { clientOf, UsageError } from "./_context.ts";
import { globals } from "./lease.ts";

/** The worker's name when none is given: `worker-` and 8 random hex digits. */
function defaultName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `worker-${
    [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}

/** The allow list: the flag, else the environment variable, else none. */
function allowTargets(flag: string | undefined): readonly string[] {
  let text = flag;
  if (text === undefined) {
    try {
      text = Deno.env.get(ALLOW_TARGETS_ENV);
    } catch {
      // Not granted to this process: no allowance.
    }
  }
  try {
    return parseAllowTargets(text ?? "");
  } catch (error) {
    if (error instanceof AllowTargetsError) {
      throw new UsageError(error.message, { cause: error });
    }
    throw error;
  }
}

function startCommand(): CommandUnknownOpts {
  return new Command("start")
    .description(
      "Run a webhook worker until interrupted (Ctrl-C): claims hooks under its lease, delivers them, a line per attempt",
    )
    .option(
      "--name <name>",
      "the worker's name, shown by 'hook get' (default worker-<random>)",
    )
    .option(
      "--allow-targets <cidrs>",
      `CIDRs the SSRF guard lets through, comma-separated (env ${ALLOW_TARGETS_ENV})`,
    )
    .action(async (options, command) => {
      const global = globals(command);
      const name = options.name ?? defaultName();
      if (!/^[\x21-\x7e]{1,64}$/.test(name)) {
        throw new UsageError(
          `Invalid worker name '${
            name.slice(0, 80)
          }': expected 1 to 64 visible ASCII characters`,
        );
      }
      const guard = new TargetGuard(allowTargets(options.allowTargets));
      using client = clientOf(global, "admin");
      const host = new WorkerHost();
      const worker = new WebhookWorker({
        client,
        name,
        guard,
        onDelivery: (report) => host.logDelivery(name, report),
        onNotice: (notice) => host.logNotice(name, notice),
      });
      host.add({
        kind: "webhooks",
        name,
        start: () => worker.start(),
        stop: () => worker.stop(),
      });
      await host.run();
    });
}

/** `aspen worker …` */
export function workerCommand(): CommandUnknownOpts {
  return new Command("worker")
    .description("Run workers: webhook delivery")
    .addCommand(startCommand());
}
