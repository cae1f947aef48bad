/**
 * The read point of a strong (linearizable) read, shared by the node's
 * services: Raft's read index, with a lost leadership or a timeout turned
 * into the 503 every front end maps `KvUnavailableError` to. Private to
 * `src/node/`.
 *
 * @module
 */
import { ProposalDroppedError } from "../raft/errors.ts";
import { KvUnavailableError } from "../services/kv/api.ts";
import { RequestTimeoutError } from "./raft_runner.ts";

/**
 * Waits for `readIndex()`.
 *
 * @throws {KvUnavailableError} When no read point could be confirmed (the
 * leader stepped down or the cluster did not answer in time).
 */
export async function strongRead<T>(readIndex: () => Promise<T>): Promise<T> {
  try {
    return await readIndex();
  } catch (error) {
    if (
      error instanceof ProposalDroppedError ||
      error instanceof RequestTimeoutError
    ) {
      throw new KvUnavailableError(
        `Cannot serve a strong read: ${error.message}`,
        { cause: error },
      );
    }
    throw error;
  }
}
