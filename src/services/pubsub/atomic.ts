/**
 * The pub/sub step of a KV atomic operation (issue 18): its publishes and
 * acks applied in the KV write's own entry, through the same writers as the
 * service's commands, so consume-transform-produce is one Raft entry. Runs
 * of publishes to the same topic by the same producer form one publish
 * (one dedup and ordering decision); acks are grouped by member. Any
 * refusal (including an ack of a message already finished or not in
 * flight: `messageFinished`) refuses the whole operation, and the caller
 * drops everything the entry staged.
 *
 * @module
 */
import type {
  KvFailureReason,
  KvPubsubAck,
  KvPubsubPublish,
  KvPubsubStep,
} from "../../model/types.ts";
import type { ApplyContext } from "../../state/write_context.ts";
import {
  PubsubError,
  type PubsubErrorCode,
  validatePubsubCommand,
} from "./commands.ts";
import { GroupWriter } from "./groups.ts";
import { TopicWriter } from "./topics.ts";

/** A refusal of the step, as the KV service reports it. */
export interface PubsubStepRefusal {
  readonly reason: KvFailureReason;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

const REASONS: Partial<Record<PubsubErrorCode, KvFailureReason>> = {
  invalid: "invalidCommand",
  limitExceeded: "limitExceeded",
  topicNotFound: "topicNotFound",
  groupNotFound: "groupNotFound",
  staleGeneration: "staleGeneration",
  messageFinished: "messageFinished",
  sequenceTooOld: "sequenceTooOld",
};

function runsOf(publishes: readonly KvPubsubPublish[]): KvPubsubPublish[][] {
  const runs: KvPubsubPublish[][] = [];
  for (const publish of publishes) {
    const last = runs[runs.length - 1];
    if (
      last !== undefined && last[0]!.topic === publish.topic &&
      last[0]!.producerId === publish.producerId
    ) last.push(publish);
    else runs.push([publish]);
  }
  return runs;
}

function membersOf(acks: readonly KvPubsubAck[]): KvPubsubAck[][] {
  const byMember = new Map<string, KvPubsubAck[]>();
  for (const ack of acks) {
    const id = JSON.stringify([
      ack.topic,
      ack.group,
      ack.memberId,
      ack.generation,
    ]);
    const list = byMember.get(id);
    if (list === undefined) byMember.set(id, [ack]);
    else list.push(ack);
  }
  return [...byMember.values()];
}

/**
 * Applies `step` into `context`; null when it applied, else why not (the
 * caller then drops the staged rows).
 */
export function pubsubStepInto(
  context: ApplyContext,
  step: KvPubsubStep,
): PubsubStepRefusal | null {
  try {
    for (const run of runsOf(step.publishes)) {
      const command = validatePubsubCommand({
        type: "publish",
        topic: run[0]!.topic,
        producerId: run[0]!.producerId,
        messages: run.map((p) => ({
          value: p.value,
          encoding: p.encoding,
          key: p.key,
          headers: p.headers,
          partition: p.partition,
          sequence: p.sequence,
          deliverAtMs: p.deliverAtMs,
        })),
        nowMs: step.nowMs,
      });
      if (command.type !== "publish") continue;
      new TopicWriter(context).publish(command);
    }
    for (const acks of membersOf(step.acks)) {
      const { topic, group, memberId, generation } = acks[0]!;
      const command = validatePubsubCommand({
        type: "ack",
        topic,
        group,
        memberId,
        generation,
        acks: acks.map((a) => ({
          partition: a.partition,
          offset: a.offset,
          action: "ack" as const,
          delayMs: 0,
        })),
        nowMs: step.nowMs,
      });
      if (command.type !== "ack") continue;
      new GroupWriter(context).ackAtomic(command);
    }
    return null;
  } catch (error) {
    if (!(error instanceof PubsubError)) throw error;
    return {
      reason: REASONS[error.code] ?? "invalidCommand",
      message: error.message,
      ...(error.details === undefined ? {} : { details: error.details }),
    };
  }
}
