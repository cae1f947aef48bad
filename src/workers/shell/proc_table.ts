/**
 * The process table the shell runner reads (a port with two adapters):
 * a process's group and start time from `/proc/<pid>/stat`, and the
 * members of a process group.
 *
 * {@linkcode procfsTable} reads `/proc` itself, which Deno 2.9.6
 * grants only with `--allow-all` (other processes' `/proc/<pid>` files are
 * privileged paths). {@linkcode commandTable} reads the same files
 * through `/usr/bin/ps` and `/usr/bin/cat`, for a process granted
 * `--allow-run` but not that read (Aspen's test gate grants reads of `.`
 * and `/tmp` only). Both give the same start times, the kernel's
 * `starttime` field in clock ticks since boot, so a record written by one
 * is checked by the other.
 *
 * @module
 */

/** One process, from `/proc/<pid>/stat`. */
export interface ProcessInfo {
  readonly pid: number;
  /** Its process group. */
  readonly pgid: number;
  /** The state letter: `R`, `S`, `D`, `Z` (a zombie: dead, unreaped), … */
  readonly state: string;
  /** Field 22, `starttime`: clock ticks after boot. */
  readonly startTimeTicks: number;
}

/** Reads the process table. */
export interface ProcessTable {
  /** The process `pid`, or null when there is none. */
  stat(pid: number): Promise<ProcessInfo | null>;
  /** Every process whose group is `pgid` (zombies included). */
  members(pgid: number): Promise<ProcessInfo[]>;
}

/** Most processes one listing reads. */
const PROCESSES_MAX = 1_000_000;

/**
 * Parses one `/proc/<pid>/stat` line; null when it is not one. The command
 * name sits in parentheses and may hold spaces and parentheses itself, so
 * fields are counted after the last `)`.
 */
export function parseStat(line: string): ProcessInfo | null {
  const open = line.indexOf(" (");
  const close = line.lastIndexOf(")");
  if (open < 1 || close < open) return null;
  const pid = Number(line.slice(0, open));
  // After ")": field 3 (state) is index 0, so field N is index N - 3.
  const fields = line.slice(close + 2).split(" ");
  const state = fields[0];
  const pgid = Number(fields[2]);
  const startTimeTicks = Number(fields[19]);
  if (
    !Number.isSafeInteger(pid) || state === undefined ||
    !Number.isSafeInteger(pgid) || !Number.isSafeInteger(startTimeTicks)
  ) return null;
  return { pid, pgid, state, startTimeTicks };
}

/** Reads `/proc` directly (needs `--allow-all` in Deno 2.9.6). */
export const procfsTable: ProcessTable = {
  async stat(pid) {
    try {
      return parseStat(await Deno.readTextFile(`/proc/${pid}/stat`));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
  },
  async members(pgid) {
    const found: ProcessInfo[] = [];
    let seen = 0;
    for await (const entry of Deno.readDir("/proc")) {
      if (++seen > PROCESSES_MAX) break;
      if (!/^\d+$/.test(entry.name)) continue;
      const info = await this.stat(Number(entry.name));
      if (info !== null && info.pgid === pgid) found.push(info);
    }
    return found;
  },
};

/** Reads `/proc` through `/usr/bin/ps` and `/usr/bin/cat` (needs `--allow-run`). */
export const commandTable: ProcessTable = {
  async stat(pid) {
    const infos = await catStats([pid]);
    return infos.find((info) => info.pid === pid) ?? null;
  },
  async members(pgid) {
    const output = await new Deno.Command("/usr/bin/ps", {
      args: ["-e", "-o", "pid=,pgid="],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      clearEnv: true,
    }).output();
    const pids: number[] = [];
    for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
      const [pid, group] = line.trim().split(/\s+/).map(Number);
      if (pid !== undefined && group === pgid) pids.push(pid);
    }
    if (pids.length === 0) return [];
    return (await catStats(pids)).filter((info) => info.pgid === pgid);
  },
};

/** Most pids one `cat` reads. */
const CAT_PIDS_MAX = 4096;

async function catStats(pids: readonly number[]): Promise<ProcessInfo[]> {
  // cat goes on past a file that vanished (exit 1); the rest still prints.
  const output = await new Deno.Command("/usr/bin/cat", {
    args: pids.slice(0, CAT_PIDS_MAX).map((pid) => `/proc/${pid}/stat`),
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    clearEnv: true,
  }).output();
  const infos: ProcessInfo[] = [];
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    const info = parseStat(line);
    if (info !== null) infos.push(info);
  }
  return infos;
}

/**
 * The table this process can read: {@linkcode procfsTable} when it may
 * read another process's `/proc/<pid>/stat` (Deno 2.9.6 asks for
 * `--allow-all` there, `--allow-read=/proc` is not enough), else
 * {@linkcode commandTable}. Probed once, on pid 1's file.
 */
export function defaultProcessTable(): ProcessTable {
  try {
    Deno.readTextFileSync("/proc/1/stat");
    return procfsTable;
  } catch {
    return commandTable;
  }
}
