/**
 * Runs the real `aspen` CLI as a subprocess with the permissions the CLI
 * tests give it, bounded in time, and returns its exit code and output.
 *
 * @module
 */

/** The CLI's entry point. */
export const CLI = new URL("../../cli/aspen.ts", import.meta.url).pathname;

/** The permissions of the `aspen` task that the CLI commands under test need. */
const DEFAULT_PERMISSIONS = [
  "--allow-net=127.0.0.1",
  "--allow-env=ASPEN_URL,ASPEN_TOKEN,ASPEN_ADMIN_TOKEN",
  "--allow-read",
];

/** What one run printed and how it exited. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `aspen args…` with only `env` (no inherited variables), plus `permissions` (replacing a default of the same flag). */
export async function aspen(
  args: readonly string[],
  env: Record<string, string> = {},
  permissions: readonly string[] = [],
): Promise<CliResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      // A permission given replaces the default of the same flag.
      ...DEFAULT_PERMISSIONS.filter((flag) =>
        !permissions.some((p) => p.split("=")[0] === flag.split("=")[0])
      ),
      ...permissions,
      CLI,
      ...args,
    ],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs `jobs` with at most `limit` at a time, results in order. */
export async function inBatches<T>(
  jobs: readonly (() => Promise<T>)[],
  limit: number,
): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

/**
 * A loopback port with nothing listening on it, below Linux's ephemeral
 * range (32768–60999): every node and test here binds port 0, which the
 * kernel takes from that range, so none of them can start listening on this
 * port while a test still expects it to refuse (an ephemeral port freed here
 * was once taken by a concurrent test's node).
 */
export function deadUrl(): string {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      const listener = Deno.listen({ hostname: "127.0.0.1", port });
      listener.close();
      return `http://127.0.0.1:${port}`;
    } catch {
      // Taken: try another.
    }
  }
  throw new Error("Cannot find a free loopback port below the ephemeral range");
}
