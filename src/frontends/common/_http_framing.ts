/**
 * Follows the HTTP/1.1 framing of one connection, both ways, with
 * `http-parser-js`: when a request's headers start and end, when its body
 * ends, and how many requests still wait for their response. The
 * connection guard reads these to enforce its header, body and idle
 * deadlines. Nothing is changed: the bytes pass through untouched. Private
 * to `src/frontends/common/`.
 *
 * @module
 */
import { HTTPParser } from "http-parser-js";
import { Buffer } from "node:buffer";

/** Where the request side of a connection is. */
export type RequestPhase = "between" | "headers" | "body";

const HEAD = HTTPParser.methods.indexOf("HEAD");

/** The framing state of one connection. */
export class HttpFraming {
  /** Where the current request is. */
  phase: RequestPhase = "between";
  /** When the current phase started (ms, the caller's clock). */
  phaseSinceMs: number;
  /** Requests whose response has not ended yet. */
  outstanding = 0;
  /** False once a side could not be parsed: the guard then only uses the idle deadline. */
  parsed = true;
  readonly #requests = new HTTPParser(HTTPParser.REQUEST);
  readonly #responses = new HTTPParser(HTTPParser.RESPONSE);
  readonly #methods: number[] = [];
  #status = 0;
  readonly #now: () => number;

  /** @param parse False for bytes that are not HTTP/1.1 (TLS): nothing is parsed. */
  constructor(now: () => number, parse = true) {
    this.#now = now;
    this.parsed = parse;
    this.phaseSinceMs = now();
    const requests = this.#requests;
    requests[HTTPParser.kOnHeadersComplete] = (info) => {
      this.#methods.push(info.method);
      this.#enter("body");
    };
    requests[HTTPParser.kOnMessageComplete] = () => {
      this.outstanding++;
      this.#enter("between");
    };
    const responses = this.#responses;
    responses[HTTPParser.kOnHeadersComplete] = (info) => {
      this.#status = info.statusCode;
      // Informational answers (100 Continue) come before the real one.
      if (info.statusCode < 200) return 0;
      // A HEAD answer has no body, whatever its Content-Length says (1: skip it).
      return this.#methods[0] === HEAD ? 1 : 0;
    };
    responses[HTTPParser.kOnMessageComplete] = () => {
      if (this.#status < 200) return;
      this.#methods.shift();
      this.outstanding = Math.max(0, this.outstanding - 1);
    };
  }

  #enter(phase: RequestPhase): void {
    this.phase = phase;
    this.phaseSinceMs = this.#now();
  }

  /** Bytes the client sent. */
  fromClient(chunk: Uint8Array): void {
    if (!this.parsed) return;
    if (this.phase === "between") this.#enter("headers");
    this.#execute(this.#requests, chunk);
  }

  /** Bytes the server sent. */
  fromServer(chunk: Uint8Array): void {
    if (!this.parsed) return;
    this.#execute(this.#responses, chunk);
  }

  #execute(parser: InstanceType<typeof HTTPParser>, chunk: Uint8Array): void {
    const result = parser.execute(
      Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength),
    );
    if (result instanceof Error) {
      this.parsed = false;
      this.phase = "between";
    }
  }
}
