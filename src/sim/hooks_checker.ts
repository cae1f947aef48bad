/**
 * The properties of webhook delivery (`--services hooks`, issue 17),
 * checked per hook at the end of a seed against the reference history and
 * the hook's state on the leader:
 *
 * - every matching committed event from the hook's start arrived at the
 *   receiver at least once (events a `hook.gap` of this hook covers are
 *   excused: compaction passed them);
 * - first arrivals come in non-decreasing `(revision, index)` order;
 * - every arrival `(event, attempt)` has a delivery record, and no
 *   `(event, attempt)` has two finished records (an attempt begun and never
 *   finished may add an `unknown` record beside them);
 * - every finished record matches an arrival (a finish follows a send);
 * - the hook's cursor is at or past the event of every `ok` record (an ok
 *   finish moves it in its own entry, and nothing moves it back).
 *
 * @module
 */
import {
  type DeliveryRecord,
  eventId,
  type HistoryEvent,
  type HookRecord,
  parseEventId,
} from "../services/events/api.ts";
import type { Arrival } from "./hooks_workers.ts";

/** Everything known about one hook at the end of a seed. */
export interface HookEnd {
  /** Its record on the leader. */
  readonly hook: HookRecord;
  /** Its delivery log on the leader, oldest first. */
  readonly deliveries: readonly DeliveryRecord[];
  /** The revision it started from. */
  readonly fromRevision: number;
  /** Every committed event up to the end that goes to it, in order. */
  readonly events: readonly HistoryEvent[];
  /** What reached the receiver for it, in arrival order. */
  readonly arrivals: readonly Arrival[];
  /**
   * Whether the workers caught up (false: the run failed liveness; the
   * other properties are still checked, every event arriving is not).
   */
  readonly caughtUp: boolean;
}

/** Whether `cursor` is at or past event `id` (nothing up to it left to deliver). */
function covers(cursor: HookRecord["cursor"], id: string): boolean {
  const at = parseEventId(id)!;
  if (cursor.i < 0) return at.revision < cursor.r;
  return at.revision < cursor.r ||
    (at.revision === cursor.r && at.index <= cursor.i);
}

function compareIds(a: string, b: string): number {
  const left = parseEventId(a)!;
  const right = parseEventId(b)!;
  return left.revision - right.revision || left.index - right.index;
}

/** Revisions covered by the hook's own `hook.gap` events. */
function gaps(events: readonly HistoryEvent[]): [number, number][] {
  return events.filter((event) => event.type === "hook.gap").map((event) => [
    Number(event.data?.fromRevision),
    Number(event.data?.toRevision),
  ]);
}

/**
 * Checks one hook's deliveries.
 *
 * @returns The first problem, or null.
 */
export function checkHook(end: HookEnd): string | null {
  const name = end.hook.name;
  if (end.hook.logFirst !== 0) {
    return `hook ${name}: its delivery log was trimmed (first ${end.hook.logFirst}), beyond what the checker reads`;
  }
  for (const record of end.deliveries) {
    if (record.outcome !== "ok" || record.replay) continue;
    if (!covers(end.hook.cursor, record.eventId)) {
      return `hook ${name}: its cursor ${
        JSON.stringify(end.hook.cursor)
      } is behind event ${record.eventId}, delivered ok by ${record.worker}`;
    }
  }
  const arrived = new Map<string, number>();
  const firsts: string[] = [];
  for (const arrival of end.arrivals) {
    if (!arrived.has(arrival.event)) firsts.push(arrival.event);
    const key = `${arrival.event}#${arrival.attempt}`;
    arrived.set(arrival.event, (arrived.get(arrival.event) ?? 0) + 1);
    arrived.set(key, (arrived.get(key) ?? 0) + 1);
  }
  const excused = gaps(end.events);
  for (const event of end.caughtUp ? end.events : []) {
    const revision = Number(event.revision);
    if (revision < end.fromRevision) continue;
    if (excused.some(([from, to]) => revision >= from && revision <= to)) {
      continue;
    }
    if (!arrived.has(eventId(event))) {
      return `hook ${name}: event ${
        eventId(event)
      } (${event.type}) never arrived (cursor ${
        JSON.stringify(end.hook.cursor)
      }, ${end.arrivals.length} arrivals)`;
    }
  }
  for (let i = 1; i < firsts.length; i++) {
    if (compareIds(firsts[i - 1]!, firsts[i]!) > 0) {
      return `hook ${name}: event ${firsts[i]} first arrived after event ${
        firsts[i - 1]
      }`;
    }
  }
  const recorded = new Map<string, DeliveryRecord[]>();
  for (const record of end.deliveries) {
    const key = `${record.eventId}#${record.attempt}`;
    recorded.set(key, [...(recorded.get(key) ?? []), record]);
  }
  for (const arrival of end.arrivals) {
    const key = `${arrival.event}#${arrival.attempt}`;
    if (!recorded.has(key)) {
      return `hook ${name}: attempt ${arrival.attempt} of event ${arrival.event} arrived (from ${arrival.worker} at ${arrival.atMs} ms) and has no delivery record`;
    }
  }
  for (const [key, records] of recorded) {
    const finished = records.filter((record) => record.outcome !== "unknown");
    if (finished.length > 1) {
      return `hook ${name}: attempt ${key} has ${finished.length} finished delivery records (${
        finished.map((r) => `${r.outcome} by ${r.worker}`).join(", ")
      }); it arrived ${arrived.get(key) ?? 0} times`;
    }
    if (finished.length === 1 && !arrived.has(key)) {
      return `hook ${name}: attempt ${key} has a ${
        finished[0]!.outcome
      } delivery record and never arrived`;
    }
  }
  return null;
}
