/**
 * Runs one `shell` job's attempt (issue 19, "The shell worker"): the
 * payload checked against the policy, argv passed verbatim (no shell)
 * under `setsid` so the child leads its own process group, a cleared
 * environment, head and tail capture of stdout and stderr, and the whole
 * group killed on timeout, on abort and when the child exits.
 *
 * Timeout or abort: SIGTERM to the group, `graceMs`, then SIGKILL to the
 * group (`killedWith` says which ended it). When the child exits, whatever
 * is left of its group gets SIGKILL. A grandchild that calls `setsid`
 * itself leaves the group and escapes; its output pipe is let go after
 * {@linkcode OUTPUT_DRAIN_MS_MAX}.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import {
  type CapturedOutput,
  captureStream,
  OutputCapture,
} from "./capture.ts";
import {
  type GroupRecord,
  GroupRegistry,
  type PredecessorCleanup,
  signalGroup,
} from "./groups.ts";
import {
  checkShellPayload,
  type ShellJobSpec,
  type ShellPolicy,
  shellPolicy,
  type ShellPolicyOptions,
} from "./policy.ts";
import type { ProcessTable } from "./proc_table.ts";
import { resolveWorkingFolder } from "./workdir.ts";

/** util-linux `setsid`: runs its program in a new session and process group. */
export const SETSID_PATH = "/usr/bin/setsid";
/** Longest wait for the output pipes to close after the child's group is killed. */
export const OUTPUT_DRAIN_MS_MAX = 5_000;
/** Longest wait for a killed group's last member to die. */
export const GROUP_EXIT_MS_MAX = 5_000;
/** Pause between looks at a dying group. */
const GROUP_POLL_MS = 10;

/** Which attempt runs, and its cancel. */
export interface ShellRunContext {
  /** The job's id, `[A-Za-z0-9._:-]{1,128}` (in `ASPEN_JOB_ID`). */
  readonly jobId: string;
  /** The attempt, from 1 (in `ASPEN_JOB_ATTEMPT`). */
  readonly attempt: number;
  /** Cancels the attempt: the group is terminated as on a timeout. */
  readonly signal?: AbortSignal;
}

/** How an attempt ended: the job's `result`, plus the pid for the audit. */
export interface ShellResult {
  /** The exit status; null when a signal ended the child. */
  readonly exitCode: number | null;
  /** The signal that ended the child, or null. */
  readonly signal: Deno.Signal | null;
  /** True when the attempt's `timeoutMs` passed. */
  readonly timedOut: boolean;
  /** The runner's last signal to the group on timeout or abort, or null. */
  readonly killedWith: "SIGTERM" | "SIGKILL" | null;
  /** From spawn to exit, in milliseconds. */
  readonly durationMs: number;
  /** The child's pid, which is its process group's id. */
  readonly pid: number;
  readonly stdout: CapturedOutput;
  readonly stderr: CapturedOutput;
}

/**
 * The child's environment: the policy's `envAllow` names the worker has,
 * the job's allowed `env`, `ASPEN_JOB_ID` and `ASPEN_JOB_ATTEMPT`; nothing
 * else (the policy refuses secret names in its allow lists).
 */
export function childEnvironment(
  policy: ShellPolicy,
  spec: ShellJobSpec,
  context: ShellRunContext,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of policy.envAllow) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  for (const [name, value] of Object.entries(spec.env)) {
    assert(policy.jobEnvAllow.includes(name), `Expected '${name}' allowed`);
    env[name] = value;
  }
  env.ASPEN_JOB_ID = context.jobId;
  env.ASPEN_JOB_ATTEMPT = String(context.attempt);
  return env;
}

/**
 * Runs one attempt to its end.
 *
 * @param payload The job's payload `{argv, cwd?, env?, stdin?, timeoutMs?}`.
 * @param groups The worker's open registry: the group is recorded while it runs.
 * @returns How the child ended; any exit status, a signal, a timeout or an
 *   abort is a result, not an error.
 * @throws {ShellPolicyError} The payload is refused (fail, do not retry).
 * @throws The signal's reason when it was aborted before the spawn.
 */
export async function runShellJob(
  payload: unknown,
  policy: ShellPolicy,
  context: ShellRunContext & { readonly groups: GroupRegistry },
): Promise<ShellResult> {
  const spec = checkShellPayload(payload, policy);
  const folder = await resolveWorkingFolder(
    policy,
    spec.cwd,
    context.jobId,
    context.attempt,
  );
  try {
    context.signal?.throwIfAborted();
    return await spawnAndWait(spec, policy, context, folder.path);
  } finally {
    if (folder.fresh) {
      await Deno.remove(folder.path, { recursive: true }).catch(() => {});
    }
  }
}

async function spawnAndWait(
  spec: ShellJobSpec,
  policy: ShellPolicy,
  context: ShellRunContext & { readonly groups: GroupRegistry },
  cwd: string,
): Promise<ShellResult> {
  // "--" ends setsid's options; argv[0] is absolute, so no PATH lookup.
  const child = new Deno.Command(SETSID_PATH, {
    args: ["--", ...spec.argv],
    cwd,
    env: childEnvironment(policy, spec, context),
    clearEnv: true,
    stdin: spec.stdin === null ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const startedMs = performance.now();
  // setsid(1) calls setsid(2) and execs, without forking, when its caller
  // does not lead a group (a fresh child never does): pid = pgid.
  const pgid = child.pid;
  const output = captureOutput(child, policy);
  const writing = spec.stdin === null
    ? Promise.resolve()
    : writeStdin(child.stdin, spec.stdin);
  const stopper = new Stopper(pgid, policy.graceMs);
  const timer = spec.timeoutMs === null
    ? undefined
    : setTimeout(() => stopper.stop("timeout"), spec.timeoutMs);
  const onAbort = () => stopper.stop("abort");
  context.signal?.addEventListener("abort", onAbort, { once: true });
  let record: GroupRecord | null = null;
  // A failure to record the group (a full disk) must not leave it
  // running unrecorded: the group is killed, then the error thrown.
  let failure: { readonly error: unknown } | null = null;
  try {
    if (context.signal?.aborted) onAbort();
    record = await context.groups.record(pgid, context.jobId, context.attempt);
  } catch (error) {
    failure = { error };
    stopper.kill();
  }
  const status = await child.status;
  clearTimeout(timer);
  context.signal?.removeEventListener("abort", onAbort);
  stopper.exited(performance.now() - startedMs);
  // Whatever is left of the group goes now. The leader is reaped, so its
  // pid names only the group until the group is empty.
  signalGroup(pgid, "SIGKILL");
  const emptied = await waitGroupEmpty(context.groups.table, pgid);
  // Once the group is gone nothing holds the pipes but an escaped grandchild.
  await output.drain();
  await writing;
  if (record !== null && emptied) await context.groups.release(record);
  if (failure !== null) throw failure.error;
  return {
    exitCode: status.signal === null ? status.code : null,
    signal: status.signal,
    timedOut: stopper.reason === "timeout",
    killedWith: stopper.killedWith,
    durationMs: Math.round(stopper.durationMs),
    pid: pgid,
    stdout: output.stdout.result(),
    stderr: output.stderr.result(),
  };
}

/** Reads a child's stdout and stderr into head/tail captures. */
function captureOutput(child: Deno.ChildProcess, policy: ShellPolicy) {
  const stdout = new OutputCapture(
    policy.outputHeadBytes,
    policy.outputTailBytes,
  );
  const stderr = new OutputCapture(
    policy.outputHeadBytes,
    policy.outputTailBytes,
  );
  const drainStop = new AbortController();
  const reading = Promise.all([
    captureStream(child.stdout, stdout, drainStop.signal),
    captureStream(child.stderr, stderr, drainStop.signal),
  ]);
  return { stdout, stderr, drain: () => drain(reading, drainStop) };
}

/** Terminates a running group once: SIGTERM, the grace, SIGKILL. */
class Stopper {
  reason: "timeout" | "abort" | null = null;
  killedWith: "SIGTERM" | "SIGKILL" | null = null;
  durationMs = 0;
  #done = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly pgid: number, readonly graceMs: number) {}

  stop(reason: "timeout" | "abort"): void {
    if (this.#done || this.reason !== null) return;
    this.reason = reason;
    this.#signal("SIGTERM");
    this.#graceTimer = setTimeout(() => this.#signal("SIGKILL"), this.graceMs);
  }

  /** Kills the group at once, without a grace (the runner failed). */
  kill(): void {
    if (this.#done) return;
    clearTimeout(this.#graceTimer);
    this.#signal("SIGKILL");
  }

  /** The child exited (and is reaped): no more signals to its pid. */
  exited(durationMs: number): void {
    this.#done = true;
    this.durationMs = durationMs;
    clearTimeout(this.#graceTimer);
  }

  #signal(signal: "SIGTERM" | "SIGKILL"): void {
    if (this.#done) return;
    this.killedWith = signal;
    // Before setsid(2) runs in the child there is no group of that id yet:
    // then the child alone gets the signal (it has no children yet).
    if (!signalGroup(this.pgid, signal)) {
      try {
        Deno.kill(this.pgid, signal);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
  }
}

async function writeStdin(
  stream: WritableStream<Uint8Array>,
  text: string,
): Promise<void> {
  const writer = stream.getWriter();
  try {
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
  } catch {
    // The child closed its stdin or exited first: what it read is its own.
  } finally {
    writer.releaseLock();
  }
}

async function drain(
  reading: Promise<unknown>,
  drainStop: AbortController,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, OUTPUT_DRAIN_MS_MAX);
  });
  await Promise.race([reading, late]);
  clearTimeout(timer);
  drainStop.abort();
  await reading;
}

/**
 * Waits (bounded) until no live process of group `pgid` is left; zombies
 * count as gone (dead, waiting for their new parent to reap them).
 */
async function waitGroupEmpty(
  table: ProcessTable,
  pgid: number,
): Promise<boolean> {
  const deadline = performance.now() + GROUP_EXIT_MS_MAX;
  const triesMax = Math.ceil(GROUP_EXIT_MS_MAX / GROUP_POLL_MS) + 1;
  for (let tries = 0; tries < triesMax; tries++) {
    const live = (await table.members(pgid)).filter((p) => p.state !== "Z");
    if (live.length === 0) return true;
    if (performance.now() > deadline) return false;
    signalGroup(pgid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, GROUP_POLL_MS));
  }
  return false;
}

/**
 * Checks what the policy needs of the host before any work: `cwdRoot` is a
 * folder, `setsid` runs.
 *
 * @throws {RangeError} A `cwdRoot` that is not a folder.
 * @throws {Error} No working `/usr/bin/setsid`.
 */
async function checkHost(policy: ShellPolicy): Promise<void> {
  if (policy.cwdRoot !== null) {
    const info = await Deno.stat(policy.cwdRoot).catch(() => null);
    if (info === null || !info.isDirectory) {
      throw new RangeError(
        `Cannot start a shell worker as 'cwdRoot' is not a folder: current value is '${policy.cwdRoot}'`,
      );
    }
  }
  let ok = false;
  try {
    const output = await new Deno.Command(SETSID_PATH, {
      args: ["--version"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      clearEnv: true,
    }).output();
    ok = output.success;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new Error(
      `Cannot start a shell worker as util-linux setsid does not run: '${SETSID_PATH}'`,
    );
  }
}

/**
 * A shell worker's runner: its policy and its state folder's group
 * registry, opened once (killing a predecessor's groups) and used for
 * every attempt.
 */
export class ShellRunner {
  private constructor(
    readonly policy: ShellPolicy,
    readonly groups: GroupRegistry,
    readonly cleanup: PredecessorCleanup,
  ) {}

  /**
   * Checks the policy, locks `<stateDir>/groups` and kills the groups a
   * predecessor left.
   *
   * @throws {TypeError | RangeError} A bad policy, or a `cwdRoot` that is
   *   not a folder.
   * @throws {Error} No working `/usr/bin/setsid`.
   * @throws {StateDirLockedError} Another worker holds the state folder.
   */
  static async open(
    options: ShellPolicyOptions,
    table?: ProcessTable,
  ): Promise<ShellRunner> {
    const policy = shellPolicy(options);
    await checkHost(policy);
    await Deno.mkdir(policy.stateDir, { recursive: true });
    const { registry, cleanup } = await GroupRegistry.open(
      policy.stateDir,
      table,
    );
    return new ShellRunner(policy, registry, cleanup);
  }

  /** Runs one attempt: see {@linkcode runShellJob}. */
  run(payload: unknown, context: ShellRunContext): Promise<ShellResult> {
    return runShellJob(payload, this.policy, {
      ...context,
      groups: this.groups,
    });
  }

  /** Releases the state folder (records of running groups stay). */
  close(): void {
    this.groups.close();
  }
}
