/**
 * Raw KV Connect requests for in-process tests of `kvConnectApp()`.
 *
 * @module
 */
import type { Hono } from "hono";

/** Where and how to send data-path requests. */
export interface DataPathTarget {
  readonly app: Hono;
  readonly token: string;
  readonly databaseId: string;
  /** e.g. `http://127.0.0.1/kv/strong`. */
  readonly endpoint: string;
}

/** The headers a stock client sends on the data path, with overrides. */
export function dataPathHeaders(
  target: DataPathTarget,
  overrides: Record<string, string | null> = {},
): Headers {
  const headers = new Headers({
    authorization: `Bearer ${target.token}`,
    "content-type": "application/x-protobuf",
    "x-denokv-version": "3",
    "x-denokv-database-id": target.databaseId,
  });
  for (const [name, value] of Object.entries(overrides)) {
    if (value === null) headers.delete(name);
    else headers.set(name, value);
  }
  return headers;
}

/** POSTs `body` to `<endpoint>/<method>`. */
export function postDataPath(
  target: DataPathTarget,
  method: string,
  body: Uint8Array | ReadableStream<Uint8Array>,
  overrides: Record<string, string | null> = {},
): Promise<Response> {
  return Promise.resolve(
    target.app.request(`${target.endpoint}/${method}`, {
      method: "POST",
      headers: dataPathHeaders(target, overrides),
      body: body as BodyInit,
    }),
  );
}

/** Reads one length-prefixed frame from a watch body. */
export async function readFrame(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  buffered: { bytes: Uint8Array },
): Promise<Uint8Array> {
  const need = async (length: number) => {
    while (buffered.bytes.length < length) {
      const { done, value } = await reader.read();
      if (done) throw new Error("watch stream ended");
      const joined = new Uint8Array(buffered.bytes.length + value.length);
      joined.set(buffered.bytes);
      joined.set(value, buffered.bytes.length);
      buffered.bytes = joined;
    }
  };
  await need(4);
  const length = new DataView(
    buffered.bytes.buffer,
    buffered.bytes.byteOffset,
  ).getUint32(0, true);
  await need(4 + length);
  const frame = buffered.bytes.slice(4, 4 + length);
  buffered.bytes = buffered.bytes.slice(4 + length);
  return frame;
}
