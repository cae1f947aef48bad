/**
 * What the pub/sub commands (`topic`, `group`, `consume`) share: the exit
 * codes of their refusals and the name check. A refusal of the cluster (a
 * topic that exists or is missing, a group that is missing or not empty,
 * options that differ, a sequence too old) exits 2 with one line;
 * `staleGeneration` exits 1, through the CLI's one failure path.
 *
 * @module
 */
import {
  GroupConfigMismatchError,
  GroupNotEmptyError,
  GroupNotFoundError,
  MessageFinishedError,
  SequenceTooOldError,
  TopicExistsError,
  TopicInUseError,
  TopicNotFoundError,
} from "../../mod.ts";
import { PUBSUB_LIMITS } from "../../src/protocol/http_api_pubsub.ts";
import { UsageError } from "./_context.ts";

/**
 * Runs a pub/sub command's work, giving its refusals their exit code: the
 * cluster's pub/sub refusals exit 2, the rest (`staleGeneration` exits 1)
 * through the CLI's one failure path.
 */
export async function pubsubRefusals<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (
      error instanceof TopicExistsError ||
      error instanceof TopicNotFoundError ||
      error instanceof TopicInUseError ||
      error instanceof GroupNotFoundError ||
      error instanceof GroupConfigMismatchError ||
      error instanceof GroupNotEmptyError ||
      error instanceof SequenceTooOldError ||
      error instanceof MessageFinishedError
    ) {
      throw new UsageError(error.message, { cause: error });
    }
    throw error;
  }
}

/**
 * Reads a topic or group name.
 *
 * @throws {UsageError} When it is not 1 to 128 of `[A-Za-z0-9._-]`.
 */
export function parseName(value: string, what: string): string {
  if (!PUBSUB_LIMITS.namePattern.test(value)) {
    throw new UsageError(
      `Invalid ${what} name '${value}': expected 1 to 128 of [A-Za-z0-9._-]`,
    );
  }
  return value;
}
