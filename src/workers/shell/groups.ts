/**
 * The process groups a shell worker has running, recorded under
 * `<stateDir>/groups` (issue 19: "Groups are recorded under --state-dir,
 * locked; a worker restarted after kill -9 kills its predecessor's,
 * checking start times").
 *
 * One file per group, `<pgid>.json` `{pgid, startTimeTicks, jobId,
 * attempt}`, written (to a temporary name, then renamed) once the child
 * runs and removed once its group is gone. `<stateDir>/groups/lock` holds
 * an exclusive `flock` for as long as a registry is open, so a second
 * worker on the same folder refuses to start; the kernel drops the lock
 * when its holder dies, even by kill -9.
 *
 * A crash between the spawn and the record's rename leaks that one group:
 * the record cannot be written before the kernel names the pid.
 *
 * @module
 */
import { defaultProcessTable, type ProcessTable } from "./proc_table.ts";

/** One running group. */
export interface GroupRecord {
  /** The group's id: its leader's pid. */
  readonly pgid: number;
  /** The leader's `starttime` (clock ticks after boot), to tell a reused pid. */
  readonly startTimeTicks: number;
  readonly jobId: string;
  readonly attempt: number;
}

/** What opening a registry did to its predecessor's groups. */
export interface PredecessorCleanup {
  /** Groups sent SIGKILL: the leader (or, the leader gone, every member) is the recorded one. */
  readonly killed: readonly number[];
  /** Groups left alone: the pid now belongs to another process. */
  readonly reused: readonly number[];
  /** Groups already gone. */
  readonly gone: readonly number[];
  /** Record files that did not parse (removed). */
  readonly invalid: readonly string[];
}

/** Most records one registry reads at start. */
export const GROUP_RECORDS_MAX = 100_000;

/** Another worker holds the state folder. */
export class StateDirLockedError extends Error {
  override name = "StateDirLockedError";
  /** @param stateDir The folder. */
  constructor(readonly stateDir: string) {
    super(
      `Cannot start a shell worker as another worker holds its state folder: '${stateDir}'`,
    );
  }
}

/** The records folder of a state folder. */
export function groupsFolder(stateDir: string): string {
  return `${stateDir}/groups`;
}

/** Writes one record (temporary name, then rename, so a reader never sees half). */
export async function writeGroupRecord(
  stateDir: string,
  record: GroupRecord,
): Promise<void> {
  const folder = groupsFolder(stateDir);
  await Deno.mkdir(folder, { recursive: true });
  const path = `${folder}/${record.pgid}.json`;
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(record));
  await Deno.rename(`${path}.tmp`, path);
}

/** Reads one record; null when the file does not hold one. */
function parseRecord(name: string, text: string): GroupRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { pgid, startTimeTicks, jobId, attempt } = value as Record<
    string,
    unknown
  >;
  if (
    !Number.isSafeInteger(pgid) || (pgid as number) < 2 ||
    name !== `${pgid}.json` || !Number.isSafeInteger(startTimeTicks) ||
    typeof jobId !== "string" || !Number.isSafeInteger(attempt)
  ) return null;
  return {
    pgid: pgid as number,
    startTimeTicks: startTimeTicks as number,
    jobId,
    attempt: attempt as number,
  };
}

/**
 * Sends `signal` to every process of group `pgid`; false when the group
 * has no process left.
 *
 * `Deno.kill(-pgid, signal)` is kill(2) with a negative pid: the kernel
 * signals the whole group in one call, with no extra process and no race
 * between listing members and signalling them (`/bin/kill -- -PGID` does
 * the same syscall through a child process). Deno 2.9.6 passes the
 * negative pid through unchanged, and ESRCH arrives as `NotFound`.
 */
export function signalGroup(pgid: number, signal: Deno.Signal): boolean {
  if (!Number.isSafeInteger(pgid) || pgid < 2) {
    throw new RangeError(
      `Cannot signal a process group as its id must be greater than 1: current value is ${pgid}`,
    );
  }
  try {
    Deno.kill(-pgid, signal);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** The groups of one worker's state folder, held under its lock. */
export class GroupRegistry {
  readonly #lock: Deno.FsFile;
  #closed = false;

  private constructor(
    readonly stateDir: string,
    readonly table: ProcessTable,
    lock: Deno.FsFile,
  ) {
    this.#lock = lock;
  }

  /**
   * Takes the state folder's lock, then kills the groups its predecessor
   * recorded, each only if its leader's start time is the recorded one.
   *
   * @throws {StateDirLockedError} Another registry holds the folder.
   */
  static async open(
    stateDir: string,
    table: ProcessTable = defaultProcessTable(),
  ): Promise<{ registry: GroupRegistry; cleanup: PredecessorCleanup }> {
    const folder = groupsFolder(stateDir);
    await Deno.mkdir(folder, { recursive: true });
    const lock = await Deno.open(`${folder}/lock`, {
      read: true,
      write: true,
      create: true,
    });
    let locked = false;
    try {
      locked = await lock.tryLock(true);
    } finally {
      if (!locked) lock.close();
    }
    if (!locked) throw new StateDirLockedError(stateDir);
    const registry = new GroupRegistry(stateDir, table, lock);
    try {
      return { registry, cleanup: await registry.#killPredecessors() };
    } catch (error) {
      registry.close();
      throw error;
    }
  }

  async #killPredecessors(): Promise<PredecessorCleanup> {
    const folder = groupsFolder(this.stateDir);
    const killed: number[] = [], reused: number[] = [], gone: number[] = [];
    const invalid: string[] = [];
    let seen = 0;
    for await (const entry of Deno.readDir(folder)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      if (++seen > GROUP_RECORDS_MAX) break;
      const path = `${folder}/${entry.name}`;
      const record = parseRecord(entry.name, await Deno.readTextFile(path));
      if (record === null) invalid.push(entry.name);
      else {
        const verdict = await this.#judge(record);
        if (verdict === "ours" && signalGroup(record.pgid, "SIGKILL")) {
          killed.push(record.pgid);
        } else if (verdict === "reused") reused.push(record.pgid);
        else gone.push(record.pgid);
      }
      await Deno.remove(path);
    }
    return { killed, reused, gone, invalid };
  }

  /**
   * Whether a recorded group is still the recorded one. With its leader
   * alive, the leader's start time decides. With the leader gone, the
   * group's id cannot have been handed to a new process while any member
   * lives (Linux does not reuse a pid that still names a group), so live
   * members that all started after the recorded leader are its own.
   */
  async #judge(record: GroupRecord): Promise<"ours" | "reused" | "gone"> {
    const leader = await this.table.stat(record.pgid);
    if (leader !== null) {
      const same = leader.startTimeTicks === record.startTimeTicks &&
        leader.pgid === record.pgid;
      return same ? "ours" : "reused";
    }
    const members = (await this.table.members(record.pgid)).filter((member) =>
      member.state !== "Z"
    );
    if (members.length === 0) return "gone";
    const after = members.every((member) =>
      member.startTimeTicks >= record.startTimeTicks
    );
    return after ? "ours" : "reused";
  }

  /**
   * Records a running group; null when its leader already left (nothing
   * to record: the caller still kills the group when the child ends).
   * Called right after the spawn. Deno waits on a child from its spawn, so
   * a child that exits at once may be reaped and its pid reused before
   * this read: a window of microseconds against pid wrap-around, and a
   * successor kills such a record's group only if the newcomer also leads
   * a group of that id with that start time.
   */
  async record(
    pgid: number,
    jobId: string,
    attempt: number,
  ): Promise<GroupRecord | null> {
    this.#checkOpen();
    const leader = await this.table.stat(pgid);
    if (leader === null) return null;
    const record = {
      pgid,
      startTimeTicks: leader.startTimeTicks,
      jobId,
      attempt,
    };
    await writeGroupRecord(this.stateDir, record);
    return record;
  }

  /** Removes a group's record once the group is gone. */
  async release(record: GroupRecord): Promise<void> {
    this.#checkOpen();
    try {
      await Deno.remove(`${groupsFolder(this.stateDir)}/${record.pgid}.json`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }

  /** Drops the lock; the records stay for the next worker. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lock.close();
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new TypeError(
        `Cannot use a group registry after close: '${this.stateDir}'`,
      );
    }
  }
}
