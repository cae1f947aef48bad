/**
 * Child processes of the comparison benchmark: every child is registered so
 * that one call stops them all (SIGTERM, then SIGKILL after a grace period),
 * on success, on failure and on Ctrl-C. Output is drained so a child never
 * blocks on a full pipe; the last lines of stderr are kept for error reports.
 *
 * @module
 */

/** Lines of a child's stderr kept for error messages. */
const STDERR_LINES_MAX = 40;

/** Milliseconds a child gets to exit after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 3_000;

/** A running child. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly process: Deno.ChildProcess;
  /** Resolves with the first stdout line that parses as a JSON object. */
  readonly firstJson: Promise<Record<string, unknown>>;
  /** Every stdout JSON line after the first, in order (for runner children). */
  readonly jsonLines: AsyncIterable<Record<string, unknown>>;
  /** The last lines the child wrote to stderr. */
  stderrTail(): string;
  /** Whether the child has exited. */
  exited: boolean;
}

/** Every child started through {@linkcode spawnChild} and not yet stopped. */
const children = new Set<Child>();

/** Starts a child with piped output and registers it. */
export function spawnChild(
  name: string,
  command: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Child {
  const process = new Deno.Command(command, {
    args: [...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tail: string[] = [];
  drainLines(process.stderr, (line) => {
    tail.push(line);
    if (tail.length > STDERR_LINES_MAX) tail.shift();
  });
  const queue = jsonQueue();
  let resolveFirst!: (value: Record<string, unknown>) => void;
  let rejectFirst!: (error: Error) => void;
  const firstJson = new Promise<Record<string, unknown>>((resolve, reject) => {
    resolveFirst = resolve;
    rejectFirst = reject;
  });
  firstJson.catch(() => {});
  let first = true;
  const stdoutDone = drainLines(process.stdout, (line) => {
    const value = parseJsonObject(line);
    if (value === null) return;
    if (first) {
      first = false;
      resolveFirst(value);
    } else {
      queue.push(value);
    }
  });
  const child: Child = {
    name,
    pid: process.pid,
    process,
    firstJson,
    jsonLines: queue.iterable,
    stderrTail: () => tail.join("\n"),
    exited: false,
  };
  children.add(child);
  process.status.then(async (status) => {
    child.exited = true;
    await stdoutDone;
    queue.end();
    rejectFirst(
      new Error(
        `Child '${name}' exited with code ${status.code} before reporting: ${child.stderrTail()}`,
      ),
    );
  });
  return child;
}

/** Sends `signal` to a child, ignoring one that is already gone. */
export function signalChild(child: Child, signal: Deno.Signal): void {
  if (child.exited) return;
  try {
    child.process.kill(signal);
  } catch {
    // Already exited between the check and the kill.
  }
}

/** Stops one child: SIGTERM, then SIGKILL after the grace period. */
export async function stopChild(child: Child): Promise<void> {
  signalChild(child, "SIGTERM");
  const timer = setTimeout(() => signalChild(child, "SIGKILL"), STOP_GRACE_MS);
  try {
    await child.process.status;
  } finally {
    clearTimeout(timer);
    children.delete(child);
  }
}

/** Stops every registered child. */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map(stopChild));
}

/** Waits for a child's first JSON line, failing after `timeoutMs`. */
export async function waitForFirstJson(
  child: Child,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `Child '${child.name}' did not report within ${timeoutMs} ms: ${child.stderrTail()}`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([child.firstJson, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function parseJsonObject(line: string): Record<string, unknown> | null {
  if (!line.startsWith("{")) return null;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : null;
  } catch {
    return null;
  }
}

async function drainLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
    }
  } catch {
    // The child died mid-write: what was read is enough.
  }
  if (pending !== "") onLine(pending);
}

function jsonQueue() {
  const items: Record<string, unknown>[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  const iterable: AsyncIterable<Record<string, unknown>> = {
    async *[Symbol.asyncIterator]() {
      while (true) {
        const item = items.shift();
        if (item !== undefined) {
          yield item;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => wake = resolve);
      }
    },
  };
  return {
    iterable,
    push(item: Record<string, unknown>) {
      items.push(item);
      wake?.();
      wake = null;
    },
    end() {
      ended = true;
      wake?.();
      wake = null;
    },
  };
}
