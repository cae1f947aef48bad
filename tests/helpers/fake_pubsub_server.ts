/**
 * A small in-memory server speaking the pub/sub protocol of
 * `src/protocol/http_api_pubsub.ts` (topics, publish, groups with
 * generations and fencing, fetch, ack, the SSE push stream) and the lease
 * routes a consumer uses (grant, keepalive, revoke), with typed error
 * bodies and a bearer check, on 127.0.0.1. For the client tests of what a
 * real cluster makes hard to force (a rebalance between a fetch and its
 * ack, a fenced push stream); the real service is tested elsewhere.
 *
 * Simplifications: partitions are assigned to the members sorted by id, p
 * mod n (not rendezvous hashing); a keyed message goes to the sum of its
 * key's bytes mod P; deadlines never expire; dedup and delays are not
 * modelled (a `producerId` is recorded, nothing more).
 *
 * @module
 */
import { ERROR_STATUS, type ErrorCode } from "../../src/protocol/http_api.ts";
import type {
  StaleGenerationDetails,
  WireDelivery,
  WireGroupOptions,
  WireMessageValue,
  WirePublishMessage,
  WireTopic,
} from "../../src/protocol/http_api_pubsub.ts";

/** One request as the server saw it. */
export interface SeenRequest {
  readonly path: string;
  readonly body: Record<string, unknown>;
}

interface StoredRecord {
  readonly key: string | null;
  readonly value: WireMessageValue;
  readonly headers: Record<string, string>;
  readonly publishedAtMs: number;
}

interface Topic {
  readonly settings: WireTopic;
  readonly partitions: StoredRecord[][];
  roundRobin: number;
}

interface InFlight {
  delivery: number;
  availableAtMs: number | null;
}

interface Group {
  readonly topic: string;
  readonly name: string;
  readonly options: WireGroupOptions | null;
  generation: number;
  /** Member id → lease id. */
  readonly members: Map<string, string>;
  owners: (string | null)[];
  ownerSince: number[];
  nextDeliver: number[];
  /** `p/offset` → the delivery in flight. */
  readonly inFlight: Map<string, InFlight>;
  paused: boolean;
  acked: Set<string>;
}

/** A running fake. */
export interface FakePubsubServer {
  readonly url: string;
  /** Every request, in arrival order. */
  readonly requests: readonly SeenRequest[];
  /** Live lease ids. */
  leases(): string[];
  /** Ends a lease as its expiry would (keep-alives then answer `leaseNotFound`). */
  expireLease(id: string): void;
  /** Adds a member to a group as another client would (a rebalance). */
  addMember(topic: string, group: string, memberId: string): void;
  /** Removes a member as its lease's expiry would. */
  removeMember(topic: string, group: string, memberId: string): void;
  /** Keys `p/offset` acked in a group. */
  acked(topic: string, group: string): string[];
  /** Open push streams. */
  streams(): number;
  close(): Promise<void>;
}

class Refusal extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

function refuse(
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
): never {
  throw new Refusal(code, message, details);
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The fake's state and route handlers. */
class State {
  readonly topics = new Map<string, Topic>();
  readonly groups = new Map<string, Group>();
  readonly leaseTtl = new Map<string, number>();

  group(topic: string, name: string): Group {
    const group = this.groups.get(`${topic}/${name}`);
    if (group === undefined) {
      refuse("groupNotFound", `No group '${name}' on topic '${topic}'`);
    }
    return group;
  }

  topic(name: string): Topic {
    const topic = this.topics.get(name);
    if (topic === undefined) refuse("topicNotFound", `No topic '${name}'`);
    return topic;
  }

  rebalance(group: Group): void {
    group.generation++;
    const members = [...group.members.keys()].sort();
    group.owners = group.owners.map((before, p) => {
      const owner = members.length === 0 ? null : members[p % members.length]!;
      if (owner !== before) {
        group.ownerSince[p] = group.generation;
        // The moved partition's deliveries are available again at once.
        for (const [key, flight] of group.inFlight) {
          if (key.startsWith(`${p}/`)) flight.availableAtMs = 0;
        }
      }
      return owner;
    });
  }

  stale(group: Group): never {
    const assignment: Record<string, string> = {};
    group.owners.forEach((owner, p) => {
      if (owner !== null) assignment[String(p)] = owner;
    });
    const details: StaleGenerationDetails = {
      generation: group.generation,
      assignment,
    };
    refuse("staleGeneration", "Stale generation", { ...details });
  }

  /** Fences a member on `partitions` (all it owns when null). */
  fence(
    group: Group,
    memberId: string,
    generation: number,
    partitions: readonly number[] | null,
  ): void {
    if (!group.members.has(memberId)) this.stale(group);
    const named = partitions ??
      group.owners.flatMap((o, p) => o === memberId ? [p] : []);
    for (const p of named) {
      if (
        group.owners[p] !== memberId || generation < group.ownerSince[p]!
      ) this.stale(group);
    }
  }

  publish(body: Record<string, unknown>): unknown {
    const topic = this.topic(body.topic as string);
    const now = Date.now();
    const records = (body.messages as WirePublishMessage[]).map((m) => {
      const count = topic.partitions.length;
      const partition = m.partition ??
        (m.key === undefined
          ? topic.roundRobin++ % count
          : [...new TextEncoder().encode(m.key)].reduce((a, b) => a + b, 0) %
            count);
      const list = topic.partitions[partition]!;
      list.push({
        key: m.key ?? null,
        value: m.value,
        headers: { ...(m.headers ?? {}) },
        publishedAtMs: now,
      });
      return { partition, offset: list.length - 1, duplicate: false };
    });
    return { records };
  }

  join(body: Record<string, unknown>): unknown {
    const topic = this.topic(body.topic as string);
    if (!this.leaseTtl.has(body.lease as string)) {
      refuse("leaseNotFound", `lease ${body.lease} not found`);
    }
    const key = `${body.topic}/${body.group}`;
    const options = (body.options ?? null) as WireGroupOptions | null;
    let group = this.groups.get(key);
    if (group === undefined) {
      const count = topic.partitions.length;
      group = {
        topic: body.topic as string,
        name: body.group as string,
        options,
        generation: 0,
        members: new Map(),
        owners: new Array(count).fill(null),
        ownerSince: new Array(count).fill(0),
        nextDeliver: new Array(count).fill(0),
        inFlight: new Map(),
        paused: false,
        acked: new Set(),
      };
      this.groups.set(key, group);
    } else if (
      options !== null &&
      JSON.stringify(options) !== JSON.stringify(group.options)
    ) {
      refuse("groupConfigMismatch", "Options differ from the group's");
    }
    const memberId = (body.memberId as string | undefined) ?? randomHex(8);
    if (group.members.get(memberId) !== body.lease) {
      group.members.set(memberId, body.lease as string);
      this.rebalance(group);
    }
    return {
      memberId,
      generation: group.generation,
      partitions: group.owners.flatMap((o, p) => o === memberId ? [p] : []),
    };
  }

  /** Up to `batch` deliveries of the member's partitions. */
  deliver(group: Group, memberId: string, batch: number): WireDelivery[] {
    if (group.paused) return [];
    const topic = this.topic(group.topic);
    const max = group.options?.maxAckPending ?? 1000;
    const out: WireDelivery[] = [];
    const now = Date.now();
    group.owners.forEach((owner, p) => {
      if (owner !== memberId) return;
      const send = (offset: number, flight: InFlight) => {
        const record = topic.partitions[p]![offset]!;
        flight.delivery++;
        flight.availableAtMs = null;
        out.push({
          partition: p,
          offset,
          key: record.key,
          value: record.value,
          headers: record.headers,
          publishedAtMs: record.publishedAtMs,
          delivery: flight.delivery,
          deadlineMs: now + 30_000,
        });
      };
      for (const [key, flight] of group.inFlight) {
        if (out.length >= batch) return;
        const [kp, ko] = key.split("/").map(Number);
        if (kp !== p || flight.availableAtMs === null) continue;
        if (flight.availableAtMs <= now) send(ko!, flight);
      }
      const pending = () =>
        [...group.inFlight.keys()].filter((k) => k.startsWith(`${p}/`)).length;
      while (
        out.length < batch &&
        group.nextDeliver[p]! < topic.partitions[p]!.length &&
        pending() < max
      ) {
        const offset = group.nextDeliver[p]!++;
        const flight = { delivery: 0, availableAtMs: null };
        group.inFlight.set(`${p}/${offset}`, flight);
        send(offset, flight);
      }
    });
    return out;
  }

  describe(group: Group): unknown {
    const records = this.topic(group.topic).partitions;
    return {
      topic: group.topic,
      group: group.name,
      generation: group.generation,
      paused: group.paused,
      pausedUntilMs: null,
      options: group.options ?? {},
      members: [...group.members].map(([id, lease]) => ({
        id,
        lease,
        partitions: group.owners.flatMap((o, p) => o === id ? [p] : []),
      })),
      partitions: group.owners.map((owner, partition) => {
        const pending = [...group.inFlight.keys()].filter((k) =>
          k.startsWith(`${partition}/`)
        ).map((k) => Number(k.split("/")[1]));
        const cursor = Math.min(group.nextDeliver[partition]!, ...pending);
        const nextOffset = records[partition]!.length;
        return {
          partition,
          owner,
          ownerSince: group.ownerSince[partition]!,
          cursor,
          nextOffset,
          lag: nextOffset - cursor,
          pending: pending.length,
          redelivered: 0,
          skipped: 0,
        };
      }),
      deadLettered: 0,
    };
  }

  ack(body: Record<string, unknown>): unknown {
    const group = this.group(body.topic as string, body.group as string);
    const acks = body.acks as {
      partition: number;
      offset: number;
      action: string;
      delayMs?: number;
    }[];
    this.fence(
      group,
      body.memberId as string,
      body.generation as number,
      acks.map((a) => a.partition),
    );
    const results = acks.map(({ partition, offset, action, delayMs }) => {
      const key = `${partition}/${offset}`;
      const flight = group.inFlight.get(key);
      if (flight === undefined) {
        return { partition, offset, ok: false, reason: "finished" };
      }
      if (action === "ack" || action === "terminate") {
        group.inFlight.delete(key);
        group.acked.add(key);
      } else if (action === "nack") {
        flight.availableAtMs = Date.now() + (delayMs ?? 0);
      }
      return { partition, offset, ok: true };
    });
    return { results };
  }

  route(path: string, body: Record<string, unknown>): unknown {
    switch (path) {
      case "/v1/leases/grant": {
        const id = randomHex(8);
        this.leaseTtl.set(id, body.ttlMs as number);
        return { id, ttlMs: body.ttlMs };
      }
      case "/v1/leases/keepalive":
        return {
          leases: (body.ids as string[]).map((id) => {
            const ttlMs = this.leaseTtl.get(id);
            return ttlMs === undefined
              ? { id, error: "leaseNotFound" }
              : { id, ttlMs, remainingMs: ttlMs };
          }),
        };
      case "/v1/leases/revoke":
        if (!this.leaseTtl.delete(body.id as string)) {
          refuse("leaseNotFound", `lease ${body.id} not found`);
        }
        return { keysDeleted: 0 };
      case "/v1/topics/create": {
        const name = body.name as string;
        const settings: WireTopic = {
          name,
          partitions: (body.partitions as number | undefined) ?? 1,
          retention: (body.retention as WireTopic["retention"]) ?? {},
          dedupWindowMs: (body.dedupWindowMs as number | undefined) ?? 120_000,
          createdAtMs: Date.now(),
        };
        const existing = this.topics.get(name);
        if (existing !== undefined) {
          if (existing.settings.partitions !== settings.partitions) {
            refuse("topicExists", `Topic '${name}' exists with other settings`);
          }
          return { topic: existing.settings, created: false };
        }
        this.topics.set(name, {
          settings,
          partitions: Array.from({ length: settings.partitions }, () => []),
          roundRobin: 0,
        });
        return { topic: settings, created: true };
      }
      case "/v1/topics/list":
        return { topics: [...this.topics.values()].map((t) => t.settings) };
      case "/v1/topics/describe": {
        const topic = this.topic(body.name as string);
        return {
          ...topic.settings,
          partitions: topic.partitions.map((records, partition) => ({
            partition,
            firstOffset: 0,
            nextOffset: records.length,
            bytes: 0,
          })),
          groups: [...this.groups.values()].filter((g) => g.topic === body.name)
            .map((g) => g.name),
          scheduled: 0,
        };
      }
      case "/v1/topics/delete": {
        this.topic(body.name as string);
        const groups = [...this.groups.values()].filter((g) =>
          g.topic === body.name
        );
        if (groups.length > 0 && body.force !== true) {
          refuse("topicInUse", `Topic '${body.name}' has groups`);
        }
        for (const g of groups) this.groups.delete(`${g.topic}/${g.name}`);
        this.topics.delete(body.name as string);
        return { deleted: true };
      }
      case "/v1/topics/publish":
        return this.publish(body);
      case "/v1/groups/join":
        return this.join(body);
      case "/v1/groups/leave": {
        const group = this.group(body.topic as string, body.group as string);
        const left = group.members.delete(body.memberId as string);
        if (left) this.rebalance(group);
        return { generation: group.generation, left };
      }
      case "/v1/groups/fetch": {
        const group = this.group(body.topic as string, body.group as string);
        this.fence(
          group,
          body.memberId as string,
          body.generation as number,
          null,
        );
        return {
          generation: group.generation,
          messages: this.deliver(
            group,
            body.memberId as string,
            (body.batch as number | undefined) ?? 100,
          ),
        };
      }
      case "/v1/groups/ack":
        return this.ack(body);
      case "/v1/groups/list":
        return {
          groups: [...this.groups.values()].filter((g) =>
            body.topic === undefined || g.topic === body.topic
          ).map((g) => ({
            topic: g.topic,
            group: g.name,
            generation: g.generation,
            members: g.members.size,
            paused: g.paused,
          })),
        };
      case "/v1/groups/describe":
        return this.describe(
          this.group(body.topic as string, body.group as string),
        );
      case "/v1/groups/reset": {
        const group = this.group(body.topic as string, body.group as string);
        if (group.members.size > 0 && body.force !== true) {
          refuse("groupNotEmpty", `Group '${group.name}' has members`);
        }
        const records = this.topic(group.topic).partitions;
        const to = body.to as string | { offset: number };
        group.nextDeliver = group.nextDeliver.map((_, p) =>
          to === "earliest"
            ? 0
            : to === "latest"
            ? records[p]!.length
            : Math.min((to as { offset: number }).offset, records[p]!.length)
        );
        group.inFlight.clear();
        if (body.force === true) group.generation++;
        return {
          generation: group.generation,
          partitions: group.nextDeliver.map((cursor, partition) => ({
            partition,
            cursor,
          })),
        };
      }
      case "/v1/groups/pause":
      case "/v1/groups/resume": {
        const group = this.group(body.topic as string, body.group as string);
        group.paused = path.endsWith("pause");
        return { paused: group.paused, pausedUntilMs: null };
      }
      default:
        refuse("notFound", `Unknown route ${path}`);
    }
  }
}

function errorResponse(error: Refusal): Response {
  return Response.json({
    error: { code: error.code, message: error.message, details: error.details },
  }, { status: ERROR_STATUS[error.code] });
}

/** Starts the fake on 127.0.0.1:0. */
export function startFakePubsubServer(
  options: { readonly token?: string } = {},
): FakePubsubServer {
  const state = new State();
  const requests: SeenRequest[] = [];
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const encoder = new TextEncoder();
  const consume = (url: URL): Response => {
    const group = state.group(
      url.searchParams.get("topic")!,
      url.searchParams.get("group")!,
    );
    const memberId = url.searchParams.get("member")!;
    const generation = Number(url.searchParams.get("generation"));
    state.fence(group, memberId, generation, null);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let open: ReadableStreamDefaultController<Uint8Array> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        open = controller;
        streams.add(controller);
        const pump = () => {
          try {
            state.fence(group, memberId, generation, null);
            // A push stream ends at any rebalance (its generation is stale).
            if (generation < group.generation) state.stale(group);
          } catch (error) {
            const details = (error as Refusal).details;
            controller.enqueue(
              encoder.encode(
                `event: fenced\ndata: ${JSON.stringify(details)}\n\n`,
              ),
            );
            streams.delete(controller);
            controller.close();
            return;
          }
          for (const delivery of state.deliver(group, memberId, 10)) {
            controller.enqueue(
              encoder.encode(
                `event: message\ndata: ${JSON.stringify(delivery)}\n\n`,
              ),
            );
          }
          timer = setTimeout(pump, 20);
        };
        pump();
      },
      cancel() {
        clearTimeout(timer);
        if (open !== undefined) streams.delete(open);
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream" },
    });
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      try {
        if (
          options.token !== undefined &&
          request.headers.get("authorization") !== `Bearer ${options.token}`
        ) refuse("unauthorized", "Invalid bearer token");
        if (request.method === "GET" && url.pathname === "/v1/groups/consume") {
          requests.push({
            path: url.pathname,
            body: Object.fromEntries(url.searchParams),
          });
          return consume(url);
        }
        const body = await request.json() as Record<string, unknown>;
        requests.push({ path: url.pathname, body });
        return Response.json(state.route(url.pathname, body));
      } catch (error) {
        if (error instanceof Refusal) return errorResponse(error);
        throw error;
      }
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    leases: () => [...state.leaseTtl.keys()],
    expireLease: (id) => void state.leaseTtl.delete(id),
    addMember(topic, group, memberId) {
      const g = state.group(topic, group);
      g.members.set(memberId, "ffffffffffffffff");
      state.rebalance(g);
    },
    removeMember(topic, group, memberId) {
      const g = state.group(topic, group);
      if (g.members.delete(memberId)) state.rebalance(g);
    },
    acked: (topic, group) => [...state.group(topic, group).acked].sort(),
    streams: () => streams.size,
    async close() {
      for (const controller of streams) {
        try {
          controller.close();
        } catch {
          // Closed by its reader already.
        }
      }
      await server.shutdown();
    },
  };
}
