/**
 * The `aspen` launcher behind `deno task start` and `deno task aspen`: it
 * reads the command line, and runs `cli/aspen.ts` in a child Deno with
 * exactly the permissions that command line needs (`cli/permissions.ts`):
 * read/write to the data folders, backup files and configuration files it
 * names, wherever they are (`--data-dir /srv/aspen`, `snapshot save
 * /tmp/b.bin`), and nothing else on disk. Relative paths are relative to the
 * repository (where `deno task` runs). Its exit code is the CLI's.
 *
 * @module
 */
import { grantFlags, grantsFor, UnsupportedPathError } from "./permissions.ts";

const EXIT_USAGE = 2;

function fromFileUrl(url: URL): string {
  return decodeURIComponent(url.pathname);
}

const args = [...Deno.args];
let flags: string[];
try {
  flags = grantFlags(grantsFor({
    args,
    env: (name) => Deno.env.get(name),
    readConfig: (path) => Deno.readTextFileSync(path),
    srcDir: fromFileUrl(new URL("../src", import.meta.url)),
  }));
} catch (error) {
  if (!(error instanceof UnsupportedPathError)) throw error;
  console.error(`aspen: ${error.message}`);
  Deno.exit(EXIT_USAGE);
}

const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--quiet",
    `--config=${fromFileUrl(new URL("../deno.json", import.meta.url))}`,
    ...flags,
    fromFileUrl(new URL("./aspen.ts", import.meta.url)),
    ...args,
  ],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

// Ctrl-C reaches the whole process group, the child included: the launcher
// waits for the child's own shutdown. SIGTERM sent to the launcher alone is
// passed on.
Deno.addSignalListener("SIGINT", () => {});
Deno.addSignalListener("SIGTERM", () => {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
});

const status = await child.status;
Deno.exit(status.signal === null ? status.code : 128 + signalNumber(status));

function signalNumber(status: Deno.CommandStatus): number {
  return status.signal === "SIGKILL" ? 9 : status.signal === "SIGINT" ? 2 : 15;
}
