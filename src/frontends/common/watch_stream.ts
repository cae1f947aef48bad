/**
 * The one watch stream loop every front end serves a watch with (HTTP's
 * JSON lines, KV Connect's length-prefixed frames, WebTransport's MessagePack
 * frames): a pull-based byte stream over {@linkcode KvBackend.watch}. Each
 * pull enqueues exactly one frame (a change or a keep-alive) or ends the
 * stream, so a slow reader holds back the backend's watch, which coalesces
 * changes meanwhile (see `services/kv/watch.ts`): nothing queues per stream.
 *
 * @module
 */
import type { KvBackend } from "../../services/kv/api.ts";
import type { KvEntry } from "../../model/types.ts";
import { equalBytes } from "../../base/bytes.ts";

/** Whether any slot's versionstamp differs between two yields of a watch. */
export function entriesMoved(
  previous: readonly (KvEntry | null)[],
  current: readonly (KvEntry | null)[],
): boolean {
  return current.some((entry, i) => {
    const before = previous[i] ?? null;
    if (entry === null || before === null) return entry !== before;
    return !equalBytes(entry.versionstamp, before.versionstamp);
  });
}

/** How a front end frames a watch. */
export interface WatchStreamOptions {
  /**
   * The frame for one yield of the watch, or null to send nothing for it
   * (a front end that compares snapshots itself).
   */
  readonly frame: (entries: readonly (KvEntry | null)[]) => Uint8Array | null;
  /** Sent whenever nothing was sent for `keepAliveMs`; null sends none. */
  readonly keepAlive: Uint8Array | null;
  /** Interval of keep-alives, in ms (ignored without `keepAlive`). */
  readonly keepAliveMs: number;
  /** Called once when the stream ends, however it ends (also when `watch` refuses). */
  readonly onEnd?: () => void;
}

const KEEP_ALIVE = Symbol("keepAlive");

type Step = IteratorResult<readonly (KvEntry | null)[]>;

/**
 * Streams the watch of `keys` until the reader cancels (a server cancels the
 * body when the client goes away) or the backend ends the watch (the stream
 * closes) or fails (the stream errors).
 *
 * @throws What `backend.watch` throws at once (its bounds: too many watches,
 *   too many keys), after calling `onEnd`, so a route can answer 4xx/503.
 */
export function watchStream(
  backend: KvBackend,
  keys: readonly Uint8Array[],
  options: WatchStreamOptions,
): ReadableStream<Uint8Array> {
  const abort = new AbortController();
  let ended = false;
  const stop = () => {
    abort.abort();
    if (!ended) options.onEnd?.();
    ended = true;
  };
  let iterator: AsyncIterator<readonly (KvEntry | null)[]>;
  try {
    iterator = backend.watch(keys, abort.signal)[Symbol.asyncIterator]();
  } catch (error) {
    stop();
    throw error;
  }
  let pending: Promise<Step> | null = null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        pending ??= iterator.next();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const waits: Promise<Step | typeof KEEP_ALIVE>[] = [pending];
        if (options.keepAlive !== null) {
          waits.push(
            new Promise((resolve) => {
              timer = setTimeout(
                () => resolve(KEEP_ALIVE),
                options.keepAliveMs,
              );
            }),
          );
        }
        let result: Step | typeof KEEP_ALIVE;
        try {
          result = await Promise.race(waits);
        } catch (error) {
          stop();
          controller.error(error);
          return;
        } finally {
          clearTimeout(timer);
        }
        if (result === KEEP_ALIVE) {
          controller.enqueue(options.keepAlive!);
          return;
        }
        pending = null;
        if (result.done) {
          stop();
          controller.close();
          return;
        }
        const frame = options.frame(result.value);
        if (frame !== null) {
          controller.enqueue(frame);
          return;
        }
      }
    },
    cancel() {
      stop();
      // Not awaited: a pending next() settles first, once the abort wakes it.
      iterator.return?.()?.catch(() => {});
    },
  }, { highWaterMark: 0 });
}
