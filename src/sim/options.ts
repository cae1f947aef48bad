/**
 * What one simulated run is asked to do: cluster size, faults, planted bug,
 * budgets. Validated before any work.
 *
 * @module
 */
import type { TestingKnobs } from "../raft/types.ts";
import type { KvStateMachineKnobs } from "../services/state_machine.ts";
import type { RunnerTestingKnobs } from "../node/raft_runner.ts";

/** Faults the nemesis can inject. */
export const FAULT_NAMES = [
  "delay",
  "drop",
  "duplicate",
  "reorder",
  "partition",
  "asymmetric",
  "swizzle",
  "crash",
  "pause",
  "learner",
  "promote",
  "remove",
  "replace",
  "transfer",
  "snapshot",
  "skew",
  "stale-leader",
  "stall",
  "zombie",

  "corrupt-tail",
] as const;

/** One kind of fault. */
export type FaultName = typeof FAULT_NAMES[number];

/** Planted bugs and the testing knob each one sets. */
export const BUGS = {
  "commit-previous-term": { commitPreviousTerm: true },
  "vote-ignores-log": { voteIgnoresLog: true },
  "forget-vote-on-restart": { forgetVoteOnRestart: true },
  "apply-uncommitted": { applyUncommitted: true },
  "read-without-quorum": { readWithoutQuorum: true },
  "read-before-term-commit": { readBeforeTermCommit: true },
  "lease-without-vote-guard": { leaseWithoutVoteGuard: true },
  "single-step-double-change": { singleStepDoubleChange: true },
  "snapshot-skips-membership": { snapshotSkipsMembership: true },
  // Bugs of the replicated KV state machine (knobs in KV_BUG_KNOBS).
  "stock-resend-new-session": {},
  "reapply-after-eviction": {},
  // A stock write's delivery mark committed before its answer reached the
  // client (the entry node then killed): the resend applied again. Set in
  // the simulated clients (`markBeforeDelivery`), not in a knob.
  "mark-before-delivery": {},

  "lease-tick-count": { leaseTickCount: true },
  "lease-beyond-drift": { leaseBeyondDrift: true },
  "non-member-append": { nonMemberAppend: true },

  "truncate-acknowledged-tail": { truncateAcknowledgedTail: true },

  // Bugs of the leases and locks services (knobs in SERVICE_BUG_KNOBS).
  "grant-without-lease-check": {},
  "expire-without-extension": {},
  "keepalive-during-expiry": {},

  // Bug of the events watch (issue 17): a watch resumed after an event
  // skips one (`NodeEvents`' knob `skipOnResume`, set in the sim nodes).
  "watch-skip-on-resume": {},

  // Bug of the runner's restart: the snapshot taken at start is labelled
  // with the durable commit index, below the state it holds
  // (`RunnerTestingKnobs.snapshotBelowState`, in RUNNER_BUG_KNOBS).
  "snapshot-below-state": {},

  // Bug of the hooks' apply (issue 17): an ok finish logs the delivery but
  // leaves the cursor to the next begin (`HookKnobs`' knob
  // `cursorApartFromFinish`, in KV_BUG_KNOBS).
  "cursor-apart-from-finish": {},
} as const satisfies Record<string, TestingKnobs>;

/** Planted bugs of the KV state machine's exactly-once tables, and their knobs. */
export const KV_BUG_KNOBS: Readonly<
  Partial<Record<keyof typeof BUGS, KvStateMachineKnobs>>
> = {
  // A stock client's resend applied as a new write (issue 12 item 0).
  "stock-resend-new-session": { ignoreResends: true },
  // A retry whose session result was evicted applied again (item 4).
  "reapply-after-eviction": { reapplyAfterEviction: true },
  // An ok finish does not move the hook's cursor; the next begin does.
  "cursor-apart-from-finish": { cursorApartFromFinish: true },
};

/** Planted bugs of the Raft runner (`RaftRunner`'s own knobs), and their knobs. */
export const RUNNER_BUG_KNOBS: Readonly<
  Partial<Record<keyof typeof BUGS, RunnerTestingKnobs>>
> = {
  "snapshot-below-state": { snapshotBelowState: true },
};

/** Name of a planted bug. */
export type BugName = keyof typeof BUGS;

/** Services the simulator can run beside KV (issues 16 and 17). */
export const SERVICE_NAMES = ["leases", "locks", "events", "hooks"] as const;

/** One service of {@linkcode SERVICE_NAMES}. */
export type ServiceName = typeof SERVICE_NAMES[number];

/**
 * Testing knobs of the leases and locks services, by the knob names their
 * `LeaseKnobs` and `LockKnobs` declare (never set in production).
 */
export interface ServiceBugKnobs {
  readonly leases?: {
    /** A new leader expires leases without first extending their deadlines. */
    readonly expireWithoutExtension?: boolean;
    /** A keep-alive is acknowledged while an expiry of its lease is in flight. */
    readonly keepAliveDuringExpiry?: boolean;
  };
  readonly locks?: {
    /** A release or expiry grants the next waiter without checking its lease. */
    readonly grantWithoutLeaseCheck?: boolean;
  };
}

/** Planted bugs of the leases and locks services, and their knobs. */
export const SERVICE_BUG_KNOBS: Readonly<
  Partial<Record<BugName, ServiceBugKnobs>>
> = {
  "grant-without-lease-check": { locks: { grantWithoutLeaseCheck: true } },
  "expire-without-extension": { leases: { expireWithoutExtension: true } },
  "keepalive-during-expiry": { leases: { keepAliveDuringExpiry: true } },
};

/** Bugs of the services: their runs always run leases and locks. */
export const SERVICE_BUGS: ReadonlySet<BugName> = new Set(
  Object.keys(SERVICE_BUG_KNOBS) as BugName[],
);

/** Bugs of the events watch: their runs always run events. */
export const EVENTS_BUGS: ReadonlySet<BugName> = new Set([
  "watch-skip-on-resume",
]);

/** Bugs of the hooks: their runs always run hooks (and so events and leases). */
export const HOOKS_BUGS: ReadonlySet<BugName> = new Set([
  "cursor-apart-from-finish",
]);

/** Bugs that only show when nodes serve lease reads: their runs always use leases. */
export const LEASE_BUGS: ReadonlySet<BugName> = new Set([
  "lease-without-vote-guard",
  "lease-tick-count",
  "lease-beyond-drift",
]);

/** How reads are confirmed: per seed (a third of seeds lease), or forced. */
export type ReadMode = "seeded" | "safe" | "lease";

/**
 * Accepted for old command lines and regression seeds; every seed now
 * replicates the real KV state (the string map of the first simulator is gone).
 */
export type StateMachineMode = "seeded" | "map" | "kv";

/** Options of one seed's run. */
export interface SimOptions {
  readonly seed: number;
  /** 3 or 5. */
  readonly nodes: number;
  readonly faults: readonly FaultName[];
  readonly bug: BugName | null;
  /** Ticks of the faulty phase (each tick is 10 ms of simulated time). */
  readonly ticks: number;
  /** Client operations issued during the faulty phase. */
  readonly ops: number;
  /** Collect a trace of deliveries, drops, faults and role changes. */
  readonly trace: boolean;
  /** Wall-clock budget of the linearizability check, in milliseconds. */
  readonly lincheckTimeoutMs: number;
  /** ReadIndex reads confirmed by a heartbeat round or by the leader lease. */
  readonly readMode: ReadMode;
  /** Ignored: every seed replicates the real KV state. */
  readonly stateMachine: StateMachineMode;
  /**
   * Services run beside KV, with their clients and properties (`[]`: KV
   * only). A service bug's run runs both whatever this says.
   */
  readonly services: readonly ServiceName[];
}

/** Defaults, tuned so correct runs are fast and planted bugs show early. */
export const DEFAULT_OPTIONS: Omit<SimOptions, "seed"> = {
  nodes: 3,
  faults: FAULT_NAMES,
  bug: null,
  ticks: 1500,
  ops: 300,
  trace: false,
  lincheckTimeoutMs: 10_000,
  readMode: "seeded",
  stateMachine: "seeded",
  services: [],
};

/**
 * Parses `all`, `none` or a comma list of fault names.
 *
 * @throws {TypeError} For an unknown fault name.
 */
export function parseFaults(text: string): FaultName[] {
  if (text === "all") return [...FAULT_NAMES];
  if (text === "none" || text === "") return [];
  const names = text.split(",").map((name) => name.trim());
  for (const name of names) {
    if (!(FAULT_NAMES as readonly string[]).includes(name)) {
      throw new TypeError(
        `Cannot parse faults as '${name}' is not a fault: expected all, none or a comma list of ${
          FAULT_NAMES.join(", ")
        }`,
      );
    }
  }
  return names as FaultName[];
}

/**
 * Parses `none` or a comma list of service names.
 *
 * @throws {TypeError} For an unknown service name.
 */
export function parseServices(text: string): ServiceName[] {
  if (text === "none" || text === "") return [];
  const names = text.split(",").map((name) => name.trim());
  for (const name of names) {
    if (!(SERVICE_NAMES as readonly string[]).includes(name)) {
      throw new TypeError(
        `Cannot parse services as '${name}' is not a service: expected none or a comma list of ${
          SERVICE_NAMES.join(", ")
        }`,
      );
    }
  }
  return [...new Set(names)] as ServiceName[];
}

/**
 * The services a run runs: those asked for, with leases and locks for a
 * bug of theirs, events for a bug of the watch, and hooks for a bug of
 * theirs. Hooks always bring events (what they deliver) and leases (what
 * their workers hold).
 */
export function runServices(options: SimOptions): readonly ServiceName[] {
  const bug = options.bug;
  const services = new Set<ServiceName>(options.services);
  if (bug !== null && SERVICE_BUGS.has(bug)) {
    services.add("leases");
    services.add("locks");
  }
  if (bug !== null && EVENTS_BUGS.has(bug)) services.add("events");
  if (bug !== null && HOOKS_BUGS.has(bug)) services.add("hooks");
  if (services.has("hooks")) {
    services.add("events");
    services.add("leases");
  }
  return [...services];
}

/** True when `name` is a planted bug's name. */
export function isBugName(name: string): name is BugName {
  return Object.hasOwn(BUGS, name);
}

/**
 * Checks a run's options.
 *
 * @throws {RangeError} When a number is out of range.
 */
export function validateOptions(options: SimOptions): void {
  if (options.nodes !== 3 && options.nodes !== 5) {
    throw new RangeError(
      `Cannot simulate as 'nodes' must be 3 or 5: current value is ${options.nodes}`,
    );
  }
  for (const name of options.services) {
    if (!(SERVICE_NAMES as readonly string[]).includes(name)) {
      throw new RangeError(
        `Cannot simulate as 'services' must list ${
          SERVICE_NAMES.join(", ")
        }: current value has '${name}'`,
      );
    }
  }
  for (const name of ["seed", "ticks", "ops"] as const) {
    const value = options[name];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(
        `Cannot simulate as '${name}' must be a non-negative integer: current value is ${value}`,
      );
    }
  }
}
