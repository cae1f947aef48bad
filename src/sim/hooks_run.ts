/**
 * The hooks part of one seed's run (`--services hooks`, issue 17; it runs
 * with events and leases): at the start, 1–3 webhook hooks over selectors
 * of the KV clients' keys (types `kv.*`) are created on the leader, from
 * the window's floor; 1–2 simulated workers (`hooks_workers.ts`) deliver
 * them to one simulated receiver, dying now and then under the nemesis.
 *
 * After healing (and the watchers' catch-up) the workers go on until, on
 * the leader, every hook has no open attempt and nothing after its cursor
 * ({@linkcode HooksProperties.caughtUp}; the simulator demands it within a
 * budget). Then each hook is checked (`hooks_checker.ts`) against the
 * events reference and its record and delivery log on the leader. A broken
 * property is the run's violation, with `hooks` in front.
 *
 * @module
 */
import {
  EventsReads,
  type HistoryEvent,
  hookMatches,
  HookReads,
  type HookRecord,
} from "../services/events/api.ts";
import type { StateStore } from "../state/state_store.ts";
import type { CoordinationNode } from "./coordination_clients.ts";
import type { EventQueue } from "./event_queue.ts";
import type { EventsReference } from "./events_checker.ts";
import { WATCH_SELECTORS } from "./events_watchers.ts";
import { checkHook } from "./hooks_checker.ts";
import { hookState, type SimHooksPort } from "./hooks_node.ts";
import {
  HookReceiver,
  type HooksCounts,
  HookWorkers,
} from "./hooks_workers.ts";
import type { InvariantChecker } from "./invariants.ts";
import type { SeededRandom } from "./random.ts";

export type { HooksCounts };

/** One node as the hooks part sees it. */
export interface HooksNodeView {
  readonly hooks: SimHooksPort | null;
  readonly coordination: CoordinationNode | null;
  readonly store: StateStore | null;
}

/** TTL of a worker's lease, ms (a few election timeouts; the service's least). */
const leaseTtlMs = 1_000;
/** A worker's request without an answer in this time is resent, ms. */
const requestTimeoutMs = 500;
/** Chance the receiver fails a send. */
const failChance = 0.15;
/** Pause between tries to create a hook, ms. */
const createRetryMs = 50;

/** A hook the run created. */
interface Created {
  readonly id: string;
  readonly name: string;
  readonly describe: string;
  fromRevision: number | null;
}

/** The hooks, workers and receiver of one run. */
export class HooksProperties {
  readonly #queue: EventQueue;
  readonly #nodes: () => readonly HooksNodeView[];
  readonly #leader: () => HooksNodeView | null;
  readonly #reference: EventsReference;
  readonly #checker: InvariantChecker;
  readonly #ran: () => void;
  readonly #trace: ((line: string) => void) | null;
  readonly #random: SeededRandom;
  readonly #receiver: HookReceiver;
  readonly #workers: HookWorkers;
  readonly #hooks: Created[] = [];
  #stopped = false;

  constructor(
    queue: EventQueue,
    nodes: () => readonly HooksNodeView[],
    leader: () => HooksNodeView | null,
    reference: EventsReference,
    issueUntilMs: number,
    makeRandom: (label: string) => SeededRandom,
    checker: InvariantChecker,
    ran: () => void,
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#nodes = nodes;
    this.#leader = leader;
    this.#reference = reference;
    this.#checker = checker;
    this.#ran = ran;
    this.#trace = trace;
    this.#random = makeRandom("hooks:setup");
    this.#receiver = new HookReceiver(makeRandom("hooks:receiver"), failChance);
    this.#workers = new HookWorkers(
      queue,
      nodes,
      {
        workers: this.#random.between(1, 2),
        issueUntilMs,
        ttlMs: leaseTtlMs,
        requestTimeoutMs,
        claimMax: 3,
      },
      makeRandom,
      this.#receiver,
      ran,
      trace,
    );
  }

  /** The workers' counts. */
  get counts(): HooksCounts & { hooks: number; arrivals: number } {
    return {
      ...this.#workers.counts,
      hooks: this.#hooks.filter((hook) => hook.fromRevision !== null).length,
      arrivals: this.#receiver.arrivals.length,
    };
  }

  /** Creates the hooks (on the leader, retried) and starts the workers. */
  start(): void {
    const count = this.#random.between(1, 3);
    for (let i = 1; i <= count; i++) {
      const entry = this.#random.pick(WATCH_SELECTORS);
      const created: Created = {
        id: i.toString(16).padStart(16, "0"),
        name: `hook-${i}`,
        describe: entry.describe,
        fromRevision: null,
      };
      this.#hooks.push(created);
      void this.#create(created, entry.selector);
    }
    this.#workers.start();
  }

  async #create(
    created: Created,
    selector: (typeof WATCH_SELECTORS)[number]["selector"],
  ): Promise<void> {
    while (!this.#stopped && created.fromRevision === null) {
      const leader = this.#leader();
      if (leader?.hooks == null || leader.store === null) {
        await this.#sleep(createRetryMs);
        continue;
      }
      const floor = Number(new EventsReads(leader.store).window().floor);
      const from = Math.max(1, floor);
      const proposal = leader.hooks.propose({
        type: "hookCreate",
        id: created.id,
        name: created.name,
        selector,
        types: ["kv.*"],
        target: { kind: "webhook", url: "http://127.0.0.1/sim", headers: {} },
        secret: new Uint8Array(32),
        cursor: { r: from, i: -1 },
        timeoutMs: 1_000,
        retryWindowMs: 3_600_000,
        retrySchedule: null,
        nowMs: this.#queue.now,
      }).catch(() => null);
      // A proposal whose answer never comes is given up on (then resent).
      const timeout = this.#sleep(requestTimeoutMs).then(() => null);
      const result = await Promise.race([proposal, timeout]);
      // A resent creation finds the hook made by an earlier proposal, from
      // a floor at or below this one: expecting events from here is safe.
      if (result !== null && (result.ok || result.reason === "hookExists")) {
        created.fromRevision = from;
        this.#trace?.(
          `hooks created ${created.name} ${created.describe} from ${from}`,
        );
        return;
      }
      this.#ran();
      await this.#sleep(createRetryMs);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) =>
      this.#queue.after(ms, () => {
        this.#ran();
        resolve();
      })
    );
  }

  /** On the leader, every hook exists, has no open attempt and nothing after its cursor. */
  get caughtUp(): boolean {
    return this.behind.length === 0;
  }

  /** Hooks not caught up on the leader, for the violation. */
  get behind(): string[] {
    const store = this.#leader()?.store ?? null;
    if (store === null) return ["no leader"];
    const reads = new HookReads(store);
    const events = new EventsReads(store);
    const behind: string[] = [];
    for (const created of this.#hooks) {
      const hook = reads.get(created.id);
      if (hook === null) {
        behind.push(`${created.name} not created`);
        continue;
      }
      if (hook.open.length > 0) {
        behind.push(
          `${hook.name} open ${
            hook.open.map((o) => `${o.event}#${o.attempt}`).join(" ")
          }`,
        );
        continue;
      }
      const next = nextAfter(events, hook);
      if (next !== null) {
        behind.push(
          `${hook.name} at ${JSON.stringify(hook.cursor)} before ${next}`,
        );
      }
    }
    return behind;
  }

  /**
   * Stops the workers and checks every hook (`caughtUp` false: the hooks
   * failed to catch up, so that every event arrived is not demanded).
   */
  finish(caughtUp = true): void {
    this.stop();
    const store = this.#leader()?.store ?? null;
    if (store === null) {
      this.#checker.fail("hooks: no leader to read the hooks from at the end");
      return;
    }
    const through = BigInt(store.appliedIndex());
    for (const created of this.#hooks) {
      const state = hookState(store, created.id);
      if (state === null || created.fromRevision === null) {
        this.#checker.fail(`hooks: hook ${created.name} was never created`);
        return;
      }
      const hook = state.hook;
      const events = this.#reference.filtered(
        through,
        (event) => hookMatches(hook, event),
      );
      if (!Array.isArray(events)) {
        this.#checker.fail(
          `hooks: revision ${events.missing} is missing from the reference`,
        );
        return;
      }
      const problem = checkHook({
        hook,
        deliveries: state.deliveries,
        fromRevision: created.fromRevision,
        events: events as HistoryEvent[],
        arrivals: this.#receiver.arrivals.filter((a) => a.hook === hook.id),
        caughtUp,
      });
      if (problem !== null) {
        this.#checker.fail(`hooks: ${problem}`);
        return;
      }
    }
  }

  /** Holds the workers' deliveries and claims (true) or lets them go (false). */
  pause(paused: boolean): void {
    this.#workers.pause(paused);
  }

  /** Stops the workers and the creations. */
  stop(): void {
    this.#stopped = true;
    this.#workers.stop();
  }
}

/** The id of the first event after the hook's cursor, or null (or a compacted cursor). */
function nextAfter(events: EventsReads, hook: HookRecord): string | null {
  const cursor = hook.cursor;
  const position = cursor.i < 0
    ? { from: BigInt(cursor.r) }
    : { after: { revision: BigInt(cursor.r), index: cursor.i } };
  try {
    const page = events.page(position, {
      limit: 1,
      keep: (event) => hookMatches(hook, event),
    });
    const event = page.events[0];
    return event === undefined ? null : `${event.revision}.${event.index}`;
  } catch {
    return `the floor ${events.window().floor}`;
  }
}
