/**
 * The shell worker's policy (issue 19, "The shell worker"): the operator's
 * fence around what a `shell` job may run, and the check of one job's
 * payload against it. A refusal is a {@linkcode ShellPolicyError}, which
 * fails the attempt without a retry (running it again cannot help).
 *
 * @module
 */

/** Most items of a job's `argv`. */
export const ARGV_ITEMS_MAX = 256;
/** Most UTF-8 bytes of a job's `argv`, all items together. */
export const ARGV_BYTES_MAX = 64 * 1024;
/** Most UTF-8 bytes of a job's `stdin`. */
export const STDIN_BYTES_MAX = 64 * 1024;
/** Most names in a job's `env`. */
export const JOB_ENV_NAMES_MAX = 256;
/** Most UTF-8 bytes of a job's `env`, names and values together. */
export const JOB_ENV_BYTES_MAX = 64 * 1024;
/** Longest timeout of one attempt: 24 h. */
export const TIMEOUT_MS_MAX = 24 * 60 * 60 * 1000;
/** Most bytes kept of the head, or of the tail, of one output stream. */
export const OUTPUT_BYTES_MAX = 256 * 1024;
/** Longest grace between SIGTERM and SIGKILL: 1 h. */
export const GRACE_MS_MAX = 60 * 60 * 1000;
/** Most commands of one allow list. */
export const ALLOW_COMMANDS_MAX = 1024;

/** The worker's environment names passed on by default. */
export const ENV_ALLOW_DEFAULT: readonly string[] = ["PATH", "LANG", "TZ"];
/** The names the runner sets itself; no allow list may name them. */
export const RESERVED_ENV_NAMES: readonly string[] = [
  "ASPEN_JOB_ID",
  "ASPEN_JOB_ATTEMPT",
];
/** The worker's secrets: never passed to a job, whatever the allow list. */
export const SECRET_ENV_NAMES: readonly string[] = [
  "ASPEN_TOKEN",
  "ASPEN_ADMIN_TOKEN",
  "ASPEN_TOKENS",
  "ASPEN_ADMIN_TOKENS",
];

/** An environment variable's name: POSIX portable, at most 256 bytes. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,255}$/;

/** What an operator sets (the `aspen worker start` shell flags). */
export interface ShellPolicyOptions {
  /** `--allow-commands`: absolute paths a job's `argv[0]` must equal. */
  readonly allowCommands: readonly string[];
  /** `--env-allow`: names copied from the worker's environment. Default `PATH,LANG,TZ`. */
  readonly envAllow?: readonly string[];
  /** `--job-env-allow`: names a job's `env` may set. Default none. */
  readonly jobEnvAllow?: readonly string[];
  /** `--cwd-root`: an absolute folder a job's `cwd` must lie under. Default: none (see {@linkcode ShellPolicy.cwdRoot}). */
  readonly cwdRoot?: string;
  /** `--state-dir`: an absolute folder for group records and fresh working folders. */
  readonly stateDir: string;
  /** `--grace`: milliseconds between SIGTERM and SIGKILL. Default 5,000. */
  readonly graceMs?: number;
  /** `--output-head`: bytes kept from the start of stdout and of stderr. Default 16 KiB. */
  readonly outputHeadBytes?: number;
  /** `--output-tail`: bytes kept from the end of stdout and of stderr. Default 16 KiB. */
  readonly outputTailBytes?: number;
}

/** A checked policy: every field set. */
export interface ShellPolicy {
  /** Absolute, normalised paths. */
  readonly allowCommands: readonly string[];
  /** Names copied from the worker's environment when set there. */
  readonly envAllow: readonly string[];
  /** Names a job's `env` may set. */
  readonly jobEnvAllow: readonly string[];
  /**
   * The folder a job's `cwd` must lie under (after resolving symlinks and
   * `..`); null: a job may not name a `cwd` outside its fresh folder.
   */
  readonly cwdRoot: string | null;
  /** Group records live in `<stateDir>/groups`, fresh folders in `<stateDir>/attempts`. */
  readonly stateDir: string;
  /** Milliseconds between SIGTERM and SIGKILL. */
  readonly graceMs: number;
  /** Bytes kept from the start of each output stream. */
  readonly outputHeadBytes: number;
  /** Bytes kept from the end of each output stream. */
  readonly outputTailBytes: number;
}

/** A job's payload after {@linkcode checkShellPayload}. */
export interface ShellJobSpec {
  /** `argv[0]` is an allowed command; passed verbatim, no shell. */
  readonly argv: readonly string[];
  /** The job's `cwd` as given (checked against the root when resolved). */
  readonly cwd: string | null;
  /** The job's allowed environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Written to the child's stdin, which is then closed; null: no stdin. */
  readonly stdin: string | null;
  /** The attempt's timeout in milliseconds; null: none. */
  readonly timeoutMs: number | null;
}

/** Why a payload was refused. */
export type ShellPolicyErrorCode =
  | "payloadInvalid"
  | "argvInvalid"
  | "commandNotAllowed"
  | "envNotAllowed"
  | "cwdNotAllowed";

/**
 * A job's payload breaks the worker's policy: the attempt fails and is not
 * retried (the same payload would be refused again).
 */
export class ShellPolicyError extends Error {
  override name = "ShellPolicyError";
  /** Never retried. */
  readonly retryable = false;
  /**
   * @param code Why.
   * @param message One line, std-style.
   */
  constructor(
    readonly code: ShellPolicyErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Checks an operator's options and fills the defaults.
 *
 * @throws {TypeError} A field of the wrong shape.
 * @throws {RangeError} A value out of range: a relative path, an empty
 *   allow list, a reserved or secret environment name.
 */
export function shellPolicy(options: ShellPolicyOptions): ShellPolicy {
  const allowCommands = [...options.allowCommands];
  if (allowCommands.length === 0) {
    throw new RangeError(
      "Cannot start a shell worker as 'allowCommands' is empty",
    );
  }
  if (allowCommands.length > ALLOW_COMMANDS_MAX) {
    throw new RangeError(
      `Cannot start a shell worker as 'allowCommands' has more than ${ALLOW_COMMANDS_MAX} items: current value is ${allowCommands.length}`,
    );
  }
  for (const command of allowCommands) checkAbsolute("allowCommands", command);
  const envAllow = checkNames(
    "envAllow",
    options.envAllow ?? ENV_ALLOW_DEFAULT,
  );
  const jobEnvAllow = checkNames("jobEnvAllow", options.jobEnvAllow ?? []);
  const cwdRoot = options.cwdRoot ?? null;
  if (cwdRoot !== null) checkAbsolute("cwdRoot", cwdRoot);
  checkAbsolute("stateDir", options.stateDir);
  const graceMs = checkInteger(
    "graceMs",
    options.graceMs ?? 5_000,
    0,
    GRACE_MS_MAX,
  );
  const outputHeadBytes = checkInteger(
    "outputHeadBytes",
    options.outputHeadBytes ?? 16 * 1024,
    0,
    OUTPUT_BYTES_MAX,
  );
  const outputTailBytes = checkInteger(
    "outputTailBytes",
    options.outputTailBytes ?? 16 * 1024,
    0,
    OUTPUT_BYTES_MAX,
  );
  return {
    allowCommands,
    envAllow,
    jobEnvAllow,
    cwdRoot,
    stateDir: options.stateDir,
    graceMs,
    outputHeadBytes,
    outputTailBytes,
  };
}

/**
 * Checks a job's payload `{argv, cwd?, env?, stdin?, timeoutMs?}` against
 * the policy (everything but `cwd`'s place on disk, which
 * {@linkcode ./workdir.ts} resolves).
 *
 * @throws {ShellPolicyError} The payload is refused.
 */
export function checkShellPayload(
  payload: unknown,
  policy: ShellPolicy,
): ShellJobSpec {
  if (
    typeof payload !== "object" || payload === null || Array.isArray(payload)
  ) {
    throw new ShellPolicyError(
      "payloadInvalid",
      "Cannot run a shell job as its payload is not an object",
    );
  }
  const fields = payload as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!["argv", "cwd", "env", "stdin", "timeoutMs"].includes(key)) {
      throw new ShellPolicyError(
        "payloadInvalid",
        `Cannot run a shell job as its payload has an unknown field: '${key}'`,
      );
    }
  }
  const argv = checkArgv(fields.argv, policy);
  const env = checkJobEnv(fields.env, policy);
  const cwd = optionalString("cwd", fields.cwd);
  const stdin = optionalString("stdin", fields.stdin);
  if (stdin !== null && utf8Length(stdin) > STDIN_BYTES_MAX) {
    throw new ShellPolicyError(
      "payloadInvalid",
      `Cannot run a shell job as its 'stdin' is longer than ${STDIN_BYTES_MAX} bytes`,
    );
  }
  let timeoutMs: number | null = null;
  if (fields.timeoutMs !== undefined) {
    const value = fields.timeoutMs;
    if (
      typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
      value > TIMEOUT_MS_MAX
    ) {
      throw new ShellPolicyError(
        "payloadInvalid",
        `Cannot run a shell job as its 'timeoutMs' is not an integer from 1 to ${TIMEOUT_MS_MAX}: current value is ${
          JSON.stringify(value)
        }`,
      );
    }
    timeoutMs = value;
  }
  return { argv, cwd, env, stdin, timeoutMs };
}

function checkArgv(value: unknown, policy: ShellPolicy): readonly string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ShellPolicyError(
      "argvInvalid",
      "Cannot run a shell job as its 'argv' is not a non-empty array of strings",
    );
  }
  if (value.length > ARGV_ITEMS_MAX) {
    throw new ShellPolicyError(
      "argvInvalid",
      `Cannot run a shell job as its 'argv' has more than ${ARGV_ITEMS_MAX} items: current value is ${value.length}`,
    );
  }
  let bytes = 0;
  for (const item of value) {
    if (typeof item !== "string") {
      throw new ShellPolicyError(
        "argvInvalid",
        "Cannot run a shell job as its 'argv' is not a non-empty array of strings",
      );
    }
    if (item.includes("\0")) {
      throw new ShellPolicyError(
        "argvInvalid",
        "Cannot run a shell job as an 'argv' item holds a NUL character",
      );
    }
    bytes += utf8Length(item);
  }
  if (bytes > ARGV_BYTES_MAX) {
    throw new ShellPolicyError(
      "argvInvalid",
      `Cannot run a shell job as its 'argv' is longer than ${ARGV_BYTES_MAX} bytes: current value is ${bytes}`,
    );
  }
  const command = value[0] as string;
  if (!policy.allowCommands.includes(command)) {
    throw new ShellPolicyError(
      "commandNotAllowed",
      `Cannot run a shell job as its command is not allowed: '${command}'`,
    );
  }
  return value as string[];
}

function checkJobEnv(
  value: unknown,
  policy: ShellPolicy,
): Readonly<Record<string, string>> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ShellPolicyError(
      "payloadInvalid",
      "Cannot run a shell job as its 'env' is not an object of strings",
    );
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > JOB_ENV_NAMES_MAX) {
    throw new ShellPolicyError(
      "payloadInvalid",
      `Cannot run a shell job as its 'env' has more than ${JOB_ENV_NAMES_MAX} names: current value is ${entries.length}`,
    );
  }
  const env: Record<string, string> = {};
  let bytes = 0;
  for (const [name, text] of entries) {
    if (typeof text !== "string" || text.includes("\0")) {
      throw new ShellPolicyError(
        "payloadInvalid",
        `Cannot run a shell job as its 'env' value of '${name}' is not a string without NUL`,
      );
    }
    if (!policy.jobEnvAllow.includes(name)) {
      throw new ShellPolicyError(
        "envNotAllowed",
        `Cannot run a shell job as its 'env' names a variable not allowed: '${name}'`,
      );
    }
    bytes += utf8Length(name) + utf8Length(text);
    env[name] = text;
  }
  if (bytes > JOB_ENV_BYTES_MAX) {
    throw new ShellPolicyError(
      "payloadInvalid",
      `Cannot run a shell job as its 'env' is longer than ${JOB_ENV_BYTES_MAX} bytes: current value is ${bytes}`,
    );
  }
  return env;
}

function optionalString(field: string, value: unknown): string | null {
  if (value === undefined) return null;
  if (typeof value !== "string" || value.includes("\0")) {
    throw new ShellPolicyError(
      "payloadInvalid",
      `Cannot run a shell job as its '${field}' is not a string without NUL`,
    );
  }
  return value;
}

function checkAbsolute(field: string, path: string): void {
  if (typeof path !== "string") {
    throw new TypeError(
      `Cannot start a shell worker as '${field}' holds a non-string`,
    );
  }
  const segments = path.split("/");
  if (
    !path.startsWith("/") || path.includes("\0") ||
    segments.slice(1).some((s) => s === "" || s === "." || s === "..")
  ) {
    throw new RangeError(
      `Cannot start a shell worker as '${field}' holds a path that is not absolute and normalised: current value is '${path}'`,
    );
  }
}

function checkNames(
  field: string,
  names: readonly string[],
): readonly string[] {
  for (const name of names) {
    if (typeof name !== "string" || !ENV_NAME.test(name)) {
      throw new RangeError(
        `Cannot start a shell worker as '${field}' holds an invalid environment name: current value is '${name}'`,
      );
    }
    if (RESERVED_ENV_NAMES.includes(name) || SECRET_ENV_NAMES.includes(name)) {
      throw new RangeError(
        `Cannot start a shell worker as '${field}' holds a reserved or secret name: current value is '${name}'`,
      );
    }
  }
  return [...new Set(names)];
}

function checkInteger(
  field: string,
  value: number,
  min: number,
  max: number,
): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(
      `Cannot start a shell worker as '${field}' is not an integer`,
    );
  }
  if (value < min || value > max) {
    throw new RangeError(
      `Cannot start a shell worker as '${field}' must be from ${min} to ${max}: current value is ${value}`,
    );
  }
  return value;
}

const encoder = new TextEncoder();
function utf8Length(text: string): number {
  return encoder.encode(text).length;
}
