/**
 * A fresh clone of the repository and the processes a new user would start in
 * it: each runs in its own process group with stdin closed (no terminal, so a
 * permission prompt becomes an error), its output collected, and is stopped
 * by its group id. Used by `tests/front_door_test.ts` and
 * `tests/readme_smoke.ts`.
 *
 * @module
 */

/** The repository this file belongs to. */
export const REPO_ROOT: string = decodeURIComponent(
  new URL("../..", import.meta.url).pathname,
).replace(/\/$/, "");

/** What a missing permission looks like in Deno's output. */
export const PERMISSION_PROBLEM =
  /Requires \w+ access|NotCapable|PermissionDenied|Deno requests|--allow-\w+ flag/;

const decoder = new TextDecoder();

/** `git clone` of the repository's committed HEAD into a new temp folder. */
export async function freshClone(prefix: string): Promise<string> {
  const parent = await Deno.makeTempDir({ prefix });
  const dir = `${parent}/aspen`;
  const out = await new Deno.Command("git", {
    args: ["clone", "--quiet", "--no-hardlinks", REPO_ROOT, dir],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`git clone failed: ${decoder.decode(out.stderr)}`);
  }
  return dir;
}

/** A process group started in a clone, with its output so far. */
export class Started {
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<Deno.CommandStatus>;
  #text = "";
  #exited: Deno.CommandStatus | null = null;

  constructor(child: Deno.ChildProcess) {
    this.#child = child;
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) {
        this.#text += decoder.decode(chunk, { stream: true });
      }
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    this.#done = child.status.then(async (status) => {
      await pumps.catch(() => {});
      this.#exited = status;
      return status;
    });
  }

  /** The group's id (its leader's pid). */
  get pid(): number {
    return this.#child.pid;
  }

  /** stdout and stderr so far, interleaved. */
  get output(): string {
    return this.#text;
  }

  /** The exit status once the leader has exited. */
  get exited(): Deno.CommandStatus | null {
    return this.#exited;
  }

  /** Waits for the leader to exit. */
  wait(): Promise<Deno.CommandStatus> {
    return this.#done;
  }

  /**
   * SIGTERM to the whole group, then SIGKILL to what is left after
   * `graceMs`; resolves once the leader has exited and the group is empty
   * (a leader may exit before the children it signalled).
   */
  async stop(graceMs = 20_000): Promise<Deno.CommandStatus> {
    signalGroup(this.pid, "SIGTERM");
    const end = performance.now() + graceMs;
    for (let i = 0; i < 10_000 && performance.now() < end; i++) {
      if (this.#exited !== null && !groupAlive(this.pid)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    signalGroup(this.pid, "SIGKILL");
    const status = await this.#done;
    for (let i = 0; i < 100 && groupAlive(this.pid); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return status;
  }
}

/** `true` while some process of group `pgid` exists (SIGCONT is harmless). */
function groupAlive(pgid: number): boolean {
  try {
    Deno.kill(-pgid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch {
    // The group is gone.
  }
}

/** Starts `command args` in `cwd` in a new process group, stdin closed. */
export function startIn(
  cwd: string,
  command: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Started {
  return new Started(
    new Deno.Command(command, {
      args: [...args],
      cwd,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).spawn(),
  );
}

/** Runs `command args` in `cwd` to the end (killed after `timeoutMs`). */
export async function runIn(
  cwd: string,
  command: string,
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 240_000,
): Promise<{ code: number; output: string }> {
  const started = startIn(cwd, command, args, env);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), timeoutMs);
  });
  const first = await Promise.race([started.wait(), late]);
  clearTimeout(timer);
  const status = first === "late" ? await started.stop(1_000) : first;
  return {
    code: first === "late" ? -1 : status.code,
    output: started.output,
  };
}

/** `true` once `url`/health answers 200. */
export async function healthy(url: string): Promise<boolean> {
  const response = await fetch(new URL("/health", url), {
    signal: AbortSignal.timeout(5_000),
  });
  await response.body?.cancel();
  return response.ok;
}
