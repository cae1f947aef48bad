/**
 * Recording clients and a nemesis for the history test against real node
 * processes. Clients do put / get / compare-and-set on a few keys through
 * the client module and record each call's input, output and call/return
 * times as {@linkcode Operation}s for `kvModel`; an outcome that is not
 * known is recorded as unknown (output undefined, return Infinity), never
 * as failed. The nemesis kill -9s and restarts nodes and SIGSTOPs /
 * SIGCONTs the leader, one fault at a time.
 *
 * @module
 */
import {
  type AspenClient,
  CheckFailedError,
  connect,
  UnavailableError,
} from "../../mod.ts";
import type { KvInput, KvOutput, Operation } from "../../src/sim/lincheck.ts";
import type { ProcessCluster } from "./process_cluster.ts";
import { valueOf, writeErrorOutcome, type WriteOutcome } from "./process_kv.ts";

/** A seeded generator (mulberry32), so a run's choices can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@linkcode runRecordingClients}. */
export interface RecordingOptions {
  readonly urls: readonly string[];
  /** Bearer token of the clients. */
  readonly token?: string;
  readonly clients: number;
  /** Register keys the clients share. */
  readonly keys: readonly string[];
  /** Prefix of the keys written once each (checked for presence at the end). */
  readonly uniquePrefix: string;
  /** Wall-clock end of the load, as `Date.now()`. */
  readonly until: number;
  /** Most operations per client. */
  readonly operationsMax: number;
  /** Client deadline of one request, ms. */
  readonly timeoutMs: number;
  /** Seed of the clients' choices (client i uses seed + i). */
  readonly seed: number;
}

/** What the clients recorded. */
export interface Recording {
  /** The register history, for `checkOperations(kvModel, …)`. */
  readonly history: Operation<KvInput, KvOutput>[];
  /** Outcome of every write of a unique key, by n. */
  readonly unique: Map<number, WriteOutcome>;
  /** Counts for the log: acknowledged, refused, unknown, failed reads. */
  readonly counts: Record<string, number>;
  /**
   * Per operation: the requests it took (node port, status or error) and
   * the versionstamp it wrote or read, to explain a violation.
   */
  readonly notes: Map<Operation<KvInput, KvOutput>, string>;
}

/** Runs the clients until `until` and returns what they recorded. */
export async function runRecordingClients(
  options: RecordingOptions,
): Promise<Recording> {
  const recording: Recording = {
    history: [],
    unique: new Map(),
    counts: {
      get: 0,
      put: 0,
      cas: 0,
      unique: 0,
      unknown: 0,
      refused: 0,
      readFailed: 0,
    },
    notes: new Map(),
  };
  await Promise.all(
    Array.from({ length: options.clients }, (_, clientId) => {
      // Each client starts on a different node; the client module moves on.
      const urls = options.urls.map((_, i) =>
        options.urls[(i + clientId) % options.urls.length]!
      );
      const trace: string[] = [];
      const client = connect(urls, {
        timeoutMs: options.timeoutMs,
        token: options.token,
        fetch: tracingFetch(trace),
      });
      return runClient(client, clientId, options, recording, trace).finally(
        () => client.close(),
      );
    }),
  );
  return recording;
}

/** A fetch that appends "port:status" (or "port:error") of each request to `trace`. */
function tracingFetch(trace: string[]): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    try {
      const response = await fetch(input, init);
      trace.push(`${url.port}:${response.status}`);
      return response;
    } catch (error) {
      trace.push(
        `${url.port}:${String((error as Error)?.message).slice(0, 60)}`,
      );
      throw error;
    }
  };
}

async function runClient(
  client: AspenClient,
  clientId: number,
  options: RecordingOptions,
  recording: Recording,
  trace: string[],
): Promise<void> {
  const random = seededRandom(options.seed + clientId);
  for (
    let sequence = 0;
    sequence < options.operationsMax && Date.now() < options.until;
    sequence++
  ) {
    const key = options.keys[Math.floor(random() * options.keys.length)]!;
    const before = recording.history.length;
    trace.length = 0;
    const value = `c${clientId}-${sequence}`;
    const draw = random();
    if (draw < 0.35) {
      await recordGet(client, clientId, key, recording);
    } else if (draw < 0.65) {
      await recordPut(client, clientId, key, value, recording);
    } else if (draw < 0.9) {
      const read = await recordGet(client, clientId, key, recording);
      if (read !== undefined) {
        await recordCas(client, clientId, key, read, value, recording);
      }
    } else {
      await recordUnique(
        client,
        clientId * 1_000_000 + sequence,
        options.uniquePrefix,
        recording,
      );
    }
    for (const operation of recording.history.slice(before)) {
      if (operation.clientId !== clientId) continue;
      const versionstamp = versionstamps.get(operation) ?? "";
      recording.notes.set(operation, `${trace.join(" ")} ${versionstamp}`);
    }
    await sleep(random() * 10);
  }
}

/** Versionstamp each operation wrote or read. */
const versionstamps = new WeakMap<object, string>();

/** Records a strong get; a failed read is dropped (it changed nothing). */
async function recordGet(
  client: AspenClient,
  clientId: number,
  key: string,
  recording: Recording,
): Promise<{ value: string | null; versionstamp: string | null } | undefined> {
  const call = performance.now();
  try {
    const entry = await client.kv.get<string>([key]);
    const operation: Operation<KvInput, KvOutput> = {
      clientId,
      input: { op: "get", key },
      output: { value: entry.value },
      call,
      return: performance.now(),
    };
    recording.history.push(operation);
    versionstamps.set(operation, `read ${entry.versionstamp}`);
    recording.counts.get!++;
    return { value: entry.value, versionstamp: entry.versionstamp };
  } catch {
    recording.counts.readFailed!++;
    return undefined;
  }
}

async function recordPut(
  client: AspenClient,
  clientId: number,
  key: string,
  value: string,
  recording: Recording,
): Promise<void> {
  const call = performance.now();
  const input: KvInput = { op: "put", key, value };
  try {
    const result = await client.kv.set([key], value);
    const operation: Operation<KvInput, KvOutput> = {
      clientId,
      input,
      output: { ok: true },
      call,
      return: performance.now(),
    };
    recording.history.push(operation);
    versionstamps.set(operation, `wrote ${result.versionstamp}`);
    recording.counts.put!++;
  } catch (error) {
    recordWriteError(error, clientId, input, call, recording);
  }
}

/**
 * Compare-and-set through `atomic().check()`: the check is on the versionstamp
 * read, which (every value being written once) is the same as comparing the
 * value read, so the model's value-based cas applies.
 */
async function recordCas(
  client: AspenClient,
  clientId: number,
  key: string,
  read: { value: string | null; versionstamp: string | null },
  value: string,
  recording: Recording,
): Promise<void> {
  const call = performance.now();
  const input: KvInput = { op: "cas", key, expected: read.value, value };
  try {
    const result = await client.kv.atomic()
      .check({ key: [key], versionstamp: read.versionstamp })
      .set([key], value)
      .commitOrThrow();
    const operation: Operation<KvInput, KvOutput> = {
      clientId,
      input,
      output: { ok: result.ok },
      call,
      return: performance.now(),
    };
    recording.history.push(operation);
    versionstamps.set(operation, `wrote ${result.versionstamp}`);
    recording.counts.cas!++;
  } catch (error) {
    if (error instanceof CheckFailedError) {
      recording.history.push({
        clientId,
        input,
        output: { ok: false },
        call,
        return: performance.now(),
      });
      recording.counts.cas!++;
      return;
    }
    recordWriteError(error, clientId, input, call, recording);
  }
}

/**
 * A write that failed: unknown unless the cluster said nothing happened
 * (then it is left out of the history: it had no effect, and if it had one
 * anyway a read of its value would show the violation).
 */
function recordWriteError(
  error: unknown,
  clientId: number,
  input: KvInput,
  call: number,
  recording: Recording,
): void {
  if (writeErrorOutcome(error).kind === "refused") {
    recording.counts.refused!++;
    return;
  }
  recording.history.push({
    clientId,
    input,
    output: undefined,
    call,
    return: Infinity,
  });
  recording.counts.unknown!++;
}

async function recordUnique(
  client: AspenClient,
  n: number,
  prefix: string,
  recording: Recording,
): Promise<void> {
  try {
    const result = await client.kv.set([prefix, n], valueOf(prefix, n));
    recording.unique.set(n, {
      kind: "acked",
      versionstamp: result.versionstamp,
    });
    recording.counts.unique!++;
  } catch (error) {
    recording.unique.set(n, writeErrorOutcome(error));
    if (error instanceof UnavailableError) recording.counts.refused!++;
    else recording.counts.unknown!++;
  }
}

const FAULT_KINDS = ["kill leader", "stop leader", "kill any"] as const;

/** Options of {@linkcode runNemesis}. */
export interface NemesisOptions {
  readonly until: number;
  readonly random: () => number;
  /** Called with each fault, for the test's log. */
  readonly log: (line: string) => void;
}

/**
 * Until `until`: one fault at a time, then a pause. The faults take turns: a
 * kill -9 of the leader, a SIGSTOP of the leader (SIGCONT 1.5–4 s later),
 * a kill -9 of a random node; a killed node restarts 1–3 s later. Every
 * node is running when it returns.
 */
export async function runNemesis(
  cluster: ProcessCluster,
  options: NemesisOptions,
): Promise<void> {
  const { random, log } = options;
  const count = cluster.nodes.length;
  const offset = Math.floor(random() * FAULT_KINDS.length);
  // The clients' clock, so faults line up with the history's times.
  const at = () => `@${performance.now().toFixed(0)}`;
  for (let round = 0; round < 50 && Date.now() < options.until; round++) {
    await sleep(1_000 + random() * 1_500);
    const leader = await findLeader(cluster);
    // Every kind comes up in any three rounds, from a random first one.
    const kind = FAULT_KINDS[(round + offset) % FAULT_KINDS.length]!;
    if (kind === "stop leader" && leader !== null) {
      log(`${at()} SIGSTOP leader n${leader}`);
      cluster.signal(leader, "SIGSTOP");
      await sleep(1_500 + random() * 2_500);
      cluster.signal(leader, "SIGCONT");
      log(`${at()} SIGCONT n${leader}`);
    } else {
      const victim = kind !== "kill any" && leader !== null
        ? leader
        : Math.floor(random() * count);
      log(`${at()} kill -9 n${victim}${victim === leader ? " (leader)" : ""}`);
      await cluster.kill(victim);
      await sleep(1_000 + random() * 2_000);
      await cluster.restart(victim);
      log(`${at()} restarted n${victim}`);
    }
  }
}

/** The index of a running node that says it leads, or null. */
async function findLeader(cluster: ProcessCluster): Promise<number | null> {
  const statuses = await Promise.all(
    cluster.nodes.map((node) => cluster.status(node.index)),
  );
  const leaders = statuses.flatMap((status, index) =>
    status?.role === "leader" ? [{ index, term: status.term }] : []
  );
  leaders.sort((a, b) => b.term - a.term);
  return leaders[0]?.index ?? null;
}

/**
 * The operations on the violating key in the `windowMs` before (and a little
 * after) the last one the checker could not get past, with the requests
 * each took and the versionstamp it wrote or read.
 */
export function explainViolation(
  recording: Recording,
  detail: { partition: string; operations: string[] } | undefined,
  urls: readonly string[],
  windowMs = 500,
): string {
  if (detail === undefined) return "(no detail)";
  const last = detail.operations.at(-1) ?? "";
  const callText = /\[([\d.]+),/.exec(last)?.[1];
  const key = /"([^"]+)"/.exec(detail.partition)?.[1];
  if (callText === undefined || key === undefined) return "(unparsed detail)";
  const at = Number(callText);
  const nodes = urls.map((url, i) => `n${i}=${new URL(url).port}`).join(" ");
  const lines = recording.history
    .filter((op) =>
      op.input.key === key && op.call >= at - windowMs && op.call <= at + 100
    )
    .sort((a, b) => a.call - b.call)
    .map((op) => {
      const output = op.output === undefined
        ? "unknown"
        : JSON.stringify(op.output);
      return `  client ${op.clientId} [${op.call.toFixed(1)}, ${
        op.return.toFixed(1)
      }] ${JSON.stringify(op.input)} -> ${output}   ${
        recording.notes.get(op) ?? ""
      }`;
    });
  return `nodes ${nodes}\n${lines.join("\n")}`;
}
