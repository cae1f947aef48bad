/**
 * The service table: the one place that registers services with the state
 * host. One line per service: its envelope id (never reused) and its
 * registration (name, codec, apply, keyspaces, snapshot section; see
 * `state/registry.ts`). A new service is a folder under `src/services/`
 * plus one line here.
 *
 * | id | service   | keyspace                        | metadata    |
 * | -- | --------- | ------------------------------- | ----------- |
 * | —  | (host)    | `ff 73` exactly-once sessions   |             |
 * | 1  | `cluster` | none                            | `cluster.*` |
 * | 2  | `kv`      | user keys `[00, ff)`, `ff 6b` (reaches `queues`, `leases`, `pubsub`, `events`: the atomic step) | |
 * | 3  | `queues`  | `ff 71` (message records `ff 71 6d` are change events) | |
 * | 4  | `leases`  | `ff 6c` (reaches `kv`, `locks`, `pubsub`: attached keys, holds, members) | |
 * | 5  | `locks`   | `ff 6d` (leader rows `ff 6d 65`, lease rows `ff 6d 69` are change events) | |
 * | 6  | `events`  | `ff 65` history records (it observes every entry's changes) | `events.*` |
 * | 7  | `pubsub`  | `ff 70` topics, records, groups (reaches `events`: `topic.gap`) | |
 *
 * @module
 */
import {
  type ServiceRegistration,
  ServiceRegistry,
} from "../state/registry.ts";
import type { SessionKnobs } from "../state/sessions.ts";
import type { StateStore } from "../state/state_store.ts";
import { clusterService, type ClusterState } from "./cluster/api.ts";
import { kvService } from "./kv/apply.ts";
import type { ResendKnobs } from "./kv/resends.ts";
import { queuesService } from "./queues/api.ts";
import {
  eventsService,
  type HookKnobs,
  hooksLeaseDependent,
} from "./events/api.ts";
import { type LeaseKnobs, leasesService } from "./leases/api.ts";
import {
  type LockKnobs,
  locksLeaseDependent,
  locksService,
} from "./locks/api.ts";
import {
  type PubsubKnobs,
  pubsubLeaseDependent,
  pubsubService,
} from "./pubsub/api.ts";

/** Testing knobs of the services: planted bugs of the simulator. */
export type ServiceKnobs =
  & SessionKnobs
  & ResendKnobs
  & LockKnobs
  & LeaseKnobs
  & HookKnobs
  & PubsubKnobs;

/** What a service's registration line may use. */
export interface ServiceParts {
  readonly store: StateStore;
  readonly cluster: ClusterState;
  readonly knobs: ServiceKnobs;
}

/** The envelope id of each built-in service. */
export const SERVICE_IDS = {
  cluster: 1,
  kv: 2,
  queues: 3,
  leases: 4,
  locks: 5,
  events: 6,
  pubsub: 7,
} as const;

/** The table. */
export function serviceTable(parts: ServiceParts): ServiceRegistration[] {
  return [
    { id: SERVICE_IDS.cluster, service: clusterService(parts.cluster) },
    { id: SERVICE_IDS.kv, service: kvService(parts.knobs) },
    { id: SERVICE_IDS.queues, service: queuesService() },
    {
      id: SERVICE_IDS.leases,
      service: leasesService([
        locksLeaseDependent(parts.knobs),
        hooksLeaseDependent(),
        pubsubLeaseDependent(parts.knobs),
      ]),
    },
    { id: SERVICE_IDS.locks, service: locksService(parts.knobs) },
    { id: SERVICE_IDS.events, service: eventsService(parts.knobs) },
    { id: SERVICE_IDS.pubsub, service: pubsubService(parts.knobs) },
  ];
}

/**
 * The registry of the table's services, plus `extra` registrations (tests
 * register example services this way). An extra registration with the
 * name or id of a table service replaces it (tests stand a fake in for a
 * real service).
 *
 * @throws {RangeError} For clashing ids, names or keyspaces.
 */
export function serviceRegistry(
  parts: ServiceParts,
  extra: readonly ServiceRegistration[] = [],
): ServiceRegistry {
  const replaced = (r: ServiceRegistration) =>
    extra.some((e) => e.id === r.id || e.service.name === r.service.name);
  return new ServiceRegistry([
    ...serviceTable(parts).filter((r) => !replaced(r)),
    ...extra,
  ]);
}
