/**
 * Bounded request body reading and content-negotiated replies.
 *
 * @module
 */
import type { Context } from "hono";
import {
  type BodyFormat,
  contentTypeOf,
  decodeBody,
  encodeBody,
  formatOfAccept,
  formatOfContentType,
} from "../../protocol/http_api_codec.ts";
import { HttpApiError } from "./_errors.ts";

function tooLarge(limitBytes: number): HttpApiError {
  return new HttpApiError(
    "bodyTooLarge",
    `Request body too large (max ${limitBytes} bytes)`,
    { max: limitBytes },
  );
}

/**
 * Reads at most `limitBytes` of the request body. A declared
 * `Content-Length` above the limit is refused before anything is read; a
 * streamed body is cut off as soon as it passes the limit.
 *
 * @throws {HttpApiError} `bodyTooLarge` or `unsupportedMediaType`.
 */
export async function readBody(
  c: Context,
  limitBytes: number,
): Promise<unknown> {
  const type = c.req.header("content-type");
  // A body without a type is what a cross-site form or fetch can send without
  // a CORS preflight: refuse it.
  const format = type === undefined || type.trim() === ""
    ? null
    : formatOfContentType(type);
  if (format === null) {
    throw new HttpApiError(
      "unsupportedMediaType",
      `Unsupported content type '${
        type ?? "(none)"
      }': send Content-Type application/json or application/msgpack`,
    );
  }
  const declared = c.req.header("content-length");
  if (declared !== undefined && Number(declared) > limitBytes) {
    throw tooLarge(limitBytes);
  }
  const bytes = await readBounded(c.req.raw.body, limitBytes);
  if (bytes.length === 0) {
    throw new HttpApiError("badRequest", "Invalid body: the body is empty");
  }
  return decodeBody(bytes, format);
}

async function readBounded(
  stream: ReadableStream<Uint8Array> | null,
  limitBytes: number,
): Promise<Uint8Array> {
  if (stream === null) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limitBytes) {
        await reader.cancel();
        throw tooLarge(limitBytes);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  // One chunk (most bodies) is the body: no copy.
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** The reply format the request asks for. */
export function replyFormat(c: Context): BodyFormat {
  return formatOfAccept(c.req.header("accept") ?? null);
}

/** A reply in the format the request's `Accept` header asks for. */
export function reply(c: Context, body: unknown, status = 200): Response {
  const format = replyFormat(c);
  return new Response(encodeBody(body, format), {
    status,
    headers: { "content-type": contentTypeOf(format) },
  });
}
