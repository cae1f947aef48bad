/**
 * Command line of the deterministic simulator.
 *
 * ```sh
 * deno task sim --seeds 200 --nodes 3 --faults all
 * deno task sim --seed 1234 --nodes 5 --faults all --trace
 * deno task sim --bug vote-ignores-log --seeds 500
 * deno task sim --seeds 50 --state-machine kv --reads lease
 * deno task sim --seeds 100 --services leases,locks
 * deno task sim --bug grant-without-lease-check --seeds 500
 * deno task sim --seeds 200 --services events
 * deno task sim --seeds 100 --services leases,locks,events
 * deno task sim --bug watch-skip-on-resume --seeds 500
 * deno task sim --seeds 100 --services hooks
 * deno task sim --bug cursor-apart-from-finish --seeds 500
 * ```
 *
 * Prints one line per violation (seed and what failed), then counts and
 * seeds per second, and last `sim: N seeds, M violations`. Exits 0 without
 * violations, 1 with any, 2 for bad flags (or services it cannot run).
 *
 * @module
 */
import {
  type BugName,
  BUGS,
  DEFAULT_OPTIONS,
  FAULT_NAMES,
  type FaultName,
  isBugName,
  parseFaults,
  parseServices,
  type ReadMode,
  type ServiceName,
  type SimOptions,
  type StateMachineMode,
} from "./options.ts";
import { runSeed } from "./simulator.ts";

/** Parsed command line. */
export interface CliOptions {
  readonly seedStart: number;
  readonly seedCount: number;
  readonly nodes: number;
  readonly faults: readonly FaultName[];
  readonly bug: BugName | null;
  readonly ticks: number;
  readonly ops: number;
  readonly trace: boolean;
  readonly readMode: ReadMode;
  readonly stateMachine: StateMachineMode;
  readonly services: readonly ServiceName[];
}

const BUG_LIST = Object.keys(BUGS).join("|");

const USAGE =
  `Usage: deno task sim [--seeds N] [--seed S] [--seed-start S] [--nodes 3|5]
       [--faults all|none|${FAULT_NAMES.join(",")}] [--trace]
       [--bug ${BUG_LIST}]
       [--ticks N] [--ops N] [--reads seeded|safe|lease]
       [--state-machine seeded|map|kv]
       [--services none|leases,locks|events|hooks|leases,locks,events,hooks]`;

function integer(flag: string, text: string | undefined, min: number): number {
  const value = Number(text);
  if (text === undefined || !Number.isSafeInteger(value) || value < min) {
    throw new TypeError(
      `Cannot parse '${flag}' as it must be an integer of at least ${min}: current value is '${text}'`,
    );
  }
  return value;
}

/**
 * Parses the command line.
 *
 * @throws {TypeError} For an unknown flag or a bad value.
 */
export function parseCli(args: readonly string[]): CliOptions {
  let seedStart = 1;
  let seedCount = 200;
  let nodes = DEFAULT_OPTIONS.nodes;
  let faults: readonly FaultName[] = DEFAULT_OPTIONS.faults;
  let bug: BugName | null = null;
  let ticks = DEFAULT_OPTIONS.ticks;
  let ops = DEFAULT_OPTIONS.ops;
  let trace = false;
  let readMode: ReadMode = DEFAULT_OPTIONS.readMode;
  let stateMachine: StateMachineMode = DEFAULT_OPTIONS.stateMachine;
  let services: readonly ServiceName[] = DEFAULT_OPTIONS.services;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    const [name, inline] = flag.includes("=")
      ? [flag.slice(0, flag.indexOf("=")), flag.slice(flag.indexOf("=") + 1)]
      : [flag, undefined];
    const value = () => inline ?? args[++i];
    switch (name) {
      case "--seeds":
        seedCount = integer(name, value(), 1);
        break;
      case "--seed":
        seedStart = integer(name, value(), 0);
        seedCount = 1;
        break;
      case "--seed-start":
        seedStart = integer(name, value(), 0);
        break;
      case "--nodes":
        nodes = integer(name, value(), 1);
        if (nodes !== 3 && nodes !== 5) {
          throw new TypeError(
            `Cannot parse '--nodes' as it must be 3 or 5: current value is ${nodes}`,
          );
        }
        break;
      case "--faults":
        faults = parseFaults(value() ?? "");
        break;
      case "--bug": {
        const text = value() ?? "";
        if (!isBugName(text)) {
          throw new TypeError(
            `Cannot parse '--bug' as '${text}' is not a planted bug: expected one of ${
              Object.keys(BUGS).join(", ")
            }`,
          );
        }
        bug = text;
        break;
      }
      case "--ticks":
        ticks = integer(name, value(), 1);
        break;
      case "--ops":
        ops = integer(name, value(), 0);
        break;
      case "--trace":
        trace = true;
        break;
      case "--reads": {
        const text = value() ?? "";
        if (text !== "seeded" && text !== "safe" && text !== "lease") {
          throw new TypeError(
            `Cannot parse '--reads' as it must be seeded, safe or lease: current value is '${text}'`,
          );
        }
        readMode = text;
        break;
      }
      case "--state-machine": {
        const text = value() ?? "";
        if (text !== "seeded" && text !== "map" && text !== "kv") {
          throw new TypeError(
            `Cannot parse '--state-machine' as it must be seeded, map or kv: current value is '${text}'`,
          );
        }
        stateMachine = text;
        break;
      }
      case "--services":
        services = parseServices(value() ?? "");
        break;
      default:
        throw new TypeError(`Cannot parse flag '${flag}': unknown flag`);
    }
  }
  return {
    seedStart,
    seedCount,
    nodes,
    faults,
    bug,
    ticks,
    ops,
    trace,
    readMode,
    stateMachine,
    services,
  };
}

/** The command a violation is reproduced with. */
export function reproduceCommand(options: SimOptions): string {
  const faults = options.faults.length === FAULT_NAMES.length
    ? "all"
    : options.faults.length === 0
    ? "none"
    : options.faults.join(",");
  let command =
    `deno task sim --seed ${options.seed} --nodes ${options.nodes} --faults ${faults}`;
  if (options.ticks !== DEFAULT_OPTIONS.ticks) {
    command += ` --ticks ${options.ticks}`;
  }
  if (options.ops !== DEFAULT_OPTIONS.ops) command += ` --ops ${options.ops}`;
  if (options.readMode !== DEFAULT_OPTIONS.readMode) {
    command += ` --reads ${options.readMode}`;
  }
  if (options.stateMachine !== DEFAULT_OPTIONS.stateMachine) {
    command += ` --state-machine ${options.stateMachine}`;
  }
  if (options.services.length > 0) {
    command += ` --services ${options.services.join(",")}`;
  }
  if (options.bug !== null) command += ` --bug ${options.bug}`;
  return command;
}

/**
 * Runs the command line; returns the exit code.
 *
 * @param args The arguments after the script name.
 * @param print Receives each output line.
 */
export async function main(
  args: readonly string[],
  print: (line: string) => void,
): Promise<number> {
  let cli: CliOptions;
  try {
    cli = parseCli(args);
  } catch (error) {
    print(error instanceof Error ? error.message : String(error));
    print(USAGE);
    return 2;
  }
  const started = performance.now();
  let ran = 0;
  let violations = 0;
  for (let seed = cli.seedStart; seed < cli.seedStart + cli.seedCount; seed++) {
    const options: SimOptions = {
      ...DEFAULT_OPTIONS,
      seed,
      nodes: cli.nodes,
      faults: cli.faults,
      bug: cli.bug,
      ticks: cli.ticks,
      ops: cli.ops,
      trace: cli.trace,
      readMode: cli.readMode,
      stateMachine: cli.stateMachine,
      services: cli.services,
    };
    let result;
    try {
      result = await runSeed(options);
    } catch (error) {
      // Options out of range, or services the simulator cannot run yet.
      if (!(error instanceof RangeError)) throw error;
      print(error.message);
      return 2;
    }
    ran++;
    if (result.trace !== null) { for (const line of result.trace) print(line); }
    if (result.violation !== null) {
      violations++;
      print(
        `violation: seed ${seed} (${cli.nodes} nodes${
          cli.bug === null ? "" : `, bug ${cli.bug}`
        }): ${result.violation}`,
      );
      print(`reproduce: ${reproduceCommand(options)}`);
      if (cli.bug !== null) {
        print(`sim: found bug '${cli.bug}' at seed ${seed} after ${ran} seeds`);
        break;
      }
    }
  }
  const seconds = (performance.now() - started) / 1000;
  if (!cli.trace) {
    print(
      `sim: ${cli.nodes} nodes, faults ${
        cli.faults.length === FAULT_NAMES.length
          ? "all"
          : cli.faults.join(",") || "none"
      }, ${ran} seeds in ${seconds.toFixed(2)} s, ${
        (ran / seconds).toFixed(1)
      } seeds/s`,
    );
  }
  print(`sim: ${ran} seeds, ${violations} violations`);
  return violations === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args, (line) => console.log(line)));
}
