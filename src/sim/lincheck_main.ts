/**
 * `deno task lincheck FILE [--model register|kv] [--timeout SECONDS]`
 *
 * Checks a recorded history for linearizability. Without `--model` the model
 * follows the file's format: Jepsen etcd logs are registers, Porcupine logs
 * are key-value maps.
 *
 * Exit codes: 0 linearizable; 1 not linearizable (the key and operations are
 * printed); 2 malformed file, unreadable file or bad flags; 3 undecided (the
 * timeout came first).
 *
 * @module
 */
import { checkOperations, kvModel, registerModel } from "./lincheck.ts";
import type { CheckResult } from "./lincheck.ts";
import {
  detectHistoryFormat,
  HistoryFormatError,
  parseJepsenEtcdLog,
  parsePorcupineKvLog,
} from "./history_formats.ts";

const usage = "Usage: lincheck FILE [--model register|kv] [--timeout SECONDS]";
/** Default wall-clock budget of a check, in seconds. */
const timeoutSecondsDefault = 300;

/** The exit code for each outcome. */
export const exitCodes = {
  linearizable: 0,
  "not linearizable": 1,
  usage: 2,
  undecided: 3,
} as const;

type ModelName = "register" | "kv";

interface Flags {
  readonly file: string;
  readonly model: ModelName | undefined;
  readonly timeoutSeconds: number;
}

class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Runs the command.
 *
 * @param args The command-line arguments, without the program.
 * @param print Where lines go (stdout); errors go to `printError`.
 * @returns The exit code.
 */
export async function main(
  args: readonly string[],
  print: (line: string) => void = console.log,
  printError: (line: string) => void = console.error,
): Promise<number> {
  try {
    const flags = parseFlags(args);
    const text = await readHistory(flags.file);
    const model = flags.model ?? modelOfFormat(text);
    const result = check(model, text, flags.timeoutSeconds);
    report(result, print);
    return exitCodes[result.verdict];
  } catch (error) {
    if (error instanceof UsageError || error instanceof HistoryFormatError) {
      printError(error.message);
      return exitCodes.usage;
    }
    throw error;
  }
}

function parseFlags(args: readonly string[]): Flags {
  let file: string | undefined;
  let model: ModelName | undefined;
  let timeoutSeconds = timeoutSecondsDefault;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    const [name, inlineValue] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    if (name === "--model" || name === "--timeout") {
      const value = inlineValue ?? args[++index];
      if (value === undefined) {
        throw new UsageError(`Cannot use '${name}' without a value\n${usage}`);
      }
      if (name === "--model") model = parseModelName(value);
      else timeoutSeconds = parseTimeout(value);
    } else if (arg.startsWith("-")) {
      throw new UsageError(`Cannot use unknown flag '${arg}'\n${usage}`);
    } else if (file === undefined) {
      file = arg;
    } else {
      throw new UsageError(
        `Cannot check more than one file: got '${file}' and '${arg}'\n${usage}`,
      );
    }
  }
  if (file === undefined) {
    throw new UsageError(`Cannot check without a FILE\n${usage}`);
  }
  return { file, model, timeoutSeconds };
}

function parseModelName(value: string): ModelName {
  if (value === "register" || value === "kv") return value;
  throw new UsageError(
    `Cannot use model '${value}': expected 'register' or 'kv'`,
  );
}

function parseTimeout(value: string): number {
  const seconds = Number(value);
  if (value.trim() === "" || !(seconds >= 0) || !Number.isFinite(seconds)) {
    throw new UsageError(
      `Cannot use '--timeout' as it must be a number of seconds at least 0: current value is '${value}'`,
    );
  }
  return seconds;
}

async function readHistory(file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (cause) {
    throw new UsageError(`Cannot read '${file}': ${(cause as Error).message}`, {
      cause,
    });
  }
}

function modelOfFormat(text: string): ModelName {
  const format = detectHistoryFormat(text);
  if (format === undefined) {
    throw new HistoryFormatError(
      "expected a Jepsen 'INFO  jepsen.util' line or a Porcupine '{:process ...}' map",
      text.split("\n").findIndex((line) => line.trim() !== "") + 1,
    );
  }
  return format === "jepsen-etcd" ? "register" : "kv";
}

function check(
  model: ModelName,
  text: string,
  timeoutSeconds: number,
): CheckResult {
  const options = { timeoutMs: timeoutSeconds * 1000 };
  return model === "register"
    ? checkOperations(registerModel, parseJepsenEtcdLog(text), options)
    : checkOperations(kvModel, parsePorcupineKvLog(text), options);
}

function report(result: CheckResult, print: (line: string) => void): void {
  print(result.verdict);
  if (result.detail === undefined) return;
  print(`partition: ${result.detail.partition}`);
  print("operations (called before the point no linearization gets past):");
  for (const operation of result.detail.operations) print(`  ${operation}`);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
