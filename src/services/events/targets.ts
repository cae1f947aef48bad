/**
 * Where hook targets beyond webhooks and queues plug in (issue 17): a
 * `job {type, queue?}` hook hands each matching event to a {@linkcode
 * JobSink} (the jobs issue fills it: a job enqueued in the entry that moves
 * the cursor, as a queue hook does), a `forward {peer, prefix?}` hook to an
 * {@linkcode EventForwarder} (the federation issue's). Until a node is built
 * with one, creating such a hook is refused with 400 `unsupported` and
 * nothing changes.
 *
 * @module
 */
import type { ApplyContext } from "../../state/write_context.ts";
import type { HistoryEvent } from "./records.ts";

/** Turns events into jobs inside the entry that moves a hook's cursor. */
export interface JobSink {
  /** Stages one job per event of `type` (in `queue`, or the job type's default). */
  enqueue(
    context: ApplyContext,
    job: { readonly type: string; readonly queue?: string },
    events: readonly HistoryEvent[],
  ): void;
}

/** Sends events to a peer cluster (at least once, in order per hook). */
export interface EventForwarder {
  /** Whether `peer` is a configured peer. */
  knows(peer: string): boolean;
}

/** The optional targets a node was built with. */
export interface HookTargets {
  readonly jobs?: JobSink;
  readonly forward?: EventForwarder;
}

/** The targets of a node without the jobs and federation services. */
export const NO_EXTRA_TARGETS: HookTargets = {};

/**
 * Why a target kind cannot be used on a node built with `targets`, or null
 * when it can.
 */
export function unsupportedTarget(
  kind: "job" | "forward",
  targets: HookTargets,
): string | null {
  if (kind === "job" && targets.jobs === undefined) {
    return "Cannot create hook: target 'job' needs the jobs service, which this node does not run yet (use 'webhook' or 'queue')";
  }
  if (kind === "forward" && targets.forward === undefined) {
    return "Cannot create hook: target 'forward' needs federation, which this node does not run yet (use 'webhook' or 'queue')";
  }
  return null;
}
