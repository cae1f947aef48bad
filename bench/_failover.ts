/**
 * Failover time of a 3-node Aspen: writers keep putting through the client
 * module, the leader is killed with SIGKILL, and the clock runs from the kill
 * until the first write that was sent after the kill succeeds (and,
 * separately, until the survivors agree on a new leader).
 *
 * @module
 */
import { killNode, type RunningCluster } from "./_clusters.ts";
import { AspenClientDriver } from "./_drivers.ts";
import { describeError, type KeySpace, pause } from "./_load.ts";

/** What a failover measurement found. */
export interface FailoverMeasurement {
  readonly clients: number;
  /** Index of the killed node in the cluster's URLs. */
  readonly killedNode: number;
  /** Writes that succeeded before the kill. */
  readonly writesBeforeKill: number;
  /** Ms from SIGKILL until a write sent after it succeeded; null if none did in time. */
  readonly firstWriteAfterKillMs: number | null;
  /** Ms from SIGKILL until the survivors agreed on a new leader; null if not in time. */
  readonly newLeaderMs: number | null;
  /** Failed writes between the kill and the first success. */
  readonly errorsDuringFailover: number;
  readonly firstError: string | null;
}

/** Options of {@linkcode measureFailover}. */
export interface FailoverOptions {
  readonly clients: number;
  readonly value: Uint8Array;
  readonly keys: KeySpace;
  /** Ms of load before the kill. */
  readonly warmupMs: number;
  /** Ms after the kill before giving up. */
  readonly timeoutMs: number;
  /** Ms one write may take during the measurement. */
  readonly requestTimeoutMs: number;
}

/** Kills the leader of `cluster` under write load and times the recovery. */
export async function measureFailover(
  cluster: RunningCluster,
  options: FailoverOptions,
): Promise<FailoverMeasurement> {
  const leader = await cluster.leaderIndex();
  let killedAt: number | null = null;
  let firstWriteAfterKillMs: number | null = null;
  let writesBeforeKill = 0;
  let errorsDuringFailover = 0;
  let firstError: string | null = null;
  let done = false;
  const writer = async (client: number) => {
    // Every client starts at the leader; the client module moves on to
    // the other nodes by itself. Odd clients list the survivors reversed.
    const others = cluster.urls.filter((_, i) => i !== leader);
    const urls = [
      cluster.urls[leader]!,
      ...(client % 2 === 0 ? others : others.reverse()),
    ];
    const driver = new AspenClientDriver(urls, options.requestTimeoutMs);
    while (!done) {
      const sentAt = performance.now();
      try {
        const key = options.keys.fresh();
        await driver.put(key, options.value);
        if (killedAt === null) {
          writesBeforeKill++;
        } else if (sentAt >= killedAt && firstWriteAfterKillMs === null) {
          firstWriteAfterKillMs = performance.now() - killedAt;
          done = true;
        }
      } catch (error) {
        if (killedAt !== null) {
          errorsDuringFailover++;
          firstError ??= describeError(error);
        }
        await pause(5);
      }
    }
    await driver.close();
  };
  const writers = Array.from({ length: options.clients }, (_, i) => writer(i));
  await pause(options.warmupMs);
  killedAt = performance.now();
  killNode(cluster, leader);
  const killTime = killedAt;
  const election = cluster.leaderIndex(options.timeoutMs).then(
    () => performance.now() - killTime,
    () => null,
  );
  const timer = setTimeout(() => done = true, options.timeoutMs);
  await Promise.all(writers);
  clearTimeout(timer);
  const newLeaderMs = await election;
  return {
    clients: options.clients,
    killedNode: leader,
    writesBeforeKill,
    firstWriteAfterKillMs,
    newLeaderMs,
    errorsDuringFailover,
    firstError,
  };
}
