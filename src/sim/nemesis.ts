/**
 * The nemesis: injects faults at random times during the faulty phase and
 * heals each after a random duration, or all at once at the end. Besides
 * network and process faults it changes the membership (adds a spare node as
 * a learner, promotes it, removes a voter, replaces the leader), transfers
 * leadership, forces snapshots with log compaction, and skews one node's
 * clock within the lease's documented tolerance, and crashes a node whose
 * unsynced-to-commit tail then fails its checksum at restart (corrupt-tail).
 * Its stale-leader fault cuts
 * a leader off while a probe client keeps reading from it and another writes
 * through the leader the rest elect (see `#staleLeader`).
 *
 * @module
 */
import { ConfChangeError } from "../raft/confchange.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import type {
  ConfChange,
  LogIndex,
  Message,
  NodeId,
  Term,
} from "../raft/types.ts";
import type { EventQueue } from "./event_queue.ts";
import type { SimNetwork } from "./network.ts";
import type { FaultName } from "./options.ts";
import type { SeededRandom } from "./random.ts";
import type { SimNode } from "./sim_node.ts";

/** Faults active (or armed) at once, at most. */
const activeFaultsMax = 4;
/** Probability that a node fault is armed for the next leader instead of hitting now. */
const trapProbability = 0.5;
/** An armed fault that found no new leader in this time is dropped, in ms. */
const trapExpiryMs = 1_000;
/** When an armed fault hits a new leader: on election, or on its first commit. */
type TrapMoment = "elected" | "firstCommit";
/** Faults that can be armed for the next leader. */
const TRAPPABLE: ReadonlySet<FaultName> = new Set([
  "crash",
  "pause",
  "partition",
  "asymmetric",
]);

/** Faults that act on the network. */
const NETWORK_FAULTS: ReadonlySet<FaultName> = new Set([
  "delay",
  "drop",
  "duplicate",
  "reorder",
  "partition",
  "asymmetric",
  "swizzle",
]);

/** The first simulator's faults; picked more often than the newer ones. */
const CLASSIC: ReadonlySet<FaultName> = new Set([
  ...NETWORK_FAULTS,
  "crash",
  "pause",
]);
/** Probability a fault is drawn from the classic ones when both kinds are on. */
const classicProbability = 0.65;
/**
 * Lease seeds: share of the newer faults that are a stale-leader probe
 * (raised from 0.25 when the simulator moved onto the real runner, whose
 * timings made the lease bugs rarer per seed).
 */
const staleLeaderShareLease = 0.4;
/** Probability that a leader still running when another is elected is cut off then. */
const isolateDeposedProbability = 0.5;

/** Probability a removal may take the voters below the founding count. */
const shrinkProbability = 0.2;

/** Actions that happen once and need no healing. */
const ONE_SHOT: ReadonlySet<FaultName> = new Set([
  "learner",
  "promote",
  "remove",
  "replace",
  "transfer",
  "snapshot",
  "stall",
  "zombie",
]);
/**
 * Largest clock skew beyond the drift bound, in percent, in safe-read
 * seeds (clock rates do not matter to safe reads). Lease seeds stay within
 * the bound the cores are configured with (`NemesisCluster.clockDrift`).
 */
const skewPercentMaxSafe = 40;
/** Probability a lease seed's stale-leader fault also skews clocks to the edge of the bound. */
const staleSkewProbability = 0.7;
/** Longest event-loop stall, in ms: several election timeouts. */
const stallMsMax = 400;

/** Clock slowdown of a stale leader in safe-read seeds: this many times slower, at most. */
const staleSlowdownMax = 5;
/** Probability a lease seed's stale-leader fault cuts one follower first (the vote-guard case). */
const staleSplitProbability = 0.8;

/** What the nemesis asks of the clients to probe a stale leader. */
export interface ProbeClients {
  /** Regular clients cannot reach `node` until the returned function is called. */
  block(node: SimNode): () => void;
  /** Reads `key` on `stale`, writes it through another leader; returns stop. */
  probeStaleLeader(stale: SimNode, key: string, writes: number): () => void;
}

/** A stale-leader fault in progress. */
interface StaleTrap {
  readonly leader: SimNode;
  /** The follower cut off first, if any. */
  readonly follower: SimNode | null;
  /** True once that follower campaigned on its own (its election timer ran out). */
  followerCampaigned: boolean;
  /** Isolates the leader from every peer and starts the probe; null once done. */
  escalate: (() => void) | null;
}

/** The cluster as the nemesis sees it. */
export interface NemesisCluster {
  /** Every node slot, spares included. */
  readonly nodes: readonly SimNode[];
  /** Nodes in the membership now (latest committed and any newer leader's). */
  members(): SimNode[];
  /** Spare node ids never added yet; each may join once. */
  readonly spares: readonly string[];
  /** Voters never removed below this count. */
  readonly votersMin: number;
  /** Normal tick period, in ms. */
  readonly tickMs: number;
  /** How the seed's reads are confirmed: clock faults beyond the lease's tolerance only without leases. */
  readonly readOnly: "safe" | "lease";
  /** The clock drift bound of the cores' lease (fraction). */
  readonly clockDrift: number;
  /** Keys the clients use ('k0' up to this count). */
  readonly keys: number;
}

/** Schedules faults; `healAll()` ends every active one. */
export class Nemesis {
  readonly #queue: EventQueue;
  readonly #random: SeededRandom;
  readonly #nodes: readonly SimNode[];
  readonly #cluster: NemesisCluster;
  /** Spares already proposed as members: never proposed again. */
  readonly #usedSpares = new Set<string>();
  readonly #network: SimNetwork;
  readonly #clients: ProbeClients;
  readonly #faults: readonly FaultName[];
  readonly #trace: ((line: string) => void) | null;
  /** Heal actions of active faults, by a unique number. */
  readonly #active = new Map<number, { name: FaultName; heal: () => void }>();
  #nextFault = 0;
  #traps: { id: number; name: FaultName; moment: TrapMoment }[] = [];
  /** The stale-leader fault in progress: no other fault starts meanwhile. */
  #staleTrap: StaleTrap | null = null;
  #stopped = false;
  /** Faults injected, by name, for reports. */
  readonly counts = new Map<FaultName, number>();

  constructor(
    queue: EventQueue,
    random: SeededRandom,
    cluster: NemesisCluster,
    network: SimNetwork,
    clients: ProbeClients,
    faults: readonly FaultName[],
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#random = random;
    this.#nodes = cluster.nodes;
    this.#cluster = cluster;
    this.#network = network;
    this.#clients = clients;
    this.#faults = faults;
    this.#trace = trace;
  }

  /** Injects faults until `untilMs` of simulated time. */
  start(untilMs: number): void {
    if (this.#faults.length === 0) return;
    const loop = () => {
      if (this.#stopped || this.#queue.now >= untilMs) return;
      if (this.#staleTrap === null && this.#active.size < activeFaultsMax) {
        this.#inject(this.#pick());
      }
      this.#queue.after(this.#random.between(20, 250), loop);
    };
    this.#queue.after(this.#random.between(50, 300), loop);
  }

  /**
   * Draws a fault: classic network and process faults most of the time, so
   * the first simulator's bugs stay as easy to find with the newer ones on.
   */
  #pick(): FaultName {
    const classic = this.#faults.filter((name) => CLASSIC.has(name));
    const newer = this.#faults.filter((name) => !CLASSIC.has(name));
    if (classic.length === 0) return this.#random.pick(newer);
    if (newer.length === 0) return this.#random.pick(classic);
    if (this.#random.chance(classicProbability)) {
      return this.#random.pick(classic);
    }
    // Lease seeds: the stale-leader probe is what tests a lease, so it keeps
    // its share however many newer faults there are.
    if (
      this.#cluster.readOnly === "lease" && newer.includes("stale-leader") &&
      this.#random.chance(staleLeaderShareLease)
    ) return "stale-leader";
    return this.#random.pick(newer);
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
    if (ONE_SHOT.has(name)) {
      if (this.#oneShot(name)) {
        this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
      }
      return;
    }
    for (const { name: active } of this.#active.values()) {
      if (active === name && name !== "crash" && name !== "pause") return;
    }
    if (TRAPPABLE.has(name) && this.#random.chance(trapProbability)) {
      this.#arm(name);
      return;
    }
    const heal = this.#apply(name, null);
    if (heal !== null) this.#register(name, heal);
  }

  /** Keeps an applied fault active until its random duration ends. */
  #register(name: FaultName, heal: () => void): void {
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
    this.#queue.after(this.#duration(name), () => {
      if (!this.#stopped) once();
    });
  }

  /**
   * Arms a fault that hits the next node to become leader a few milliseconds
   * after it does, while its first entries are still in flight: the moment
   * where an unsafe commit rule or vote rule does its damage.
   */
  #arm(name: FaultName): void {
    const id = this.#nextFault++;
    this.#active.set(id, {
      name,
      heal: () => {
        this.#active.delete(id);
        this.#traps = this.#traps.filter((trap) => trap.id !== id);
      },
    });
    const moment: TrapMoment = this.#random.chance(0.5)
      ? "elected"
      : "firstCommit";
    this.#traps.push({ id, name, moment });
    this.#trace?.(`fault arm ${name} of the next leader (${moment})`);
    this.#queue.after(trapExpiryMs, () => this.#active.get(id)?.heal());
  }

  /** A node just became leader: springs the oldest trap armed for that moment. */
  leaderElected(node: SimNode): void {
    this.#isolateDeposed(node);
    this.#spring(node, "elected", 25);
  }

  /**
   * A leader of an older term still runs while `node` was just elected: cut
   * it off at once, so it does not learn of the new term and keeps believing
   * it leads (where a lease or a read without a quorum round would serve
   * stale data).
   */
  #isolateDeposed(node: SimNode): void {
    if (this.#stopped || !this.#faults.includes("partition")) return;
    const term = node.raft?.status().term ?? 0;
    const deposed = this.#nodes.find((other) => {
      const status = other.available ? other.raft?.status() : undefined;
      return other !== node && status?.role === "leader" && status.term < term;
    });
    if (deposed === undefined) return;
    if (!this.#random.chance(isolateDeposedProbability)) return;
    this.#trace?.(`fault isolate deposed leader ${deposed.id}`);
    this.#register("partition", this.#partition(true, deposed));
  }

  /**
   * A leader advanced its commit index for the first time in its term. The
   * trap springs at that instant, before the runner's ready loop sends
   * anything more: a leader that stays leader sends before its own write,
   * so a later fault would miss the window in which followers lack the
   * entries after the one just committed.
   */
  leaderFirstCommit(node: SimNode): void {
    this.#spring(node, "firstCommit", 0);
  }

  /**
   * A node started campaigning: during a stale-leader fault that cut the
   * leader from one follower, the challenger is here, so the leader is cut
   * from everyone (it must not learn of the new term) and the probe starts.
   */
  campaigned(node: SimNode): void {
    const trap = this.#staleTrap;
    if (this.#stopped || trap === null || node === trap.leader) return;
    if (node === trap.follower) trap.followerCampaigned = true;
    const escalate = trap.escalate;
    trap.escalate = null;
    escalate?.();
  }

  #spring(node: SimNode, moment: TrapMoment, delayMsMax: number): void {
    if (this.#stopped || this.#staleTrap !== null) return;
    const index = this.#traps.findIndex((trap) => trap.moment === moment);
    const trap = this.#traps[index];
    if (trap === undefined) return;
    this.#traps.splice(index, 1);
    this.#active.delete(trap.id);
    this.#queue.after(this.#random.between(0, delayMsMax), () => {
      if (this.#stopped || node.raft === null) return;
      const heal = this.#apply(trap.name, node);
      if (heal !== null) this.#register(trap.name, heal);
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
      case "skew":
        return random.between(300, 1500);
      case "stale-leader":
        return random.between(500, 1500);
      default:
        return random.between(100, 800);
    }
  }

  /** Applies a fault; returns how to heal it, or null when it does not apply now. */
  #apply(name: FaultName, target: SimNode | null): (() => void) | null {
    const random = this.#random;
    const network = this.#network;
    switch (name) {
      case "crash":
      case "pause":
        return this.#stopNode(name, target);
      case "corrupt-tail":
        return this.#corruptTail();
      case "partition":
      case "asymmetric":
        return this.#partition(name === "partition", target);
      case "swizzle":
        return this.#swizzle();
      case "skew":
        return this.#skew();
      case "stale-leader":
        return this.#staleLeader();
      case "learner":
      case "promote":
      case "remove":
      case "replace":
      case "transfer":
      case "snapshot":
      case "stall":
      case "zombie":
        return null;
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

  #stopNode(
    kind: "crash" | "pause",
    target: SimNode | null,
  ): (() => void) | null {
    const available = this.#cluster.members().filter((node) => node.available);
    if (available.length <= 1) return null;
    const node = target !== null && target.available
      ? target
      : this.#target(available);
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

  /**
   * Crashes a node whose durable log runs past its durable commit index (it
   * may have acknowledged that tail); at restart the tail fails its checksum.
   */
  #corruptTail(): (() => void) | null {
    const members = this.#cluster.members();
    const available = members.filter((node) => node.available);
    if (available.length <= 1) return null;
    // A recovering node votes only for logs past its lost tail: one at a
    // time, so another node's tail is never lost before that is settled.
    if (members.some((node) => node.recovering)) return null;
    const withTail = available.filter((node) =>
      node.durableOffset + node.durableEntries.length >
        node.durableHardState.commit
    );
    const node = this.#target(withTail.length > 0 ? withTail : available);
    if (node === null) return null;
    this.#trace?.(`fault corrupt-tail ${node.id}`);
    node.crash();
    const count = this.#random.between(1, 8);
    return () => {
      const lost = node.corruptTail(
        count,
        (index, term) =>
          this.#cluster.members().some((other) =>
            other !== node && other.durableTermAt(index) === term &&
            (other.raft?.status().conf.voters ?? []).some((id) =>
              id === other.id
            )
          ),
      );
      this.#trace?.(`heal restart ${node.id} lost ${lost} tail entries`);
      node.start();
    };
  }

  #split(target: SimNode | null): [SimNode[], SimNode[]] {
    const shuffled = this.#random.shuffle(this.#cluster.members());
    if (target !== null && !shuffled.includes(target)) shuffled.push(target);
    const leader = target ?? this.#target(shuffled);
    if (leader !== null) {
      shuffled.splice(shuffled.indexOf(leader), 1);
      shuffled.unshift(leader);
    }
    // A targeted node (a fresh leader) is cut off alone.
    const size = target !== null
      ? 1
      : this.#random.between(1, shuffled.length - 1);
    return [shuffled.slice(0, size), shuffled.slice(size)];
  }

  #partition(symmetric: boolean, target: SimNode | null): () => void {
    const [side, rest] = this.#split(target);
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
    const members = this.#cluster.members();
    const order = random.shuffle(members).slice(
      0,
      random.between(1, Math.max(1, members.length)),
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

  /**
   * One node's clock (and tick timer) runs fast or slow for a while: at
   * most the drift bound in lease seeds, beyond it in safe-read seeds.
   */
  #skew(): (() => void) | null {
    const members = this.#cluster.members();
    if (members.length === 0) return null;
    const node = this.#random.pick(members);
    const percentMax = this.#cluster.readOnly === "lease"
      ? Math.floor(this.#cluster.clockDrift * 100)
      : skewPercentMaxSafe;
    const percent = this.#random.between(Math.min(5, percentMax), percentMax) *
      (this.#random.chance(0.5) ? 1 : -1);
    const tickMs = this.#cluster.tickMs;
    // A clock `percent` fast ticks at rate 1 + percent/100.
    const period = (tickMs * 100) / (100 + percent);
    node.tickPeriodMs = period;
    this.#trace?.(
      `fault skew ${node.id} ${percent > 0 ? "fast" : "slow"} ${
        Math.abs(percent)
      }%`,
    );
    return () => {
      this.#trace?.(`heal skew ${node.id}`);
      // A stale-leader fault may have slowed the clock since: it restores it.
      if (node.tickPeriodMs === period) node.tickPeriodMs = tickMs;
    };
  }

  /**
   * Cuts the current leader off while clients keep reading from it and write
   * through whoever the rest elect: a leader that answers a read without
   * confirming it still leads then answers with stale data.
   *
   * In safe-read seeds the leader is cut from every peer at once and its
   * clock slowed several times (clock rates do not matter to safe reads), so
   * it believes it leads for many of the others' election timeouts. In lease
   * seeds it usually loses only one follower F first, and keeps its lease
   * through the others while F campaigns; the moment anyone campaigns it is
   * cut from all of them. Voters that grant F their vote while they still
   * hear from the leader let F win and commit while the lease is still
   * served. Lease seeds never skew the clock here. Regular clients cannot
   * reach the leader meanwhile, so its log does not grow past F's.
   */
  #staleLeader(): (() => void) | null {
    const leader = this.#leader();
    const status = leader?.raft?.status();
    if (leader === null || status === undefined) return null;
    // Only a leader that serves reads: an entry of its term is committed.
    if (leader.termAt(status.commit) !== status.term) return null;
    const random = this.#random;
    const lease = this.#cluster.readOnly === "lease";
    const key = `k${random.nextInt(this.#cluster.keys)}`;
    const writes = random.between(1, 3);
    const conf = status.conf;
    const caughtUp = conf.votersOutgoing.length > 0 || conf.voters.length < 3
      ? []
      : this.#nodes.filter((node) => {
        const other = node.available ? node.raft?.status() : undefined;
        return node !== leader && conf.voters.includes(node.id as NodeId) &&
          other?.term === status.term && other.lastIndex === status.lastIndex;
      });
    const split = lease && caughtUp.length > 0 &&
      random.chance(staleSplitProbability);
    const follower = split ? random.pick(caughtUp) : null;
    const tickMs = this.#cluster.tickMs;
    const slowdown = lease ? 1 : random.between(2, staleSlowdownMax);
    // Lease seeds: the leader's clock at the slow edge of the drift bound,
    // everyone else's at the fast edge, the worst skew the lease allows.
    const skewed: [SimNode, number][] = [];
    if (lease && random.chance(staleSkewProbability)) {
      const drift = this.#cluster.clockDrift;
      for (const node of this.#nodes) {
        const period = node === leader
          ? tickMs / (1 - drift)
          : tickMs / (1 + drift);
        node.tickPeriodMs = period;
        skewed.push([node, period]);
      }
      this.#trace?.(
        `fault stale-leader skew ${leader.id} ${drift * 100}% slow, others ${
          drift * 100
        }% fast`,
      );
    }
    const links: [string, string][] = [];
    const cut = (other: SimNode) => {
      for (const link of [[leader.id, other.id], [other.id, leader.id]]) {
        const [from, to] = link as [string, string];
        this.#network.cut(from, to);
        links.push([from, to]);
      }
    };
    const unblock = this.#clients.block(leader);
    let stopProbe: (() => void) | null = null;
    const isolate = () => {
      for (const other of this.#nodes) {
        if (other !== leader && other !== follower) cut(other);
      }
      if (slowdown > 1) leader.tickPeriodMs = tickMs * slowdown;
      stopProbe = this.#clients.probeStaleLeader(leader, key, writes);
      if (skewed.length > 0) poke();
    };
    // With skewed clocks, the follower cut off first (its election timer ran
    // out, it campaigned: that is what isolates the leader) campaigns again
    // and again: a voter grants it the first request after its vote guard
    // ends, the earliest a new leader can exist, and a lease longer than the
    // bound allows is then still served after that leader committed. Only
    // that follower, and only until a new leader exists: a node that hears
    // from a leader must not campaign before its own timer runs out, which
    // the lease relies on as much as on the voters' guards.
    let poking = true;
    const poke = () => {
      if (!poking || this.#stopped || follower === null) return;
      const term = status.term;
      const newLeader = this.#nodes.some((node) => {
        const other = node.raft?.status();
        return node !== leader && other?.role === "leader" && other.term > term;
      });
      if (newLeader) return;
      if (trap.followerCampaigned) follower.campaign();
      this.#queue.after(random.between(2, 6), poke);
    };
    const trap: StaleTrap = {
      leader,
      follower,
      followerCampaigned: false,
      escalate: null,
    };
    this.#staleTrap = trap;
    if (follower !== null) {
      cut(follower);
      trap.escalate = () => {
        this.#trace?.(`fault stale-leader isolate ${leader.id} (campaign)`);
        isolate();
      };
      this.#trace?.(
        `fault stale-leader ${leader.id} | ${follower.id}, probing ${key}`,
      );
    } else {
      this.#trace?.(
        `fault stale-leader isolate ${leader.id}${
          slowdown > 1 ? ` clock ${slowdown}x slow` : ""
        }, probing ${key}`,
      );
      isolate();
    }
    return () => {
      this.#trace?.(`heal stale-leader ${leader.id}`);
      if (this.#staleTrap === trap) this.#staleTrap = null;
      trap.escalate = null;
      for (const [from, to] of links) this.#network.cut(from, to, -1);
      if (slowdown > 1) leader.tickPeriodMs = tickMs;
      poking = false;
      for (const [node, period] of skewed) {
        if (node.tickPeriodMs === period) node.tickPeriodMs = tickMs;
      }
      unblock();
      (stopProbe as (() => void) | null)?.();
    };
  }

  /** The available leader of the highest term, if any. */
  #leader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const node of this.#nodes) {
      const status = node.available ? node.raft?.status() : undefined;
      if (status?.role === "leader" && status.term > bestTerm) {
        best = node;
        bestTerm = status.term;
      }
    }
    return best;
  }

  /** Membership changes, transfers and snapshots; returns whether it acted. */
  #oneShot(name: FaultName): boolean {
    if (name === "snapshot") return this.#snapshot();
    if (name === "stall") return this.#stall();
    if (name === "zombie") return this.#zombie();

    // Membership changes while a node recovers a lost tail could remove the
    // only voters whose logs it may vote for (see `#corruptTail`).
    if (
      name !== "transfer" &&
      this.#cluster.members().some((node) => node.recovering)
    ) return false;
    const leader = this.#leader();
    const status = leader?.raft?.status();
    if (leader === null || status === undefined) return false;
    const conf = status.conf;
    const random = this.#random;
    const others = conf.voters.filter((id) => id !== leader.id);
    const freeSpare = () =>
      this.#cluster.spares.find((id) => !this.#usedSpares.has(id));
    if (name === "transfer") {
      if (others.length === 0) return false;
      return this.#tryChange(leader, name, () => {
        const target = random.pick(others);
        this.#trace?.(`fault transfer ${leader.id} -> ${target}`);
        leader.transferLeader(target);
      });
    }
    let change: ConfChange | null = null;
    switch (name) {
      case "learner": {
        const spare = freeSpare();
        if (spare === undefined) return false;
        this.#usedSpares.add(spare);
        change = { type: "addLearner", node: spare as NodeId };
        break;
      }
      case "promote":
        if (conf.learners.length === 0) return false;
        change = { type: "promote", node: random.pick(conf.learners) };
        break;
      case "remove": {
        // Shrinking below the founding size is allowed now and then: a
        // smaller cluster for the rest of the run hides most election bugs.
        if (conf.voters.length <= this.#cluster.votersMin) return false;
        if (
          conf.voters.length <= this.#cluster.votersMin + 1 &&
          !random.chance(shrinkProbability)
        ) return false;
        const node = others.length === 0 || random.chance(0.5)
          ? leader.id as NodeId
          : random.pick(others);
        change = { type: "remove", node };
        break;
      }
      case "replace": {
        // The leader swapped for a learner (or a fresh spare): two voters change.
        const incoming = conf.learners.length > 0
          ? random.pick(conf.learners)
          : freeSpare() as NodeId | undefined;
        if (incoming === undefined) return false;
        this.#usedSpares.add(incoming);
        change = { type: "replaceVoters", voters: [...others, incoming] };
        break;
      }
      default:
        return false;
    }
    const proposed = change;
    return this.#tryChange(leader, name, () => {
      this.#trace?.(
        `fault ${name} on ${leader.id}: ${JSON.stringify(proposed)}`,
      );
      leader.proposeConfChange(proposed);
    });
  }

  /** Runs a leader call the core may refuse; a refusal is traced, not a fault. */
  #tryChange(leader: SimNode, name: FaultName, call: () => void): boolean {
    try {
      call();
      return true;
    } catch (error) {
      if (
        !(error instanceof ConfChangeError) &&
        !(error instanceof ProposalDroppedError)
      ) {
        throw error;
      }
      this.#trace?.(`fault ${name} refused by ${leader.id}: ${error.message}`);
      return false;
    }
  }

  /**
   * A node's event loop stops for a while (a long GC, a snapshot built on
   * the main thread, VM steal) without the nemesis pausing it: the ticks due
   * meanwhile are lost and client requests queue at it.
   */
  #stall(): boolean {
    const available = this.#cluster.members().filter((node) => node.available);
    const node = this.#target(available);
    if (node === null) return false;
    const ms = this.#random.between(10, stallMsMax);
    if (!node.stall(ms)) return false;
    this.#trace?.(`fault stall ${node.id} ${ms}ms`);
    return true;
  }

  /**
   * A removed node keeps sending Raft traffic (a compromised or buggy peer
   * whose credentials are still valid): to every member that knows its
   * membership, an append at a higher term that claims the member's whole
   * log is committed. A core that accepts traffic from removed nodes lets it
   * depose the leader and commit entries no quorum holds.
   */
  #zombie(): boolean {
    const members = this.#cluster.members();
    const zombie = this.#nodes.find((node) => {
      const status = node.available ? node.raft?.status() : undefined;
      return status !== undefined && status.term > 0 &&
        !members.includes(node);
    });
    if (zombie === undefined) return false;
    let sent = 0;
    for (const member of members) {
      const status = member.available ? member.raft?.status() : undefined;
      if (status === undefined) continue;
      const id = member.id as NodeId;
      // Only members that know the zombie was removed (its removal is
      // committed there): a member that does not know yet, or one still
      // learning its own membership, accepts it (documented limitation).
      if (member.raft?.isRemoved(zombie.id as NodeId) !== true) continue;
      const logTerm = member.termAt(status.lastIndex);
      // At its snapshot's index the member's log term is not at hand: skip it.
      if (logTerm === undefined || logTerm < 0) continue;
      const message: Message = {
        type: "app",
        from: zombie.id as NodeId,
        to: id,
        term: (status.term + 1) as Term,
        logTerm,
        index: status.lastIndex as LogIndex,
        entries: [],
        commit: status.lastIndex as LogIndex,
      };
      this.#network.send(message);
      sent++;
    }
    if (sent === 0) return false;
    this.#trace?.(`fault zombie ${zombie.id} appends to ${sent} members`);
    return true;
  }

  /** Forces a snapshot and log compaction on a node (the leader half the time). */
  #snapshot(): boolean {
    const members = this.#cluster.members().filter((node) => node.available);
    if (members.length === 0) return false;
    const leader = this.#leader();
    const node = leader !== null && this.#random.chance(0.5)
      ? leader
      : this.#random.pick(members);
    const index = node.compact();
    if (index === null) return false;
    this.#trace?.(`fault snapshot ${node.id} at ${index}`);
    return true;
  }
}
