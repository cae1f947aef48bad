/**
 * Queue names, as enqueues (a Deno KV atomic operation) and the queue
 * commands carry them.
 *
 * @module
 */
import { KvInvalidError } from "./errors.ts";

/** Longest queue name, in characters ([A-Za-z0-9._:-]). */
export const QUEUE_NAME_LENGTH_MAX = 64;
const QUEUE_NAME_PATTERN = /^[A-Za-z0-9._:-]*$/;

/**
 * Checks a queue name: "" (the default queue) or up to 64 of `A-Z a-z 0-9 . _ : -`.
 *
 * @throws {KvInvalidError} When it is not.
 */
export function validateQueueName(queue: unknown): string {
  if (
    typeof queue !== "string" ||
    queue.length > QUEUE_NAME_LENGTH_MAX ||
    !QUEUE_NAME_PATTERN.test(queue)
  ) {
    throw new KvInvalidError(
      `Invalid queue name: expected up to ${QUEUE_NAME_LENGTH_MAX} characters of A-Z, a-z, 0-9, '.', '_', ':', '-': received '${
        String(queue)
      }'`,
    );
  }
  return queue;
}
