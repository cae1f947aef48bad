/**
 * The nemesis: injects faults at random times during the faulty phase and
 * heals each after a random duration, or all at once at the end.
 *
 * @module
 */
import type { EventQueue } from "./event_queue.ts";
import type { SimNetwork } from "./network.ts";
import type { FaultName } from "./options.ts";
import type { SeededRandom } from "./random.ts";
import type { SimNode } from "./sim_node.ts";

/** Faults active at once, at most. */
const activeFaultsMax = 3;

/** Schedules faults; `healAll()` ends every active one. */
export class Nemesis {
  readonly #queue: EventQueue;
  readonly #random: SeededRandom;
  readonly #nodes: readonly SimNode[];
  readonly #network: SimNetwork;
  readonly #faults: readonly FaultName[];
  readonly #trace: ((line: string) => void) | null;
  /** Heal actions of active faults, by a unique number. */
  readonly #active = new Map<number, { name: FaultName; heal: () => void }>();
  #nextFault = 0;
  #stopped = false;
  /** Faults injected, by name, for reports. */
  readonly counts = new Map<FaultName, number>();

  constructor(
    queue: EventQueue,
    random: SeededRandom,
    nodes: readonly SimNode[],
    network: SimNetwork,
    faults: readonly FaultName[],
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#random = random;
    this.#nodes = nodes;
    this.#network = network;
    this.#faults = faults;
    this.#trace = trace;
  }

  /** Injects faults until `untilMs` of simulated time. */
  start(untilMs: number): void {
    if (this.#faults.length === 0) return;
    const loop = () => {
      if (this.#stopped || this.#queue.now >= untilMs) return;
      if (this.#active.size < activeFaultsMax) {
        this.#inject(this.#random.pick(this.#faults));
      }
      this.#queue.after(this.#random.between(20, 250), loop);
    };
    this.#queue.after(this.#random.between(50, 300), loop);
  }

  /** Stops injecting and heals every active fault now. */
  healAll(): void {
    this.#stopped = true;
    for (const [, { heal }] of [...this.#active]) heal();
    this.#active.clear();
    this.#network.healAll();
    for (const node of this.#nodes) {
      if (node.paused) node.resume();
      if (node.raft === null) {
        this.#trace?.(`heal restart ${node.id}`);
        node.start();
      }
    }
  }

  #inject(name: FaultName): void {
    for (const { name: active } of this.#active.values()) {
      if (active === name && name !== "crash" && name !== "pause") return;
    }
    const heal = this.#apply(name);
    if (heal === null) return;
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    const id = this.#nextFault++;
    let healed = false;
    const once = () => {
      if (healed) return;
      healed = true;
      this.#active.delete(id);
      heal();
    };
    this.#active.set(id, { name, heal: once });
    const duration = this.#duration(name);
    this.#queue.after(duration, () => {
      if (!this.#stopped) once();
    });
  }

  #duration(name: FaultName): number {
    const random = this.#random;
    switch (name) {
      case "crash":
        // Quick restarts race with elections in flight.
        return random.chance(0.3)
          ? random.between(5, 40)
          : random.between(40, 600);
      case "pause":
        return random.between(30, 600);
      case "partition":
      case "asymmetric":
        return random.between(100, 1000);
      case "swizzle":
        return random.between(300, 1200);
      default:
        return random.between(100, 800);
    }
  }

  /** Applies a fault; returns how to heal it, or null when it does not apply now. */
  #apply(name: FaultName): (() => void) | null {
    const random = this.#random;
    const network = this.#network;
    switch (name) {
      case "crash":
      case "pause":
        return this.#stopNode(name);
      case "partition":
      case "asymmetric":
        return this.#partition(name === "partition");
      case "swizzle":
        return this.#swizzle();
      case "drop": {
        const p = random.between(5, 30) / 100;
        network.conditions.dropProbability = p;
        return this.#condition("drop", `p=${p}`, () => {
          network.conditions.dropProbability = 0;
        });
      }
      case "duplicate": {
        const p = random.between(5, 30) / 100;
        network.conditions.duplicateProbability = p;
        return this.#condition("duplicate", `p=${p}`, () => {
          network.conditions.duplicateProbability = 0;
        });
      }
      case "delay": {
        const ms = random.between(5, 60);
        network.conditions.extraDelayMsMax = ms;
        return this.#condition("delay", `max=${ms}ms`, () => {
          network.conditions.extraDelayMsMax = 0;
        });
      }
      case "reorder": {
        const ms = random.between(5, 30);
        network.conditions.jitterMsMax = ms;
        return this.#condition("reorder", `jitter=${ms}ms`, () => {
          network.conditions.jitterMsMax = 0;
        });
      }
    }
  }

  #condition(name: string, detail: string, heal: () => void): () => void {
    this.#trace?.(`fault ${name} ${detail}`);
    return () => {
      this.#trace?.(`heal ${name}`);
      heal();
    };
  }

  /** The current leader if any (nemeses like to hit leaders), else a random node. */
  #target(candidates: readonly SimNode[]): SimNode | null {
    if (candidates.length === 0) return null;
    const leaders = candidates.filter((node) =>
      node.raft?.status().role === "leader"
    );
    if (leaders.length > 0 && this.#random.chance(0.5)) {
      return this.#random.pick(leaders);
    }
    return this.#random.pick(candidates);
  }

  #stopNode(kind: "crash" | "pause"): (() => void) | null {
    const available = this.#nodes.filter((node) => node.available);
    if (available.length <= 1) return null;
    const node = this.#target(available);
    if (node === null) return null;
    this.#trace?.(`fault ${kind} ${node.id}`);
    if (kind === "pause") {
      node.pause();
      return () => {
        this.#trace?.(`heal resume ${node.id}`);
        node.resume();
      };
    }
    node.crash();
    return () => {
      this.#trace?.(`heal restart ${node.id}`);
      node.start();
    };
  }

  #split(): [SimNode[], SimNode[]] {
    const shuffled = this.#random.shuffle(this.#nodes);
    const leader = this.#target(shuffled);
    if (leader !== null) {
      shuffled.splice(shuffled.indexOf(leader), 1);
      shuffled.unshift(leader);
    }
    const size = this.#random.between(1, shuffled.length - 1);
    return [shuffled.slice(0, size), shuffled.slice(size)];
  }

  #partition(symmetric: boolean): () => void {
    const [side, rest] = this.#split();
    const links: [string, string][] = [];
    for (const a of side) {
      for (const b of rest) {
        links.push([a.id, b.id]);
        if (symmetric) links.push([b.id, a.id]);
      }
    }
    for (const [from, to] of links) this.#network.cut(from, to);
    const text = `${side.map((node) => node.id).join(",")} ${
      symmetric ? "|" : "-/->"
    } ${rest.map((node) => node.id).join(",")}`;
    this.#trace?.(`fault ${symmetric ? "partition" : "asymmetric"} ${text}`);
    return () => {
      this.#trace?.(`heal partition ${text}`);
      for (const [from, to] of links) this.#network.cut(from, to, -1);
    };
  }

  /** Swizzle-clogging: clog nodes one by one, then unclog them in random order. */
  #swizzle(): () => void {
    const random = this.#random;
    const order = random.shuffle(this.#nodes).slice(
      0,
      random.between(1, this.#nodes.length),
    );
    const stepMs = random.between(20, 100);
    const clogged = new Set<SimNode>();
    let ended = false;
    const setClog = (node: SimNode, on: boolean) => {
      if (clogged.has(node) === on) return;
      if (on) clogged.add(node);
      else clogged.delete(node);
      this.#trace?.(`${on ? "fault" : "heal"} swizzle ${node.id}`);
      for (const other of this.#nodes) {
        if (other === node) continue;
        this.#network.cut(node.id, other.id, on ? 1 : -1);
        this.#network.cut(other.id, node.id, on ? 1 : -1);
      }
    };
    order.forEach((node, i) => {
      this.#queue.after(i * stepMs, () => {
        if (!ended) setClog(node, true);
      });
    });
    const unclogAt = order.length * stepMs + random.between(50, 300);
    random.shuffle(order).forEach((node, i) => {
      this.#queue.after(unclogAt + i * stepMs, () => {
        if (!ended) setClog(node, false);
      });
    });
    return () => {
      ended = true;
      for (const node of [...clogged]) setClog(node, false);
    };
  }
}
