/**
 * How `tests/kv_conformance_test.ts` runs the conformance suite through each
 * client: child processes for the stock clients (`deno run --unstable-kv`
 * and Node with `npm:@deno/kv`), in-process for Aspen's `connect().kv`. Every
 * child runs under a deadline and is killed after it.
 *
 * @module
 */
import { connect, KvU64 } from "../../mod.ts";
import type {
  ConformanceAdapter,
  SuiteReport,
} from "./kv_conformance_suite.mjs";

const RUNNER = new URL("./kv_conformance_runner.mjs", import.meta.url)
  .pathname;
/** Pinned `npm:@deno/kv` (the Node client of KV Connect). */
export const DENO_KV_NPM_VERSION = "0.14.0";
/** Deadline of one child run (the suite takes a few seconds). */
const CHILD_TIMEOUT_MS = 60_000;
/** Deadline of `npm install`. */
const NPM_INSTALL_TIMEOUT_MS = 120_000;
/** Characters of a child's stderr kept for an error message. */
const STDERR_CHARS_MAX = 4_000;

/** What the runner is asked to do (see `kv_conformance_runner.mjs`). */
export interface RunnerOptions {
  readonly mode: "suite" | "write-cross" | "read-cross";
  readonly client: string;
  readonly target: string;
  readonly namespace: string;
  readonly writers?: readonly string[];
  readonly packageDir?: string;
}

/** A suite report, with what the Node runner says of its remote path. */
export type RunnerReport = SuiteReport & {
  readonly remote?: { kind: string; versionstamp: string } | null;
  /** Errors the client let escape as unhandled rejections (Node runner). */
  readonly unhandled?: readonly string[];
};

/** Our environment without Aspen's and KV Connect's variables, plus `extra`. */
function childEnvironment(
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (!name.startsWith("ASPEN_") && !name.startsWith("DENO_KV_")) {
      env[name] = value;
    }
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

async function runChild(
  command: string,
  args: string[],
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    env: childEnvironment(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).slice(
      -STDERR_CHARS_MAX,
    );
    throw new Error(
      `'${command} ${
        args.slice(0, 3).join(" ")
      } …' failed (code ${output.code}, signal ${output.signal}): ${stderr}${stdout}`,
    );
  }
  return stdout;
}

function lastJsonLine(stdout: string): RunnerReport {
  const line = stdout.trim().split("\n").at(-1);
  if (line === undefined || !line.startsWith("{")) {
    throw new Error(`The runner printed no report: ${stdout.slice(-2_000)}`);
  }
  return JSON.parse(line) as RunnerReport;
}

/**
 * Runs the runner with stock `Deno.openKv(target)` in `deno run
 * --unstable-kv`: a local path (read and write allowed on `folder`) or a KV
 * Connect URL (with `token`).
 */
export async function runDenoRunner(
  options: RunnerOptions,
  access: { folder: string } | { token: string },
): Promise<RunnerReport> {
  const permissions = "folder" in access
    ? [`--allow-read=${access.folder}`, `--allow-write=${access.folder}`]
    : ["--allow-net=127.0.0.1", "--allow-env=DENO_KV_ACCESS_TOKEN"];
  const stdout = await runChild(
    Deno.execPath(),
    [
      "run",
      "--unstable-kv",
      ...permissions,
      RUNNER,
      JSON.stringify(options),
    ],
    "token" in access ? { DENO_KV_ACCESS_TOKEN: access.token } : {},
    CHILD_TIMEOUT_MS,
  );
  return lastJsonLine(stdout);
}

/** Runs the runner under Node with `npm:@deno/kv` from `options.packageDir`. */
export async function runNodeRunner(
  options: RunnerOptions,
  token: string,
): Promise<RunnerReport> {
  const stdout = await runChild(
    "node",
    [RUNNER, JSON.stringify(options)],
    { DENO_KV_ACCESS_TOKEN: token },
    CHILD_TIMEOUT_MS,
  );
  return lastJsonLine(stdout);
}

/**
 * Installs the pinned `@deno/kv` into `folder` (npm's own cache makes a
 * repeated install fast).
 */
export async function installDenoKvNpm(folder: string): Promise<void> {
  await runChild(
    "npm",
    [
      "install",
      "--no-save",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      "--prefix",
      folder,
      `@deno/kv@${DENO_KV_NPM_VERSION}`,
    ],
    {},
    NPM_INSTALL_TIMEOUT_MS,
  );
}

/** Aspen's own `connect(urls).kv` as a conformance client. */
export function aspenAdapter(
  urls: readonly string[],
  token: string,
): ConformanceAdapter {
  return {
    client: "aspen-client",
    open: () => Promise.resolve(connect([...urls], { token }).kv),
    u64: (n: bigint) => new KvU64(n),
    isU64: (value: unknown) => value instanceof KvU64,
    features: {
      commitVersionstamp: true,
      promptExpiry: true,
    },
  };
}
