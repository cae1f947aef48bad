/**
 * `aspen snapshot save FILE` (a consistent, signed backup from a running
 * cluster, written to FILE as it arrives) and `aspen snapshot restore FILE
 * --data-dir DIR` (read in chunks, every row checked, the signature verified
 * against `--cluster-id` unless `--trust-unsigned`: the data folder of a new
 * one-node cluster holding that state). Both print a progress line on a
 * terminal (stderr).
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import {
  BackupContentError,
  BackupFormatError,
  readBackup,
  restoreBackup,
} from "../../src/node/backup.ts";
import { SNAPSHOT_ROUTE } from "../../src/server/serve.ts";
import { type GlobalOptions, nodeGet, UsageError } from "./_context.ts";
import { UnavailableError } from "../../src/client/errors.ts";

function size(bytes: number): string {
  return bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(1)} KiB`
    : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Progress on stderr when it is a terminal: one line, rewritten at most every 200 ms. */
function progress(verb: string): { update(bytes: number): void; done(): void } {
  if (!Deno.stderr.isTerminal()) return { update() {}, done() {} };
  const encoder = new TextEncoder();
  let last = 0;
  let shown = false;
  return {
    update(bytes) {
      const now = performance.now();
      if (now - last < 200) return;
      last = now;
      shown = true;
      Deno.stderr.writeSync(encoder.encode(`\r${verb} ${size(bytes)}   `));
    },
    done() {
      if (shown) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    },
  };
}

/** `aspen snapshot …` */
export function snapshotCommand(): Command {
  const snapshot = new Command("snapshot").description(
    "Back up and restore the KV state",
  );
  snapshot.command("save")
    .description(
      "Save a consistent backup of the cluster's KV state to FILE (signed by the cluster key)",
    )
    .argument("<file>", "where to write the backup")
    .action(async (file, _options, command) => {
      const globals = command.optsWithGlobals() as GlobalOptions;
      // --url or --ticket, token, --timeout and exit codes: the shared path.
      const { response } = await nodeGet(globals, SNAPSHOT_ROUTE);
      if (response.body === null) {
        throw new UnavailableError("unavailable", "The backup had no body");
      }
      // Written to FILE.partial as it arrives (checked on the way), renamed once complete.
      const partial = `${file}.partial`;
      const shown = progress("saving");
      let bytes = 0;
      let header: { clusterId: string; appliedIndex: number } | null = null;
      let signed = false;
      try {
        const out = await Deno.open(partial, {
          write: true,
          createNew: true,
          mode: 0o600,
        });
        // Each piece is written before the check reads it: memory stays
        // bounded by one frame whatever the backup's size.
        const sink = out.writable.getWriter();
        const passed = response.body.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            async transform(piece, controller) {
              await sink.write(piece);
              controller.enqueue(piece);
            },
            async flush() {
              await sink.close();
            },
          }),
        );
        const trailer = await readBackup(
          passed,
          {
            trustUnsigned: true,
            framingOnly: true,
            onProgress: (n) => shown.update(bytes = n),
          },
          (h) => {
            header = h;
          },
          () => {},
        );
        // readBackup read to the stream's end, after flush closed the file.
        signed = trailer.signed;
        await Deno.rename(partial, file);
      } catch (error) {
        shown.done();
        await Deno.remove(partial).catch(() => {});
        const message = `Backup failed: ${(error as Error).message}`;
        if (
          error instanceof Deno.errors.AlreadyExists ||
          error instanceof Deno.errors.PermissionDenied
        ) throw new UsageError(message);
        throw new UnavailableError("unavailable", message);
      }
      shown.done();
      const h = header as { clusterId: string; appliedIndex: number } | null;
      if (globals.json) {
        console.log(
          JSON.stringify({
            file,
            bytes,
            appliedIndex: h?.appliedIndex,
            clusterId: h?.clusterId,
            signed,
          }),
        );
      } else {
        console.log(
          `saved ${size(bytes)} at index ${h?.appliedIndex} to ${file}, ${
            signed ? "signed by" : "NOT signed (the node holds no cluster key);"
          } cluster ${h?.clusterId}`,
        );
      }
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
    .option(
      "--cluster-id <id>",
      "the cluster the backup must come from (its key must have signed it; 'aspen cluster status' shows the id)",
    )
    .option(
      "--trust-unsigned",
      "restore without checking who signed the backup (its checksum and rows are still checked)",
    )
    .action(async (file, options, command) => {
      const globals = command.optsWithGlobals() as GlobalOptions;
      if (options.clusterId === undefined && !options.trustUnsigned) {
        throw new UsageError(
          "Cannot restore without knowing which cluster must have signed the backup: pass --cluster-id ID (the source cluster's id, shown by 'aspen cluster status' and 'snapshot save'), or --trust-unsigned",
        );
      }
      const shown = progress("restoring");
      try {
        const input = await Deno.open(file, { read: true });
        const result = await restoreBackup(input.readable, options.dataDir, {
          expectedClusterId: options.clusterId,
          trustUnsigned: options.trustUnsigned === true,
          onProgress: (n) => shown.update(n),
        });
        shown.done();
        if (globals.json) {
          console.log(JSON.stringify({ dataDir: options.dataDir, ...result }));
        } else {
          console.log(
            `restored ${result.rows} rows at index ${result.appliedIndex} (from cluster ${result.clusterId}, ${
              result.verified ? "signature verified" : "signature NOT checked"
            }) into ${options.dataDir} as new cluster ${result.newClusterId}; start it with: aspen node start --data-dir ${options.dataDir}`,
          );
        }
      } catch (error) {
        shown.done();
        // Exit 2 for a bad or missing file (see describeFailure).
        if (
          error instanceof BackupFormatError ||
          error instanceof BackupContentError ||
          error instanceof Deno.errors.NotFound
        ) throw new UsageError((error as Error).message);
        throw error;
      }
    });
  return snapshot;
}
