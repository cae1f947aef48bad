/**
 * `aspen snapshot save FILE` (a consistent backup from a running cluster)
 * and `aspen snapshot restore FILE --data-dir DIR` (the data folder of a new
 * one-node cluster holding that state).
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import {
  BackupFormatError,
  decodeBackup,
  restoreBackup,
} from "../../src/node/backup.ts";
import { SNAPSHOT_ROUTE } from "../../src/node/serve.ts";
import { EXIT, type GlobalOptions, tokenOf } from "./_context.ts";

function fail(message: string, code: number): never {
  console.error(`aspen: ${message}`);
  Deno.exit(code);
}

function size(bytes: number): string {
  return bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(1)} KiB`
    : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** `aspen snapshot …` */
export function snapshotCommand(): Command {
  const snapshot = new Command("snapshot").description(
    "Back up and restore the KV state",
  );
  snapshot.command("save")
    .description("Save a consistent backup of the cluster's KV state to FILE")
    .argument("<file>", "where to write the backup")
    .action(async (file, _options, command) => {
      const globals = command.optsWithGlobals() as GlobalOptions;
      const url = globals.url?.split(",")[0]?.trim();
      if (url === undefined || url === "") {
        fail("No cluster given: pass --url URL (or ASPEN_URL)", EXIT.usage);
      }
      let response: Response;
      try {
        response = await fetch(new URL(SNAPSHOT_ROUTE, url), {
          headers: tokenOf(globals, "admin") === undefined
            ? {}
            : { authorization: `Bearer ${tokenOf(globals, "admin")}` },
          signal: AbortSignal.timeout(globals.timeout ?? 120_000),
        });
      } catch (error) {
        fail(
          `Cannot reach ${url}: ${(error as Error).message}`,
          EXIT.unavailable,
        );
      }
      if (response.status === 401 || response.status === 403) {
        fail("The token was refused (backups need the admin token)", EXIT.auth);
      }
      if (!response.ok) {
        fail(
          `Backup failed: ${response.status} ${await response.text()}`,
          EXIT.unavailable,
        );
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      const header = decodeBackup(bytes);
      await Deno.writeFile(file, bytes, { mode: 0o600 });
      if (globals.json) {
        console.log(
          JSON.stringify({
            file,
            bytes: bytes.length,
            appliedIndex: header.appliedIndex,
          }),
        );
      } else {console.log(
          `saved ${
            size(bytes.length)
          } at index ${header.appliedIndex} to ${file}`,
        );}
    });
  snapshot.command("restore")
    .description(
      "Write a new one-node cluster's data folder from a backup (then run 'node start' there)",
    )
    .argument("<file>", "the backup to restore")
    .requiredOption(
      "--data-dir <path>",
      "the new node's data folder (must not hold a node)",
    )
    .action(async (file, options, command) => {
      const globals = command.optsWithGlobals() as GlobalOptions;
      try {
        const header = await restoreBackup(
          await Deno.readFile(file),
          options.dataDir,
        );
        if (globals.json) {
          console.log(JSON.stringify({ dataDir: options.dataDir, ...header }));
        } else {
          console.log(
            `restored index ${header.appliedIndex} into ${options.dataDir}; start it with: aspen node start --data-dir ${options.dataDir}`,
          );
        }
      } catch (error) {
        const code = error instanceof BackupFormatError ||
            error instanceof Deno.errors.NotFound
          ? EXIT.usage
          : EXIT.failed;
        fail((error as Error).message, code);
      }
    });
  return snapshot;
}
